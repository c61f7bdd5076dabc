import { afterAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { OPERATOR } from '../src/auth/admin-actor.js';
import { bearer, createTestApp, LOGIN, ME, registerUser, type TestApp } from './support/app.js';
import { onPostgres } from './support/db.js';
import { rawDb } from './support/raw-db.js';
import { OwnRedis } from './support/redis.js';

// Two servers on one database (in one process here; test/multi-instance runs real processes): a change
// made through one must reach the other's caches within a second. Each case first makes B cache what A
// then changes, so that B refusing it proves B dropped its cached copy, not that it never had one.

const a = await createTestApp();
const b = await createTestApp({ DATABASE_URL: a.services.config.databaseUrl, KEYS_FILE: a.services.config.keysFile });

const CREATE_API_TOKEN = 'mutation ($input: CreateApiTokenInput!) { createApiToken(input: $input) { ... on ApiTokenCreated { token apiToken { id } } } }';

/** Milliseconds until `refused()` is true, polling every 10 ms; fails after 5 s. */
async function msUntil(refused: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (!(await refused())) {
    if (performance.now() - started > 5_000) throw new Error('still accepted after 5 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return performance.now() - started;
}

const meRefused = (app: TestApp, token: string) => async () => (await app.gql(ME, {}, bearer(token))).errors?.[0]?.extensions?.code === 'UNAUTHENTICATED';

/** A user signed in, whose session and row B has just read (and cached). */
async function userCachedOnB() {
  const user = await registerUser(a);
  expect((await b.gql(ME, {}, bearer(user.accessToken))).data?.me?.id).toBe(user.user.id);
  return user;
}

describe('a change made on one server reaches the other within a second', { timeout: 60_000 }, () => {
  it('starts with both change feeds live', async () => {
    expect(a.services.db.changes.state).toBe('live');
    expect(await (await b.yoga.fetch('http://gatehouse.test/health')).json()).toMatchObject({ status: 'ok', changeFeed: 'live', limits: 'per-instance' });
  });

  it('logout on A: B refuses the access token', async () => {
    const user = await userCachedOnB();
    expect((await a.gql('mutation { logout }', {}, bearer(user.accessToken))).data?.logout).toBe(true);
    expect(await msUntil(meRefused(b, user.accessToken))).toBeLessThan(1_000);
  });

  it('logout everywhere, a password change and a disable on A: B refuses', async () => {
    const everywhere = await userCachedOnB();
    await a.gql('mutation { logout(allSessions: true) }', {}, bearer(everywhere.accessToken));
    expect(await msUntil(meRefused(b, everywhere.accessToken))).toBeLessThan(1_000);

    // The session that changes the password stays; the user's other session (cached on B) ends.
    const changed = await userCachedOnB();
    const second = (await a.gql(LOGIN, { input: { username: changed.username, password: changed.password } })).data.login;
    const answer = await a.gql(
      'mutation ($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { __typename } }',
      { c: changed.password, n: 'another long password' },
      bearer(second.accessToken),
    );
    expect(answer.data?.changePassword?.__typename).not.toMatch(/Error$/);
    expect(await msUntil(meRefused(b, changed.accessToken))).toBeLessThan(1_000);
    expect((await b.gql(ME, {}, bearer(second.accessToken))).data?.me?.id).toBe(changed.user.id);

    const disabled = await userCachedOnB();
    await a.services.users.disable(disabled.user.id, OPERATOR);
    expect(await msUntil(meRefused(b, disabled.accessToken))).toBeLessThan(1_000);
  });

  it('a demotion on A: B refuses admin queries', async () => {
    // Two administrators: the last one cannot be demoted.
    const [admin, other] = [await registerUser(a), await registerUser(a)];
    await a.services.users.setRole(other.user.id, 'ADMIN', OPERATOR);
    await a.services.users.setRole(admin.user.id, 'ADMIN', OPERATOR);
    const usersQuery = 'query { users(first: 1) { edges { node { id } } } }';
    expect((await b.gql(usersQuery, {}, bearer(admin.accessToken))).errors).toBeUndefined();
    await a.services.users.setRole(admin.user.id, 'USER', OPERATOR);
    const forbidden = async () => (await b.gql(usersQuery, {}, bearer(admin.accessToken))).errors?.[0]?.extensions?.code === 'FORBIDDEN';
    expect(await msUntil(forbidden)).toBeLessThan(1_000);
  });

  it('an API token revoked on A: B refuses it', async () => {
    const user = await registerUser(a);
    const created = (await a.gql(CREATE_API_TOKEN, { input: { name: 'ci', scopes: ['PROFILE_READ'] } }, bearer(user.accessToken))).data.createApiToken;
    expect((await b.gql(ME, {}, bearer(created.token))).data?.me?.id).toBe(user.user.id);
    const revoked = await a.gql('mutation ($id: ID!) { revokeApiToken(id: $id) }', { id: created.apiToken.id }, bearer(user.accessToken));
    expect(revoked.data?.revokeApiToken).toBe(true);
    expect(await msUntil(meRefused(b, created.token))).toBeLessThan(1_000);
  });
});

describe.runIf(onPostgres)('when the listening connection breaks (PostgreSQL)', { timeout: 60_000 }, () => {
  const admin = new pg.Client({ connectionString: a.services.config.databaseUrl });
  afterAll(() => admin.end());

  it('B reads the database on every request (a revocation counts at once), says so on /health, and recovers', async () => {
    await admin.connect();
    const user = await userCachedOnB();
    // Ends B's listening connection, as a network cut or a PostgreSQL restart would (A's too: both listen).
    const { rowCount } = await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'gatehouse-change-feed' AND datname = current_database()",
    );
    expect(rowCount).toBe(2);
    await expect.poll(() => b.services.db.changes.state, { timeout: 5_000, interval: 5 }).toBe('degraded');
    // Whatever B does not hear now, it must not believe its cache: the revocation counts on the next request.
    await a.services.sessions.revoke((await a.services.sessions.listActive(user.user.id))[0]!.id, 'test');
    if (b.services.db.changes.state === 'degraded') expect(await meRefused(b, user.accessToken)()).toBe(true);
    await expect.poll(() => b.services.db.changes.state, { timeout: 10_000 }).toBe('live');
    expect(await (await b.yoga.fetch('http://gatehouse.test/health')).json()).toMatchObject({ status: 'ok', changeFeed: 'live' });
  });
});

describe.runIf(onPostgres)('with Redis, when Redis stops (PostgreSQL)', { timeout: 90_000 }, async () => {
  // vitest collects a skipped suite too (runs this function) but never its afterAll: start nothing then.
  if (!onPostgres) return;
  const redis = await OwnRedis.start();
  const withRedis = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: `gh-test-${process.pid}:` };
  const c = await createTestApp(withRedis);
  const d = await createTestApp({ ...withRedis, DATABASE_URL: c.services.config.databaseUrl, KEYS_FILE: c.services.config.keysFile });

  it('carries changes through Redis, refuses revocations at once while it is down, and recovers', async () => {
    expect(d.services.db.changes.transportNames).toEqual(['postgresql', 'redis']);
    const user = await registerUser(c);
    expect((await d.gql(ME, {}, bearer(user.accessToken))).data?.me?.id).toBe(user.user.id);

    await redis.stop();
    await expect.poll(() => d.services.db.changes.state, { timeout: 10_000, interval: 20 }).toBe('degraded');
    const health = async () => (await d.yoga.fetch('http://gatehouse.test/health')).json();
    await expect.poll(health, { timeout: 10_000 }).toMatchObject({ status: 'degraded', changeFeed: 'degraded', limits: 'degraded' });
    // Still answers, from the database on every request: the session works, and its end counts on the
    // very next request.
    const reads = vi.spyOn(rawDb(d.services).session, 'findUnique');
    try {
      for (let i = 0; i < 3; i++) expect((await d.gql(ME, {}, bearer(user.accessToken))).data?.me?.id).toBe(user.user.id);
      expect(reads).toHaveBeenCalledTimes(3);
    } finally {
      reads.mockRestore();
    }
    expect((await c.gql('mutation { logout }', {}, bearer(user.accessToken))).data?.logout).toBe(true);
    expect(await meRefused(d, user.accessToken)()).toBe(true);

    await redis.start();
    await expect.poll(() => d.services.db.changes.state, { timeout: 15_000, interval: 50 }).toBe('live');
    await expect.poll(health, { timeout: 10_000 }).toMatchObject({ status: 'ok', changeFeed: 'live', limits: 'shared' });
    const again = await userCachedOnBOf(c, d);
    await c.gql('mutation { logout }', {}, bearer(again.accessToken));
    expect(await msUntil(meRefused(d, again.accessToken))).toBeLessThan(1_000);
  });
});

async function userCachedOnBOf(first: TestApp, second: TestApp) {
  const user = await registerUser(first);
  expect((await second.gql(ME, {}, bearer(user.accessToken))).data?.me?.id).toBe(user.user.id);
  return user;
}
