import { randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { OPERATOR } from '../../src/auth/admin-actor.js';
import { LastAdminError } from '../../src/auth/errors.js';
import { PostgresDatabase } from '../../src/db/database.js';
import { isSerializationFailure } from '../../src/db/postgres-database.js';
import { bearer, createTestApp, LOGIN, registerUser, type TestApp } from '../support/app.js';
import { createPostgresDatabase } from '../support/postgres.js';
import { rawDb } from '../support/raw-db.js';

// PostgreSQL runs transactions side by side, where SQLite runs them one at a time. The rules that check
// something and then change something in one transaction (last admin, credentials version, token limit)
// must hold all the same: PostgresDatabase runs every transaction SERIALIZABLE and retries the ones
// PostgreSQL aborts. These races fail without that (at READ COMMITTED both admins get demoted).

const database = await createPostgresDatabase();
// Registered first, so it runs after the app's own afterAll has closed it (hooks run as a stack).
afterAll(() => database.drop());
const app: TestApp = await createTestApp({ DATABASE_URL: database.url, LOCKOUT_THRESHOLD: '1000' });

const CHANGE_PASSWORD = `mutation ($current: String!, $next: String!) { changePassword(currentPassword: $current, newPassword: $next) { __typename } }`;
const CREATE_TOKEN = `mutation ($input: CreateApiTokenInput!) { createApiToken(input: $input) { __typename } }`;

describe('check-then-change rules on PostgreSQL', { timeout: 60_000 }, () => {
  it('runs on PostgreSQL', () => {
    expect(app.services.db).toBeInstanceOf(PostgresDatabase);
  });

  it('two administrators demoting each other at once leave exactly one administrator, round after round', async () => {
    for (let round = 0; round < 5; round++) {
      const [first, second] = await Promise.all([registerUser(app), registerUser(app)]);
      // Only these two are administrators in this round.
      await rawDb(app.services).user.updateMany({ where: { role: 'ADMIN' }, data: { role: 'USER' } });
      await rawDb(app.services).user.updateMany({ where: { id: { in: [first.user.id, second.user.id] } }, data: { role: 'ADMIN' } });
      const results = await Promise.allSettled([
        app.services.users.setRole(second.user.id, 'USER', OPERATOR),
        app.services.users.setRole(first.user.id, 'USER', OPERATOR),
      ]);
      expect(
        results.filter((result) => result.status === 'fulfilled'),
        `round ${round}`,
      ).toHaveLength(1);
      expect((results.find((result) => result.status === 'rejected') as PromiseRejectedResult).reason).toBeInstanceOf(LastAdminError);
      expect(await rawDb(app.services).user.count({ where: { role: 'ADMIN' } })).toBe(1);
    }
  });

  it('logins racing a password change: no session of theirs survives, only the changing one', async () => {
    const { username, password, accessToken, user } = await registerUser(app);
    const logins = Array.from({ length: 12 }, () => app.gql(LOGIN, { input: { username, password } }));
    const change = app.gql(CHANGE_PASSWORD, { current: password, next: 'the new password is long' }, bearer(accessToken));
    const [changed] = await Promise.all([change, ...logins]);
    expect(changed.data.changePassword.__typename).toBe('PasswordChanged');
    const live = await rawDb(app.services).session.findMany({ where: { userId: user.id, revokedAt: null }, select: { id: true } });
    expect(live.map((session) => session.id)).toEqual([decodeJwt(accessToken).sid]);
  });

  it('parallel API-token creations stop exactly at the per-user limit (100)', async () => {
    const { accessToken, user } = await registerUser(app);
    const create = (name: string) => app.gql(CREATE_TOKEN, { input: { name, scopes: ['PROFILE_READ'] } }, bearer(accessToken));
    for (let i = 0; i < 90; i++) expect((await create(`before${i}`)).data.createApiToken.__typename).toBe('ApiTokenCreated');
    // 20 at once for the last 10 places.
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => create(`race${i}`)));
    for (const answer of answers) expect(answer.errors).toBeUndefined();
    const created = answers.filter((answer) => answer.data.createApiToken.__typename === 'ApiTokenCreated');
    expect(created).toHaveLength(10);
    expect(await rawDb(app.services).apiToken.count({ where: { userId: user.id } })).toBe(100);
  });

  it('retries a transaction PostgreSQL aborted as a serialization failure, running its work again', async () => {
    const { user } = await registerUser(app);
    const db = app.services.db;
    // Write skew by hand: both read the row, both write it; one of them is aborted and run again.
    let runs = 0;
    let bothRead: () => void;
    const barrier = new Promise<void>((resolve) => (bothRead = resolve));
    let reads = 0;
    const bump = () =>
      db.transaction(async (tx) => {
        runs++;
        await db.users.findIn(tx, user.id);
        if (++reads === 2) bothRead();
        await Promise.race([barrier, new Promise((resolve) => setTimeout(resolve, 2_000))]);
        await db.users.bumpCredentialsVersion(tx, user.id);
      });
    const before = (await db.users.find(user.id))!.credentialsVersion;
    await Promise.all([bump(), bump()]);
    expect((await db.users.find(user.id))!.credentialsVersion).toBe(before + 2);
    expect(runs).toBeGreaterThan(2);
  });

  it('recognizes serialization failures in the forms Prisma and the adapter report them', () => {
    expect(isSerializationFailure({ code: 'P2034' })).toBe(true);
    expect(
      isSerializationFailure(Object.assign(new Error('TransactionWriteConflict'), { name: 'DriverAdapterError', cause: { kind: 'TransactionWriteConflict' } })),
    ).toBe(true);
    expect(isSerializationFailure(new Error('could not serialize access due to read/write dependencies among transactions'))).toBe(true);
    expect(isSerializationFailure({ code: 'P2002' })).toBe(false);
    expect(isSerializationFailure(new Error(randomUUID()))).toBe(false);
  });

  it('gives up after a bounded number of attempts', async () => {
    const db = app.services.db;
    const work = vi.fn(async () => {
      throw Object.assign(new Error('conflict'), { code: 'P2034' });
    });
    await expect(db.transaction(work)).rejects.toMatchObject({ code: 'P2034' });
    expect(work).toHaveBeenCalledTimes(8);
  });
});
