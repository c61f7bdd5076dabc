import Database from 'better-sqlite3';
import { decodeJwt } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { sqlitePath } from '../../src/db/client.js';
import { bearer, createTestApp, LOGIN, registerUser } from '../support/app.js';
import { createLoggedInAdmin, readTable } from '../support/accounts.js';

// A credential change and the end of the sessions it invalidates are ONE commit: a failure (or a kill)
// between the two must leave neither applied. The fault is injected with a real SQLite trigger, added
// through a second connection, that aborts the statement ending the sessions, the second half of each
// change. Whatever the change wrote before that must be rolled back with it.

const app = await createTestApp();
const raw = new Database(sqlitePath(app.services.config.databaseUrl));
afterAll(() => raw.close());

function failSessionRevocation<T>(work: () => Promise<T>): Promise<T> {
  raw.exec(`CREATE TRIGGER injected_fault BEFORE UPDATE OF revokedAt ON Session BEGIN SELECT RAISE(ABORT, 'injected fault'); END;`);
  return work().finally(() => raw.exec('DROP TRIGGER injected_fault'));
}

const userRow = (id: string) => raw.prepare('SELECT passwordHash, credentialsVersion, disabledAt FROM User WHERE id = ?').get(id) as Record<string, unknown>;
const liveSessions = async (userId: string) =>
  (await readTable(app, 'SELECT id FROM Session WHERE userId = ? AND revokedAt IS NULL ORDER BY id', userId)).map((row) => row.id);

const CHANGE_PASSWORD = /* GraphQL */ `
  mutation ($current: String!, $next: String!) {
    changePassword(currentPassword: $current, newPassword: $next) { __typename ... on PasswordChanged { endedSessions } }
  }
`;

describe('a credential change that fails half-way changes nothing', () => {
  it('changePassword: the new hash is rolled back with the failed end of the other sessions', async () => {
    const { username, password, accessToken, user } = await registerUser(app);
    const other = (await app.gql(LOGIN, { input: { username, password } })).data.login;
    const before = userRow(user.id);
    const sessionsBefore = await liveSessions(user.id);
    expect(sessionsBefore).toHaveLength(2);

    const failed = await failSessionRevocation(() => app.gql(CHANGE_PASSWORD, { current: password, next: 'the new password here' }, bearer(accessToken)));
    expect(failed.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');

    expect(userRow(user.id)).toEqual(before);
    expect(await liveSessions(user.id)).toEqual(sessionsBefore);
    expect((await app.gql(LOGIN, { input: { username, password } })).data.login.__typename).toBe('AuthPayload');
    expect((await app.gql(LOGIN, { input: { username, password: 'the new password here' } })).data.login.__typename).toBe('InvalidCredentialsError');

    // Without the fault the same change goes through whole.
    const changed = await app.gql(CHANGE_PASSWORD, { current: password, next: 'the new password here' }, bearer(accessToken));
    expect(changed.data.changePassword.__typename).toBe('PasswordChanged');
    expect(await liveSessions(user.id)).toEqual([decodeJwt(accessToken).sid]);
    expect(sessionsBefore).toContain(decodeJwt(other.accessToken).sid);
  });

  it('logout everywhere and disable: the credentials version moves only together with the end of the sessions', async () => {
    const admin = await createLoggedInAdmin(app);
    const { accessToken, user } = await registerUser(app);
    const before = userRow(user.id);

    const logout = await failSessionRevocation(() => app.gql('mutation { logout(allSessions: true) }', {}, bearer(accessToken)));
    expect(logout.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    const disable = await failSessionRevocation(() =>
      app.gql('mutation ($id: ID!) { disableUser(id: $id) { __typename } }', { id: user.id }, bearer(admin.accessToken)),
    );
    expect(disable.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');

    expect(userRow(user.id)).toEqual(before);
    expect(await liveSessions(user.id)).toHaveLength(1);
  });
});
