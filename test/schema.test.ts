import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { schemaSdl } from '../src/schema/sdl.js';

describe('schema.graphql', () => {
  it('matches the Pothos schema (run `npm run schema:print` after changing the schema)', () => {
    expect(readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8')).toBe(schemaSdl());
  });

  it('keeps the contract names other SDKs are generated from', () => {
    const sdl = schemaSdl();
    for (const fragment of [
      'me: User',
      'userExists(username: String!): Boolean!',
      'register(input: RegisterInput!): RegisterResult!',
      'login(input: LoginInput!): LoginResult!',
      'refresh(refreshToken: String!): RefreshResult!',
      'logout(allSessions: Boolean! = false): Boolean!',
      'revokeSession(id: ID!): Boolean!',
      'mySessions: [Session!]!',
      'union RegisterResult = AuthPayload | EmailTakenError | UsernameTakenError | ValidationError',
      'interface Error {',
      'enum Role {',
    ]) {
      expect(sdl).toContain(fragment);
    }
  });
});
