import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database, UserRole } from '../../src/db/database.js';
import { UniqueConstraintError } from '../../src/db/errors.js';
import type { ManualClock } from '../support/app.js';
import { mailStoreContract } from './store-contract-mail.js';

/** What an engine's test file hands the contract: a fresh, migrated, empty database and its clock. */
export interface StoreFixture {
  readonly db: Database;
  readonly clock: ManualClock;
  close(): Promise<void>;
}

export const IDLE_TIMEOUT_MS = 7 * 24 * 3600_000;
const LIFETIME_MS = 30 * 24 * 3600_000;
const CACHE_TTL_MS = 30_000;

/**
 * The behaviour every engine's stores must show, written once: SQLite runs it today
 * (sqlite-stores.test.ts); a PostgreSQL implementation runs the same function with its own factory.
 */
export function storeContract(engine: string, open: () => Promise<StoreFixture>): void {
  describe(`stores on ${engine}`, () => {
    let fixture: StoreFixture;
    let db: Database;
    let clock: ManualClock;
    beforeAll(async () => {
      fixture = await open();
      ({ db, clock } = fixture);
    });
    afterAll(() => fixture.close());

    const newUser = async (role: UserRole = 'USER', name = `user-${randomUUID().slice(0, 8)}`) =>
      db.transaction((tx) =>
        db.users.create(tx, {
          id: randomUUID(),
          username: name,
          usernameKey: name.toLowerCase(),
          email: null,
          emailKey: null,
          fullname: null,
          passwordHash: 'hash',
          role,
        }),
      );
    const newSession = (userId: string) =>
      db.transaction((tx) =>
        db.sessions.create(tx, {
          id: randomUUID(),
          userId,
          createdAt: new Date(clock.now()),
          expiresAt: new Date(clock.now() + LIFETIME_MS),
          userAgent: null,
          ip: null,
        }),
      );
    const newToken = (userId: string, expiresAt: Date | null = null) =>
      db.transaction((tx) =>
        db.apiTokens.create(tx, {
          id: randomUUID(),
          userId,
          name: 'script',
          scopes: ['profile:read', 'admin', 'admin'],
          secretHash: randomUUID(),
          createdAt: new Date(clock.now()),
          expiresAt,
        }),
      );

    describe('transactions', () => {
      it('commit all of their writes or none', async () => {
        const name = `rolled-${randomUUID().slice(0, 8)}`;
        await expect(
          db.transaction(async (tx) => {
            await db.users.create(tx, {
              id: randomUUID(),
              username: name,
              usernameKey: name,
              email: null,
              emailKey: null,
              fullname: null,
              passwordHash: 'h',
              role: 'USER',
            });
            throw new Error('rolled back on purpose');
          }),
        ).rejects.toThrow('rolled back on purpose');
        expect(await db.users.findByUsernameKey(name)).toBeNull();
      });
    });

    describe('users', () => {
      it('finds a user by id, username key and email key', async () => {
        const user = await newUser();
        expect(await db.users.find(user.id)).toMatchObject({ id: user.id, role: 'USER', credentialsVersion: 0, disabledAt: null });
        expect((await db.users.findByUsernameKey(user.usernameKey))?.id).toBe(user.id);
        expect(await db.users.idByUsernameKey(user.usernameKey)).toBe(user.id);
        await db.users.updateProfile(user.id, { email: 'Someone@Example.com', emailKey: `${user.usernameKey}@example.com` });
        expect(await db.users.idByEmailKey(`${user.usernameKey}@example.com`)).toBe(user.id);
        expect((await db.users.findByEmailKey(`${user.usernameKey}@example.com`))?.email).toBe('Someone@Example.com');
        expect(await db.users.findByUsernameKey(`${user.usernameKey}-nobody`)).toBeNull();
        expect(await db.users.findByEmailKey(`nobody-${user.usernameKey}@example.com`)).toBeNull();
      });

      it("reads the same record by name (a login's look-up, a prepared statement on SQLite) as by id", async () => {
        const user = await newUser('ADMIN');
        await db.users.updateProfile(user.id, { fullname: 'Full Name', email: 'Mixed@Example.com', emailKey: `${user.usernameKey}@example.com` });
        await db.transaction(async (tx) => {
          await db.users.bumpCredentialsVersion(tx, user.id);
          await db.users.setDisabledAt(tx, user.id, new Date(clock.now()));
        });
        const byId = await db.users.find(user.id);
        expect(byId).toMatchObject({ role: 'ADMIN', fullname: 'Full Name', credentialsVersion: 1, disabledAt: new Date(clock.now()) });
        expect(await db.users.findByUsernameKey(user.usernameKey)).toEqual(byId);
        expect(await db.users.findByEmailKey(`${user.usernameKey}@example.com`)).toEqual(byId);
      });

      it('refuses a taken username key with UniqueConstraintError', async () => {
        const user = await newUser();
        await expect(newUser('USER', user.username)).rejects.toBeInstanceOf(UniqueConstraintError);
      });

      it('refuses a taken email key with UniqueConstraintError, and answers null for a user that is gone', async () => {
        const [a, b] = [await newUser(), await newUser()];
        await db.users.updateProfile(a.id, { email: 'x@example.com', emailKey: `${a.id}@example.com` });
        await expect(db.users.updateProfile(b.id, { email: 'x@example.com', emailKey: `${a.id}@example.com` })).rejects.toBeInstanceOf(UniqueConstraintError);
        expect(await db.users.updateProfile(randomUUID(), { fullname: 'Nobody' })).toBeNull();
      });

      it('keeps its cached copy right after every write through the store', async () => {
        const user = await newUser();
        expect((await db.users.findCached(user.id))?.role).toBe('USER');
        await db.transaction((tx) => db.users.setRole(tx, user.id, 'ADMIN'));
        expect((await db.users.findCached(user.id))?.role).toBe('ADMIN');
        await db.transaction((tx) => db.users.setDisabledAt(tx, user.id, new Date(clock.now())));
        expect((await db.users.findCached(user.id))?.disabledAt).not.toBeNull();
        await db.users.updateProfile(user.id, { fullname: 'New Name' });
        expect((await db.users.findCached(user.id))?.fullname).toBe('New Name');
        await db.transaction((tx) => db.users.bumpCredentialsVersion(tx, user.id));
        expect((await db.users.findCached(user.id))?.credentialsVersion).toBe(1);
        await db.transaction((tx) => db.users.delete(tx, user.id));
        expect(await db.users.findCached(user.id)).toBeNull();
      });

      it('replaces the password only at the credentials version it was checked against', async () => {
        const user = await newUser();
        expect(await db.transaction((tx) => db.users.setPasswordIfCurrent(tx, user.id, 0, 'second'))).toBe(true);
        await db.transaction((tx) => db.users.bumpCredentialsVersion(tx, user.id));
        expect(await db.transaction((tx) => db.users.setPasswordIfCurrent(tx, user.id, 0, 'third'))).toBe(false);
        expect((await db.users.find(user.id))?.passwordHash).toBe('second');
      });

      it('counts the other enabled administrators', async () => {
        const admin = await newUser('ADMIN');
        const before = await db.transaction((tx) => db.users.countOtherActiveAdmins(tx, admin.id));
        const other = await newUser('ADMIN');
        expect(await db.transaction((tx) => db.users.countOtherActiveAdmins(tx, admin.id))).toBe(before + 1);
        await db.transaction((tx) => db.users.setDisabledAt(tx, other.id, new Date(clock.now())));
        expect(await db.transaction((tx) => db.users.countOtherActiveAdmins(tx, admin.id))).toBe(before);
      });

      it('pages by username key and searches literally, % and _ included', async () => {
        const prefix = `pg${randomUUID().slice(0, 6)}`;
        for (const suffix of ['a', 'b', 'c_d', 'c%e']) await newUser('USER', `${prefix}${suffix}`);
        const page = await db.users.page({ after: `${prefix}a`, limit: 2, descending: false });
        expect(page.map((user) => user.usernameKey)).toEqual([`${prefix}b`, `${prefix}c%e`]);
        const keys = (found: { users: { usernameKey: string }[] }) => found.users.map((user) => user.usernameKey);
        expect(keys(await db.users.search({ limit: 10, descending: false, term: `${prefix}c_`, scanLimit: 100_000 }))).toEqual([`${prefix}c_d`]);
        expect(keys(await db.users.search({ limit: 10, descending: true, term: prefix, scanLimit: 100_000 }))).toEqual(
          [`${prefix}a`, `${prefix}b`, `${prefix}c%e`, `${prefix}c_d`].sort().reverse(),
        );
        // A window of two users holds no "c" match: nothing found, and where the next window starts.
        expect(await db.users.search({ after: prefix, limit: 10, descending: false, term: `${prefix}c`, scanLimit: 2 })).toEqual({
          users: [],
          resumeFrom: `${prefix}b`,
        });
        expect(keys(await db.users.search({ after: `${prefix}b`, limit: 10, descending: false, term: `${prefix}c`, scanLimit: 2 }))).toEqual([
          `${prefix}c%e`,
          `${prefix}c_d`,
        ]);
      });
    });

    describe('sessions', () => {
      it('mirrors a new session and rotates each generation once, whoever races for it', async () => {
        const user = await newUser();
        const session = await newSession(user.id);
        const snapshot = db.sessions.cached(session.id)!;
        expect(snapshot).toMatchObject({ userId: user.id, ended: false, refreshCounter: 0 });
        const claim = { sessionId: session.id, userId: user.id, expiresAt: snapshot.expiresAt, refreshCounter: 0 };
        const outcomes = await Promise.all([db.sessions.claimRotation(claim), db.sessions.claimRotation(claim), db.sessions.claimRotation(claim)]);
        expect(outcomes.filter((outcome) => outcome !== null)).toHaveLength(1);
        expect(db.sessions.cached(session.id)?.refreshCounter).toBe(1);
        expect(await db.sessions.find(session.id)).toMatchObject({ refreshCounter: 1, rotatedAt: new Date(clock.now()) });
        expect(await db.sessions.claimRotation(claim)).toBeNull();
      });

      it("inserts a login's session only at the credentials version checked, for an enabled account, and mirrors it", async () => {
        const user = await newUser();
        const login = () => ({
          id: randomUUID(),
          userId: user.id,
          createdAt: new Date(clock.now()),
          expiresAt: new Date(clock.now() + LIFETIME_MS),
          userAgent: 'agent',
          ip: '192.0.2.1',
        });
        const first = login();
        const created = await db.sessions.createIfCredentialsCurrent(first, 0);
        const stored = await db.sessions.find(first.id);
        expect(stored).toEqual({ ...first, lastUsedAt: first.createdAt, rotatedAt: first.createdAt, refreshCounter: 0, revokedAt: null, revokedReason: null });
        expect(created).toEqual(stored);
        expect(db.sessions.cached(first.id)).toMatchObject({ userId: user.id, ended: false, refreshCounter: 0, expiresAt: first.expiresAt.getTime() });

        await db.transaction((tx) => db.users.bumpCredentialsVersion(tx, user.id));
        const stale = login();
        expect(await db.sessions.createIfCredentialsCurrent(stale, 0)).toBe('credentials_changed');
        expect(await db.sessions.find(stale.id)).toBeNull();
        expect(db.sessions.cached(stale.id)).toBeUndefined();
        const current = login();
        expect(await db.sessions.createIfCredentialsCurrent(current, 1)).toMatchObject({ id: current.id });

        await db.transaction((tx) => db.users.setDisabledAt(tx, user.id, new Date(clock.now())));
        const disabled = login();
        expect(await db.sessions.createIfCredentialsCurrent(disabled, 1)).toBe('disabled');
        expect(await db.sessions.find(disabled.id)).toBeNull();

        await db.transaction((tx) => db.users.delete(tx, user.id));
        const deleted = login();
        expect(await db.sessions.createIfCredentialsCurrent(deleted, 1)).toBe('credentials_changed');
        expect(await db.sessions.find(deleted.id)).toBeNull();
      });

      it('refuses to rotate a revoked, expired or idle session', async () => {
        const user = await newUser();
        const revoked = await newSession(user.id);
        expect(await db.sessions.revoke(revoked.id, 'logout')).toBe(true);
        expect(await db.sessions.revoke(revoked.id, 'logout')).toBe(false);
        expect(await db.sessions.claimRotation({ sessionId: revoked.id, userId: user.id, expiresAt: Number.MAX_SAFE_INTEGER, refreshCounter: 0 })).toBeNull();
        const idle = await newSession(user.id);
        clock.advance(IDLE_TIMEOUT_MS);
        expect(await db.sessions.claimRotation({ sessionId: idle.id, userId: user.id, expiresAt: Number.MAX_SAFE_INTEGER, refreshCounter: 0 })).toBeNull();
      });

      it('marks a revocation ended in memory, and a rolled-back one stays ended there (the safe side)', async () => {
        const user = await newUser();
        const [a, b, kept] = [await newSession(user.id), await newSession(user.id), await newSession(user.id)];
        await expect(
          db.transaction(async (tx) => {
            expect(await db.sessions.revokeAllForUser(tx, user.id, 'password_changed', kept.id)).toBe(2);
            throw new Error('rolled back on purpose');
          }),
        ).rejects.toThrow();
        expect((await db.sessions.find(a.id))?.revokedAt).toBeNull();
        expect((await db.sessions.snapshot(a.id))?.ended).toBe(true);
        expect((await db.sessions.snapshot(kept.id))?.ended).toBe(false);
        expect(await db.transaction((tx) => db.sessions.revokeAllForUser(tx, user.id, 'logout_everywhere'))).toBe(3);
        expect((await db.sessions.find(b.id))?.revokedReason).toBe('logout_everywhere');
        // A rotation that wins afterwards (another process's view) cannot bring ENDED back to life.
        expect(db.sessions.cached(kept.id)?.ended).toBe(true);
      });

      it('lists the live sessions newest first and purges the ended ones', async () => {
        const user = await newUser();
        const old = await newSession(user.id);
        clock.advance(1000);
        const recent = await newSession(user.id);
        const ended = await newSession(user.id);
        await db.sessions.revoke(ended.id, 'logout');
        expect((await db.sessions.listActive(user.id)).map((session) => session.id)).toEqual([recent.id, old.id]);
        const before = await db.sessions.count();
        expect(await db.sessions.purgeEnded()).toBeGreaterThanOrEqual(1);
        expect(await db.sessions.find(ended.id)).toBeNull();
        expect(await db.sessions.count()).toBeLessThan(before);
        expect(await db.sessions.find(recent.id)).not.toBeNull();
      });
    });

    describe('API tokens', () => {
      it('stores scopes once each and finds a token by its secret hash, from memory afterwards', async () => {
        const user = await newUser();
        const token = await newToken(user.id);
        expect(token.scopes).toBe('profile:read admin');
        const state = await db.apiTokens.findBySecretHash(token.secretHash);
        expect(state).toMatchObject({ id: token.id, userId: user.id, revoked: false, expiresAt: null, lastUsedWrittenAt: 0 });
        expect([...state!.scopes]).toEqual(['profile:read', 'admin']);
        expect(await db.apiTokens.findBySecretHash(token.secretHash)).toBe(state);
        expect(await db.apiTokens.findBySecretHash('no such hash')).toBeNull();
      });

      it('revokes a working token of its owner only, and mirrors the revocation', async () => {
        const [owner, other] = [await newUser(), await newUser()];
        const token = await newToken(owner.id);
        await db.apiTokens.findBySecretHash(token.secretHash);
        expect(await db.apiTokens.revokeWorking(other.id, token.id)).toBe(false);
        expect(await db.apiTokens.revokeWorking(owner.id, token.id)).toBe(true);
        expect((await db.apiTokens.findBySecretHash(token.secretHash))?.revoked).toBe(true);
        expect(await db.apiTokens.revokeWorking(owner.id, token.id)).toBe(false);
      });

      it('revokes every token of a user in a transaction, lists working ones and purges the rest', async () => {
        const user = await newUser();
        const expired = await newToken(user.id, new Date(clock.now() + 1000));
        const working = await newToken(user.id);
        clock.advance(1000);
        expect((await db.apiTokens.listWorking(user.id)).map((token) => token.id)).toEqual([working.id]);
        expect(await db.transaction((tx) => db.apiTokens.countUnrevoked(tx, user.id))).toBe(2);
        await db.transaction((tx) => db.apiTokens.revokeAllForUser(tx, user.id));
        expect((await db.apiTokens.findBySecretHash(working.secretHash))?.revoked).toBe(true);
        expect(await db.apiTokens.purgeEnded()).toBeGreaterThanOrEqual(2);
        expect(await db.transaction((tx) => db.apiTokens.findIn(tx, expired.id))).toBeNull();
      });

      it('records a use in memory at once and in the row', async () => {
        const user = await newUser();
        const token = await newToken(user.id);
        const state = (await db.apiTokens.findBySecretHash(token.secretHash))!;
        db.apiTokens.recordUse(state, clock.now());
        expect(state.lastUsedWrittenAt).toBe(clock.now());
        clock.advance(CACHE_TTL_MS + 1);
        await expect.poll(async () => (await db.apiTokens.findBySecretHash(token.secretHash))?.lastUsedWrittenAt).toBe(clock.now() - CACHE_TTL_MS - 1);
      });
    });

    describe('keys no row can have', () => {
      it('answer "no such row" for ids and keys holding a NUL character (PostgreSQL text cannot store one)', async () => {
        const user = await newUser();
        const nul = `${user.id}\u0000`;
        expect(await db.users.find(nul)).toBeNull();
        expect(await db.users.findByUsernameKey(`${user.usernameKey}\u0000`)).toBeNull();
        expect(await db.users.idByEmailKey('a\u0000@example.com')).toBeNull();
        expect(await db.users.search({ term: '\u0000', limit: 10, descending: false, scanLimit: 100 })).toEqual({ users: [], resumeFrom: null });
        expect(await db.sessions.find(nul)).toBeNull();
        expect(await db.sessions.revoke(nul, 'logout')).toBe(false);
        expect(await db.apiTokens.revokeWorking(user.id, nul)).toBe(false);
        expect(await db.apiTokens.findBySecretHash('\u0000')).toBeNull();
        expect(await db.transaction((tx) => db.users.findIn(tx, nul))).toBeNull();
      });
    });

    mailStoreContract(
      () => ({ db, clock }),
      () => newUser(),
    );
  });
}
