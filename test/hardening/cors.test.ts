import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type Environment } from '../../src/config.js';
import { createTestApp, type TestApp } from '../support/app.js';

// CORS grants: never to `Origin: null` (any page can send it: sandboxed iframes, file: pages, some
// redirects), never credentials to an origin that is not listed, and the development default grants any
// origin only without credentials. Exposure.test.ts covers the configured-origin happy paths.

// Email off: production needs SMTP_URL, MAIL_FROM and APP_URL with it on, and these tests send no mail.
const PRODUCTION: Environment = { NODE_ENV: 'production', ARGON2_MEMORY_KIB: '19456', ARGON2_TIME_COST: '2', EMAIL_ENABLED: 'false' };
const LISTED = 'https://app.example';
const SECOND = 'https://admin.example';
const OTHER = 'https://evil.example';

const [developmentDefault, oneOrigin, twoOrigins, productionDefault] = await Promise.all([
  createTestApp({ NODE_ENV: 'development' }),
  createTestApp({ CORS_ORIGINS: LISTED }),
  createTestApp({ ...PRODUCTION, CORS_ORIGINS: `${LISTED},${SECOND}` }),
  createTestApp(PRODUCTION),
]);

const requests = {
  preflight: (app: TestApp, origin: string) =>
    app.yoga.fetch('http://gatehouse.test/graphql', {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, authorization' },
    }),
  post: (app: TestApp, origin: string) =>
    app.yoga.fetch('http://gatehouse.test/graphql', {
      method: 'POST',
      headers: { origin, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    }),
  get: (app: TestApp, origin: string) =>
    app.yoga.fetch('http://gatehouse.test/graphql?query=%7B__typename%7D', { headers: { origin, 'x-graphql-yoga-csrf': '1' } }),
};

async function grantsTo(app: TestApp, origin: string) {
  const answers = [];
  for (const [kind, send] of Object.entries(requests)) {
    const response = await send(app, origin);
    expect(response.status, kind).toBeLessThan(300);
    answers.push({
      kind,
      origin: response.headers.get('access-control-allow-origin'),
      credentials: response.headers.get('access-control-allow-credentials'),
    });
  }
  return answers;
}

const none = (kind: string) => ({ kind, origin: null, credentials: null });

describe('CORS', () => {
  it.each([
    ['the development default', () => developmentDefault],
    ['one listed origin', () => oneOrigin],
    ['two listed origins', () => twoOrigins],
    ['the production default', () => productionDefault],
  ])('never answers Origin: null (%s)', async (_label, app) => {
    expect(await grantsTo(app(), 'null')).toEqual(['preflight', 'post', 'get'].map(none));
  });

  it.each([
    ['one listed origin', () => oneOrigin],
    ['two listed origins', () => twoOrigins],
  ])('gives an unlisted origin no grant and no credentials (%s)', async (_label, app) => {
    expect(await grantsTo(app(), OTHER)).toEqual(['preflight', 'post', 'get'].map(none));
  });

  it('grants each listed origin exactly, with credentials, and varies the answer by Origin', async () => {
    for (const origin of [LISTED, SECOND]) {
      for (const answer of await grantsTo(twoOrigins, origin)) expect(answer).toMatchObject({ origin, credentials: 'true' });
    }
    const response = await requests.post(twoOrigins, LISTED);
    expect(response.headers.get('vary')?.toLowerCase()).toContain('origin');
  });

  it('answers any origin in development with "*" and never with credentials', async () => {
    for (const answer of await grantsTo(developmentDefault, OTHER)) expect(answer).toMatchObject({ origin: '*', credentials: null });
    const preflight = await requests.preflight(developmentDefault, OTHER);
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
  });

  it('refuses CORS_ORIGINS entries that are not origins, and "null"', () => {
    for (const bad of ['null', 'app.example', 'https://app.example/', 'https://app.example/path', 'ftp://app.example', `${LISTED}, null`]) {
      expect(() => loadConfig({ CORS_ORIGINS: bad }), bad).toThrow(ConfigError);
    }
    expect(loadConfig({ CORS_ORIGINS: `${LISTED}, http://localhost:5173, *` }).graphql.corsOrigins).toEqual([LISTED, 'http://localhost:5173', '*']);
  });
});
