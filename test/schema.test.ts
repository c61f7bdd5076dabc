import { readFileSync } from 'node:fs';
import { buildSchema, isUnionType } from 'graphql';
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
      'refresh(refreshToken: String): RefreshResult!',
      'logout(allSessions: Boolean! = false, refreshToken: String): Boolean!',
      'revokeSession(id: ID!): Boolean!',
      'mySessions: [Session!]!',
      'user(id: ID!): PublicUser',
      'updateProfile(input: UpdateProfileInput!)',
      'changePassword(currentPassword: String!, newPassword: String!)',
      'deleteAccount(password: String!)',
      'users(after: String, before: String, first: Int, last: Int, search: String): UserConnection!',
      'setUserRole(id: ID!, role: Role!)',
      'disableUser(id: ID!)',
      'enableUser(id: ID!)',
      'deleteUser(id: ID!)',
      'createApiToken(input: CreateApiTokenInput!)',
      'apiTokens: [ApiToken!]!',
      'revokeApiToken(id: ID!): Boolean!',
      'interface Error {',
      'enum Role {',
    ]) {
      expect(sdl).toContain(fragment);
    }
  });

  it('answers every expected failure as a union member implementing Error', () => {
    const schema = buildSchema(schemaSdl());
    const members = (name: string) => {
      const type = schema.getType(name);
      if (!isUnionType(type)) throw new Error(`${name} is not a union`);
      return type.getTypes().map((member) => member.name);
    };
    expect(members('RegisterResult')).toEqual(expect.arrayContaining(['AuthPayload', 'ValidationError', 'UsernameTakenError', 'EmailTakenError']));
    expect(members('LoginResult')).toEqual(expect.arrayContaining(['AuthPayload', 'ValidationError', 'InvalidCredentialsError']));
    expect(members('RefreshResult').sort()).toEqual(['AuthPayload', 'InvalidRefreshTokenError']);
    for (const type of Object.values(schema.getTypeMap())) {
      if (isUnionType(type)) {
        for (const member of type.getTypes()) {
          if (member.name.endsWith('Error')) expect(member.getInterfaces().map((i) => i.name)).toContain('Error');
        }
      }
    }
  });
});
