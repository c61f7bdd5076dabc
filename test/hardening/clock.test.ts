import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/auth/rate-limit.js';
import { MemoryRateWindows } from '../../src/auth/rate-limit-memory.js';
import { bearer, createTestApp, ManualClock, REFRESH, registerUser, type TestApp } from '../support/app.js';
import { createApiToken, me } from '../support/accounts.js';
import { fromIp } from './operations.js';
import { rawDb } from '../support/raw-db.js';

// The wall clock jumping back (an NTP step, an operator fixing the date, a VM resumed) must not bend
// the rules that measure time: refresh reuse grace, lockouts and cache lifetimes. ManualClock's
// `advance` is time passing (wall and monotonic), `jumpWallClock` the wall clock alone being set.

// With TEST_REDIS_URL the lockout is shared through Redis, whose locks end with Redis's own TTLs, not with
// the test's ManualClock: the tests that let a lock run out by advancing that clock run in memory only.
// test/limits/lockout-shared.test.ts checks the same rules on Redis in real time.
const withManualClockLocks = it.skipIf(Boolean(process.env.TEST_REDIS_URL));

const SECOND = 1000;
const HOUR = 3_600_000;

const clock = new ManualClock();
const app = await createTestApp({ TRUST_PROXY: 'true' }, { clock });

async function refresh(target: TestApp, token: string) {
  const response = await target.gql(REFRESH, { token });
  expect(response.errors).toBeUndefined();
  return response.data.refresh as { __typename: string; code?: string; refreshToken?: string; accessToken?: string };
}

const sessionIdOf = (refreshToken: string) => refreshToken.slice('grt_'.length, 'grt_'.length + 36);

