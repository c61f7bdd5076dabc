import { describe, expect, it } from 'vitest';
import { createTestApp, type TestApp, uniqueName } from '../support/app.js';
import { LOGOUT, REFRESH_BY_COOKIE, REGISTER, send } from './support.js';

// CSRF on the cookie path: Yoga's CSRF rule stays, and a request carrying the refresh cookie from an
// Origin that is neither the API's own nor listed in CORS_ORIGINS is refused. CORS with credentials:
// only listed origins, never `null`; preflights are cached (Access-Control-Max-Age).

const LISTED = 'https://app.example';
const SIBLING = 'https://evil.example'; // e.g. another subdomain of the same site: SameSite lets it through
const [listed, developmentDefault, bodyTransport, proxied] = await Promise.all([
  createTestApp({ REFRESH_TOKEN_TRANSPORT: 'cookie', CORS_ORIGINS: LISTED }),
  // The development default CORS_ORIGINS is "*": that grants no origin the cookie.
  createTestApp({ REFRESH_TOKEN_TRANSPORT: 'cookie', NODE_ENV: 'development' }),
  createTestApp({ CORS_ORIGINS: LISTED }),
  createTestApp({ REFRESH_TOKEN_TRANSPORT: 'cookie', TRUST_PROXY: 'true' }),
]);

async function cookieOf(app: TestApp): Promise<string> {
  const answer = await send(app, REGISTER, { input: { username: uniqueName(), password: 'a long enough password' } });
  return answer.cookie?.value ?? answer.data!.register.refreshToken;
}

describe('the Origin check on the refresh cookie', () => {
  it.each([
    ['an unlisted origin', SIBLING],
    ['Origin: null', 'null'],
    ['the API host over another scheme', 'https://gatehouse.test'],
  ])('refuses %s carrying the cookie with 403 ORIGIN_NOT_ALLOWED, before anything runs', async (_label, origin) => {
    const value = await cookieOf(listed);
    for (const query of [REFRESH_BY_COOKIE, LOGOUT]) {
      const refused = await send(listed, query, {}, { cookie: value, origin });
      expect(refused.status).toBe(403);
      expect(refused.errors?.[0]?.extensions?.code).toBe('ORIGIN_NOT_ALLOWED');
      expect(refused.data).toBeUndefined();
      expect(refused.cookie).toBeUndefined();
      expect(refused.headers.get('access-control-allow-credentials')).toBeNull();
    }
    // Neither rotated nor ended: the token is still the live one.
    expect((await send(listed, REFRESH_BY_COOKIE, {}, { cookie: value, origin: LISTED })).data?.refresh.__typename).toBe('AuthPayload');
  });

  it('serves a listed origin with credentials, the API’s own origin, and clients that send no Origin', async () => {
    const fromApp = await send(listed, REFRESH_BY_COOKIE, {}, { cookie: await cookieOf(listed), origin: LISTED });
    expect(fromApp.data?.refresh.__typename).toBe('AuthPayload');
    expect(fromApp.cookie?.value).toMatch(/^grt_/);
    expect(fromApp.headers.get('access-control-allow-origin')).toBe(LISTED);
    expect(fromApp.headers.get('access-control-allow-credentials')).toBe('true');
    const sameOrigin = await send(listed, REFRESH_BY_COOKIE, {}, { cookie: await cookieOf(listed), origin: 'http://gatehouse.test' });
    expect(sameOrigin.data?.refresh.__typename).toBe('AuthPayload');
    const noOrigin = await send(listed, REFRESH_BY_COOKIE, {}, { cookie: await cookieOf(listed) });
    expect(noOrigin.data?.refresh.__typename).toBe('AuthPayload');
  });

  it('does not count "*" as listing an origin', async () => {
    const refused = await send(developmentDefault, REFRESH_BY_COOKIE, {}, { cookie: await cookieOf(developmentDefault), origin: SIBLING });
    expect(refused.status).toBe(403);
    expect(refused.errors?.[0]?.extensions?.code).toBe('ORIGIN_NOT_ALLOWED');
  });

  it('takes the scheme of the own origin from X-Forwarded-Proto only with TRUST_PROXY', async () => {
    const headers = { 'x-forwarded-proto': 'https' };
    const behindTls = await send(proxied, REFRESH_BY_COOKIE, {}, { cookie: await cookieOf(proxied), origin: 'https://gatehouse.test', headers });
    expect(behindTls.data?.refresh.__typename).toBe('AuthPayload');
    const untrusted = await send(listed, REFRESH_BY_COOKIE, {}, { cookie: await cookieOf(listed), origin: 'https://gatehouse.test', headers });
    expect(untrusted.status).toBe(403);
  });

  it('keeps Yoga’s CSRF rule: a form-like request with the cookie and no CSRF header is refused', async () => {
    const refused = await send(listed, REFRESH_BY_COOKIE, {}, { cookie: await cookieOf(listed), headers: { 'content-type': 'text/plain' } });
    expect(refused.status).toBe(403);
    expect(refused.errors?.[0]?.extensions?.code).toBe('CSRF_HEADER_REQUIRED');
    expect(refused.cookie).toBeUndefined();
  });

  it('checks nothing with transport body, where no cookie is read', async () => {
    const value = await cookieOf(bodyTransport);
    const answer = await send(bodyTransport, REFRESH_BY_COOKIE, {}, { cookie: value, origin: SIBLING });
    expect(answer.status).toBe(200);
    expect(answer.data?.refresh.code).toBe('REFRESH_TOKEN_MISSING');
  });
});

describe('CORS for cookie apps', () => {
  const preflight = (app: TestApp, origin: string) =>
    app.yoga.fetch('http://gatehouse.test/graphql', {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });

  it('grants a listed origin credentials and lets the browser cache the preflight for 10 minutes', async () => {
    const response = await preflight(listed, LISTED);
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe(LISTED);
    expect(response.headers.get('access-control-allow-credentials')).toBe('true');
    expect(response.headers.get('access-control-allow-methods')).toContain('POST');
    expect(response.headers.get('access-control-max-age')).toBe('600');
  });

  it.each([
    ['null', 'null'],
    ['an unlisted origin', SIBLING],
  ])('grants %s nothing, credentials least of all', async (_label, origin) => {
    for (const app of [listed, developmentDefault]) {
      const response = await preflight(app, origin);
      expect(response.headers.get('access-control-allow-credentials')).toBeNull();
      if (app === listed || origin === 'null') expect(response.headers.get('access-control-allow-origin')).toBeNull();
    }
  });
});
