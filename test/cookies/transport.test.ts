import { describe, expect, it } from 'vitest';
import { createTestApp, ManualClock, type TestApp, uniqueName } from '../support/app.js';
import { capturingLogger } from '../support/logs.js';
import { type Answer, LOGIN, LOGOUT, ME, REFRESH_BY_ARGUMENT, REFRESH_BY_COOKIE, REGISTER, send } from './support.js';

// REFRESH_TOKEN_TRANSPORT: where refresh tokens travel (answers, an httpOnly cookie, or both), how
// refresh and logout read the cookie, and what the cookie looks like. In process (yoga.fetch); the
// same over a listening server in server.test.ts.

const DAY_S = 86_400;
const clock = new ManualClock();
const logs = capturingLogger('info');
// Idle one day, absolute two: the cookie's Max-Age is whichever ends first.
const SESSIONS = { SESSION_IDLE_TIMEOUT_DAYS: '1', SESSION_ABSOLUTE_LIFETIME_DAYS: '2', REFRESH_REUSE_GRACE_SECONDS: '10' };
const [body, cookie, both] = await Promise.all([
  createTestApp({ ...SESSIONS }),
  createTestApp({ ...SESSIONS, REFRESH_TOKEN_TRANSPORT: 'cookie' }, { clock, logger: logs.logger }),
  createTestApp({ ...SESSIONS, REFRESH_TOKEN_TRANSPORT: 'both', REFRESH_COOKIE_SAMESITE: 'lax' }),
]);

async function register(app: TestApp, base?: string) {
  const answer = await send(app, REGISTER, { input: { username: uniqueName(), password: 'a long enough password' } }, { base });
  expect(answer.data?.register.__typename, JSON.stringify(answer)).toBe('AuthPayload');
  return answer;
}

const signedIn = (answer: Answer) => answer.data![Object.keys(answer.data!)[0]!];