/** The wall clock goes back an hour, then `ms` pass. */
async function jumpBackThenElapse(ms: number) {
  clock.jumpWallClock(-HOUR);
  clock.advance(ms);
  // lru-cache memoizes its clock reading until a 1 ms timer fires; let it, as real time would.
  await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('refresh reuse grace across a backward wall-clock jump', () => {
  it('answers a reused refresh token with REFRESH_TOKEN_REUSED, not a fresh AuthPayload, after the clock went back an hour', async () => {
    const { refreshToken } = await registerUser(app);
    const rotated = await refresh(app, refreshToken);
    expect(rotated.__typename).toBe('AuthPayload');
    clock.advance(60 * SECOND); // well past the 10 s grace: the first token is now a copy
    clock.jumpWallClock(-HOUR);
    // Now - rotatedAt is negative: "less than the grace" must not read as "inside the grace".
    expect(await refresh(app, refreshToken)).toMatchObject({ __typename: 'InvalidRefreshTokenError', code: 'REFRESH_TOKEN_REUSED' });
    expect((await refresh(app, rotated.refreshToken!)).code).toBe('REFRESH_TOKEN_REVOKED');
  });

  it('still gives racing tabs the current token inside the grace when the clock did not move', async () => {
    const { refreshToken } = await registerUser(app);
    const rotated = await refresh(app, refreshToken);
    clock.advance(5 * SECOND);
    expect(await refresh(app, refreshToken)).toMatchObject({ __typename: 'AuthPayload', refreshToken: rotated.refreshToken });
  });
});

describe('lockout across a backward wall-clock jump', () => {
  const LOGIN = /* GraphQL */ `
    mutation Login($input: LoginInput!) {
      login(input: $input) { __typename ... on Error { code } ... on InvalidCredentialsError { retryAfter } }
    }
  `;
  const login = async (username: string, password: string, ip: string) =>
    (await app.gql(LOGIN, { input: { username, password } }, fromIp(ip))).data.login as { __typename: string; code?: string; retryAfter?: number | null };

  withManualClockLocks('is not extended by the jump: it ends after its own length of elapsed time', async () => {
    const { username, password } = await registerUser(app);
    for (let i = 0; i < 10; i += 1) expect((await login(username, `wrong ${i}`, '10.9.0.1')).code).toBe('INVALID_CREDENTIALS');
    expect(await login(username, password, '10.9.0.1')).toMatchObject({ code: 'LOGIN_LOCKED', retryAfter: 30 });

    clock.jumpWallClock(-HOUR);
    expect(await login(username, password, '10.9.0.1')).toMatchObject({ code: 'LOGIN_LOCKED', retryAfter: 30 });
    clock.advance(30 * SECOND);
    expect((await login(username, password, '10.9.0.1')).__typename).toBe('AuthPayload');
  });

  it('is not ended early by a forward jump', async () => {
    const { username, password } = await registerUser(app);
    for (let i = 0; i < 10; i += 1) await login(username, `wrong ${i}`, '10.9.0.2');
    clock.jumpWallClock(HOUR);
    expect(await login(username, password, '10.9.0.2')).toMatchObject({ code: 'LOGIN_LOCKED', retryAfter: 30 });
  });
});

describe('cache lifetimes across a backward wall-clock jump (30 s of elapsed time, whatever the wall clock says)', () => {
  it('sees a session revoked by another process once its cached state has expired', async () => {
    const { accessToken, refreshToken } = await registerUser(app);
    expect((await me(app, accessToken)).data.me).not.toBeNull(); // the session's state is now cached
    // As the admin CLI or a second server would: straight to the database, past this process's memory.
    await rawDb(app.services).session.update({ where: { id: sessionIdOf(refreshToken) }, data: { revokedAt: new Date(clock.now()) } });
    expect((await me(app, accessToken)).data.me).not.toBeNull(); // still cached: the 30 s are documented

    await jumpBackThenElapse(30 * SECOND + 1);
    expect((await me(app, accessToken)).errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'session_ended' });
  });

  it('sees a user disabled by another process once the cached user row has expired', async () => {
    const { accessToken, user } = await registerUser(app);
    expect((await me(app, accessToken)).data.me).not.toBeNull();
    await rawDb(app.services).user.update({ where: { id: user.id }, data: { disabledAt: new Date(clock.now()) } });

    await jumpBackThenElapse(30 * SECOND + 1);
    expect((await me(app, accessToken)).errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'user_unavailable' });
  });

  it('sees an API token revoked by another process once its cached state has expired', async () => {
    const { accessToken } = await registerUser(app);
    const { token, apiToken } = await createApiToken(app, accessToken, { scopes: ['PROFILE_READ'] });
    expect((await app.gql('query { me { id } }', {}, bearer(token))).data.me).not.toBeNull();
    await rawDb(app.services).apiToken.update({ where: { id: apiToken.id }, data: { revokedAt: new Date(clock.now()) } });

    await jumpBackThenElapse(30 * SECOND + 1);
    expect((await app.gql('query { me { id } }', {}, bearer(token))).errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it("keeps recording an API token's last use after the clock went back", async () => {
    const { accessToken } = await registerUser(app);
    const { token, apiToken } = await createApiToken(app, accessToken, { scopes: ['PROFILE_READ'] });
    const lastUsed = async () => (await rawDb(app.services).apiToken.findUniqueOrThrow({ where: { id: apiToken.id } })).lastUsedAt?.getTime();
    await app.gql('query { me { id } }', {}, bearer(token));
    const first = clock.now();
    await expect.poll(lastUsed, { timeout: 10_000 }).toBe(first);

    clock.jumpWallClock(-HOUR);
    clock.advance(61 * SECOND); // past the once-a-minute throttle in elapsed time
    await app.gql('query { me { id } }', {}, bearer(token));
    await expect.poll(lastUsed, { timeout: 10_000 }).toBe(clock.now());
  });
});

describe('rate limits across a backward wall-clock jump', () => {
  // The in-process windows run on the monotonic clock; Redis's windows are Redis's own TTLs.
  it('end a window after its length in elapsed time, whatever the wall clock did', async () => {
    const ownClock = new ManualClock();
    const rule = { max: 1, windowMs: 60 * SECOND };
    const limiter = new RateLimiter(
      {
        register: rule,
        login: rule,
        loginAccount: rule,
        userExists: rule,
        refresh: rule,
        availabilityProbe: rule,
        availabilityProbeAccount: rule,
        emailRecipient: rule,
        emailClient: rule,
      },
      new MemoryRateWindows(10, ownClock),
    );
    await limiter.consume('login', 'client');
    await expect(limiter.consume('login', 'client')).rejects.toMatchObject({ retryAfterSeconds: 60 });
    ownClock.jumpWallClock(-HOUR);
    // Still refused at once, for the rest of the window only…
    await expect(limiter.consume('login', 'client')).rejects.toMatchObject({ retryAfterSeconds: 60 });
    // …and a window later admitted, instead of an hour and a window later.
    ownClock.advance(61 * SECOND);
    await expect(limiter.consume('login', 'client')).resolves.toBeUndefined();
  });
});
