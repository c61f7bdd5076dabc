import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestApp, ManualClock } from '../support/app.js';
import { COOKIE, refreshCookieOf } from './support.js';

// Over real listening servers: the API (node:http, as `npm start` serves it) and, on another port, the
// page of a browser app. First Node's fetch, carrying the cookie by hand; then Debian's Chromium, which
// keeps the cookie itself, runs the app's script: register, refresh from the cookie, the access token
// expires, logout by cookie alone, and refresh again finds no cookie. The page runs in headless Chromium
// with --dump-dom; its script writes what it saw into the page.

const listen = (server: Server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));

const clock = new ManualClock();
let page = '';
const pageServer = createServer((request, response) => {
  // The test's hand on the clock: the page asks for time to pass (same origin as the page, not the API).
  if (request.url === '/advance') {
    clock.advance(16 * 60_000);
    response.end('ok');
    return;
  }
  response.setHeader('content-type', 'text/html');
  response.end(page);
});
const pagePort = await listen(pageServer);
const appOrigin = `http://localhost:${pagePort}`;
const app = await createTestApp({ REFRESH_TOKEN_TRANSPORT: 'cookie', CORS_ORIGINS: appOrigin }, { clock });
const apiServer = createServer(app.yoga);
const apiPort = await listen(apiServer);
const profile = mkdtempSync(path.join(tmpdir(), 'gatehouse-chromium-'));
afterAll(async () => {
  await Promise.all([apiServer, pageServer].map((server) => new Promise((resolve) => server.close(resolve))));
  rmSync(profile, { recursive: true, force: true });
});

describe('over a listening server', () => {
  it('sets the cookie over HTTP and takes it back from a real fetch', async () => {
    const api = `http://127.0.0.1:${apiPort}/graphql`;
    const post = (query: string, headers: Record<string, string> = {}) =>
      fetch(api, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query }) });
    const registered = await post(
      'mutation { register(input: { username: "fetcher", password: "a long enough password" }) { ... on AuthPayload { refreshToken } } }',
    );
    expect((await registered.json()).data.register.refreshToken).toBeNull();
    const cookie = refreshCookieOf(registered.headers);
    expect(cookie?.attributes).toEqual({ path: '/graphql', 'max-age': String(30 * 86_400), httponly: '', samesite: 'Strict' });

    const refreshed = await post('mutation { refresh { __typename } }', { cookie: `${COOKIE}=${cookie!.value}`, origin: appOrigin });
    expect((await refreshed.json()).data.refresh.__typename).toBe('AuthPayload');
    expect(refreshed.headers.get('access-control-allow-credentials')).toBe('true');
    expect(refreshCookieOf(refreshed.headers)?.value).toMatch(/^grt_/);
  });
});

const SCRIPT = (api: string) => `
const api = ${JSON.stringify(api)};
const seen = {};
const gql = async (query, accessToken) => {
  const headers = { 'content-type': 'application/json' };
  if (accessToken) headers.authorization = 'Bearer ' + accessToken;
  const response = await fetch(api, { method: 'POST', credentials: 'include', headers, body: JSON.stringify({ query }) });
  return response.json();
};
(async () => {
  try {
    const registered = await gql('mutation { register(input: { username: "browser", password: "a long enough password" }) { ... on AuthPayload { accessToken refreshToken } } }');
    seen.refreshTokenInAnswer = registered.data.register.refreshToken;
    seen.cookieVisibleToScript = document.cookie.includes('${COOKIE}');
    const refreshed = await gql('mutation { refresh { __typename ... on AuthPayload { accessToken refreshToken } ... on Error { code } } }');
    seen.refresh = refreshed.data.refresh.__typename;
    seen.me = (await gql('{ me { username } }', refreshed.data.refresh.accessToken)).data?.me?.username ?? null;
    await fetch('/advance');
    seen.meAfterExpiry = (await gql('{ me { username } }', refreshed.data.refresh.accessToken)).errors?.[0]?.extensions?.code ?? null;
    seen.logout = (await gql('mutation { logout }')).data?.logout ?? null;
    const again = await gql('mutation { refresh { __typename ... on Error { code } } }');
    seen.refreshAfterLogout = again.data.refresh.code;
  } catch (error) {
    seen.error = String(error);
  }
  document.getElementById('result').textContent = JSON.stringify(seen);
})();
`;

describe('in Chromium', () => {
  it('keeps the refresh token in an httpOnly cookie the app never sees, and logs out by cookie after the access token expired', async () => {
    page = `<!doctype html><html><body><pre id="result">pending</pre><script>${SCRIPT(`http://localhost:${apiPort}/graphql`)}</script></body></html>`;
    const { stdout } = await promisify(execFile)(
      '/usr/bin/chromium',
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        `--user-data-dir=${profile}`,
        // Virtual time waits for the page's fetches; the budget only bounds timers.
        '--virtual-time-budget=20000',
        '--dump-dom',
        // Under the cookie's Path (cookies ignore ports): without HttpOnly, document.cookie would show it here.
        `${appOrigin}/graphql/app`,
      ],
      { timeout: 60_000 },
    );
    const result = JSON.parse(/<pre id="result">([\s\S]*?)<\/pre>/.exec(stdout)?.[1]?.replaceAll('&quot;', '"') ?? 'null');
    expect(result).toEqual({
      refreshTokenInAnswer: null,
      cookieVisibleToScript: false,
      refresh: 'AuthPayload',
      me: 'browser',
      meAfterExpiry: 'UNAUTHENTICATED',
      logout: true,
      refreshAfterLogout: 'REFRESH_TOKEN_MISSING',
    });
  }, 90_000);
});