describe('transport body (the default)', () => {
  it('answers the refresh token and never sets a cookie', async () => {
    const registered = await register(body);
    expect(signedIn(registered).refreshToken).toMatch(/^grt_/);
    expect(registered.cookie).toBeUndefined();
    const refreshed = await send(body, REFRESH_BY_ARGUMENT, { token: signedIn(registered).refreshToken });
    expect(signedIn(refreshed).__typename).toBe('AuthPayload');
    expect(refreshed.cookie).toBeUndefined();
  });

  it('ignores a refresh cookie sent to refresh and logout', async () => {
    const registered = await register(body);
    const token = signedIn(registered).refreshToken;
    const refreshed = await send(body, REFRESH_BY_COOKIE, {}, { cookie: token });
    expect(signedIn(refreshed)).toMatchObject({ __typename: 'InvalidRefreshTokenError', code: 'REFRESH_TOKEN_MISSING' });
    const logout = await send(body, LOGOUT, {}, { cookie: token });
    expect(logout.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(logout.cookie).toBeUndefined();
    // Untouched: the token still refreshes.
    expect(signedIn(await send(body, REFRESH_BY_ARGUMENT, { token })).__typename).toBe('AuthPayload');
  });

  it('logs out with the refresh token argument alone, without an access token', async () => {
    const registered = await register(body);
    const { refreshToken, accessToken } = signedIn(registered);
    expect((await send(body, LOGOUT, { token: refreshToken })).data?.logout).toBe(true);
    expect(signedIn(await send(body, REFRESH_BY_ARGUMENT, { token: refreshToken })).code).toBe('REFRESH_TOKEN_REVOKED');
    expect((await send(body, ME, {}, { authorization: accessToken })).errors?.[0]?.extensions).toMatchObject({
      code: 'UNAUTHENTICATED',
      reason: 'session_ended',
    });
    // Again, or with a token that is no session's: nothing to end.
    expect((await send(body, LOGOUT, { token: refreshToken })).data?.logout).toBe(false);
    expect((await send(body, LOGOUT, { token: 'grt_not-a-token' })).data?.logout).toBe(false);
  });
});

describe('transport cookie', () => {
  it('keeps the refresh token out of the answer and sets it in an httpOnly, SameSite=Strict cookie on /graphql', async () => {
    const registered = await register(cookie);
    expect(signedIn(registered).refreshToken).toBeNull();
    expect(registered.cookie?.value).toMatch(/^grt_/);
    expect(registered.cookie?.attributes).toEqual({ path: '/graphql', 'max-age': String(DAY_S), httponly: '', samesite: 'Strict', secure: '' });
    expect(registered.headers.get('cache-control')).toBe('no-store');
  });

  it('marks the cookie Secure except on localhost, 127.0.0.1 and [::1]', async () => {
    for (const base of ['http://localhost:4000', 'http://127.0.0.1:4000', 'http://[::1]:4000']) {
      expect((await register(cookie, base)).cookie?.attributes, base).not.toHaveProperty('secure');
    }
    for (const base of ['https://api.example.com', 'http://192.168.1.10:4000', 'http://localhost.example.com']) {
      expect((await register(cookie, base)).cookie?.attributes, base).toHaveProperty('secure', '');
    }
  });

  it('sets the cookie on login too, and its Max-Age never passes the session’s absolute end', async () => {
    const username = uniqueName();
    await send(cookie, REGISTER, { input: { username, password: 'a long enough password' } });
    const login = await send(cookie, LOGIN, { input: { username, password: 'a long enough password' } });
    expect(signedIn(login).refreshToken).toBeNull();
    let value = login.cookie!.value;
    // 1.5 days later, refreshed every half day: the idle day would reach past the absolute end (2 days).
    for (let i = 0; i < 3; i++) {
      clock.advance(DAY_S * 500);
      const refreshed = await send(cookie, REFRESH_BY_COOKIE, {}, { cookie: value });
      expect(signedIn(refreshed).__typename).toBe('AuthPayload');
      value = refreshed.cookie!.value;
      if (i === 2) expect(refreshed.cookie?.attributes['max-age']).toBe(String(DAY_S / 2));
    }
  });

  it('refreshes from the cookie, and the rotated token replaces it', async () => {
    const registered = await register(cookie);
    const first = registered.cookie!.value;
    const refreshed = await send(cookie, REFRESH_BY_COOKIE, {}, { cookie: first });
    expect(signedIn(refreshed)).toMatchObject({ __typename: 'AuthPayload', refreshToken: null });
    expect(refreshed.cookie?.value).toMatch(/^grt_/);
    expect(refreshed.cookie?.value).not.toBe(first);
    expect((await send(cookie, ME, {}, { authorization: signedIn(refreshed).accessToken })).data?.me.id).toBe(signedIn(registered).user.id);
    // The replacement is the live token.
    expect(signedIn(await send(cookie, REFRESH_BY_COOKIE, {}, { cookie: refreshed.cookie!.value })).__typename).toBe('AuthPayload');
  });

  it('detects reuse of an old cookie value as today, ends the session and clears the cookie', async () => {
    const registered = await register(cookie);
    const old = registered.cookie!.value;
    const refreshed = await send(cookie, REFRESH_BY_COOKIE, {}, { cookie: old });
    clock.advance(10_001);
    const reused = await send(cookie, REFRESH_BY_COOKIE, {}, { cookie: old });
    expect(signedIn(reused)).toMatchObject({ __typename: 'InvalidRefreshTokenError', code: 'REFRESH_TOKEN_REUSED' });
    expect(reused.cookie).toMatchObject({ value: '', attributes: { 'max-age': '0', path: '/graphql', httponly: '' } });
    expect(signedIn(await send(cookie, REFRESH_BY_COOKIE, {}, { cookie: refreshed.cookie!.value })).code).toBe('REFRESH_TOKEN_REVOKED');
  });

  it('answers REFRESH_TOKEN_MISSING without a cookie or argument, and trusts no cookie sent twice', async () => {
    expect(signedIn(await send(cookie, REFRESH_BY_COOKIE)).code).toBe('REFRESH_TOKEN_MISSING');
    // A sibling subdomain can plant a second cookie of the name; with two, neither is used.
    const value = (await register(cookie)).cookie!.value;
    const twice = await send(cookie, REFRESH_BY_COOKIE, {}, { headers: { cookie: `gatehouse_refresh=${value}; gatehouse_refresh=${value}` } });
    expect(signedIn(twice).code).toBe('REFRESH_TOKEN_MISSING');
  });

  it('logs out with the cookie alone after the access token expired, and clears the cookie', async () => {
    const registered = await register(cookie);
    const { accessToken } = signedIn(registered);
    clock.advance(16 * 60_000);
    expect((await send(cookie, ME, {}, { authorization: accessToken })).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    // The expired access token may still ride along: the cookie decides.
    const logout = await send(cookie, LOGOUT, {}, { cookie: registered.cookie!.value, authorization: accessToken });
    expect(logout.data?.logout).toBe(true);
    expect(logout.cookie).toMatchObject({ value: '', attributes: { 'max-age': '0' } });
    expect(signedIn(await send(cookie, REFRESH_BY_COOKIE, {}, { cookie: registered.cookie!.value })).code).toBe('REFRESH_TOKEN_REVOKED');
    // Logged with the token's user (no access token named one), and never with the token.
    const userId = signedIn(registered).user.id;
    expect(logs.entries()).toContainEqual(expect.objectContaining({ event: 'logout', outcome: 'success:refresh_token', userId }));
    expect(logs.lines.join('\n')).not.toContain(registered.cookie!.value);
  });

  it('clears the cookie on every logout, with the access token or none at all', async () => {
    const registered = await register(cookie);
    const byAccessToken = await send(cookie, LOGOUT, {}, { authorization: signedIn(registered).accessToken });
    expect(byAccessToken.data?.logout).toBe(true);
    expect(byAccessToken.cookie?.attributes['max-age']).toBe('0');
    const anonymous = await send(cookie, LOGOUT);
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(anonymous.cookie?.attributes['max-age']).toBe('0');
  });

  it('ends only its own session for an exchanged token, even with allSessions', async () => {
    const username = uniqueName();
    const password = 'a long enough password';
    const first = await send(cookie, REGISTER, { input: { username, password } });
    const second = await send(cookie, LOGIN, { input: { username, password } });
    await send(cookie, REFRESH_BY_COOKIE, {}, { cookie: first.cookie!.value });
    clock.advance(10_001);
    // The exchanged token: its session ends (as reuse would end it), but not every session of the user.
    expect((await send(cookie, LOGOUT, { all: true }, { cookie: first.cookie!.value })).data?.logout).toBe(true);
    expect(signedIn(await send(cookie, REFRESH_BY_COOKIE, {}, { cookie: first.cookie!.value })).code).toBe('REFRESH_TOKEN_REVOKED');
    const survivor = await send(cookie, REFRESH_BY_COOKIE, {}, { cookie: second.cookie!.value });
    expect(signedIn(survivor).__typename).toBe('AuthPayload');
    // The current token with allSessions ends them all.
    const third = await send(cookie, LOGIN, { input: { username, password } });
    expect((await send(cookie, LOGOUT, { all: true }, { cookie: third.cookie!.value })).data?.logout).toBe(true);
    expect(signedIn(await send(cookie, REFRESH_BY_COOKIE, {}, { cookie: survivor.cookie!.value })).code).toBe('REFRESH_TOKEN_REVOKED');
  });

  it('takes the previous token inside the grace window (a tab that lost a refresh race) as a plain logout', async () => {
    const registered = await register(cookie);
    const refreshed = await send(cookie, REFRESH_BY_COOKIE, {}, { cookie: registered.cookie!.value });
    clock.advance(5_000);
    const userId = signedIn(registered).user.id;
    const before = logs.entries().length;
    expect((await send(cookie, LOGOUT, {}, { cookie: registered.cookie!.value })).data?.logout).toBe(true);
    const logged = logs.entries().slice(before);
    expect(logged).toContainEqual(expect.objectContaining({ event: 'logout', outcome: 'success:refresh_token', userId }));
    expect(logged).not.toContainEqual(expect.objectContaining({ outcome: 'REFRESH_TOKEN_REUSED' }));
    expect(signedIn(await send(cookie, REFRESH_BY_COOKIE, {}, { cookie: refreshed.cookie!.value })).code).toBe('REFRESH_TOKEN_REVOKED');
  });

  it('never takes the cookie as authentication for other fields', async () => {
    const registered = await register(cookie);
    const me = await send(cookie, ME, {}, { cookie: registered.cookie!.value });
    expect(me.data?.me).toBeNull();
    expect(me.cookie).toBeUndefined();
  });
});

describe('transport both', () => {
  it('answers the refresh token and sets the same one in a SameSite=Lax cookie (REFRESH_COOKIE_SAMESITE=lax)', async () => {
    const registered = await register(both);
    expect(signedIn(registered).refreshToken).toMatch(/^grt_/);
    expect(registered.cookie?.value).toBe(signedIn(registered).refreshToken);
    expect(registered.cookie?.attributes.samesite).toBe('Lax');
    // By argument: the rotated token is answered and replaces the cookie too.
    const refreshed = await send(both, REFRESH_BY_ARGUMENT, { token: signedIn(registered).refreshToken });
    expect(refreshed.cookie?.value).toBe(signedIn(refreshed).refreshToken);
    // By cookie.
    const again = await send(both, REFRESH_BY_COOKIE, {}, { cookie: refreshed.cookie!.value });
    expect(signedIn(again).__typename).toBe('AuthPayload');
    expect(again.cookie?.value).toBe(signedIn(again).refreshToken);
  });
});
