import { describe, expect, it } from 'vitest';
import { loadConfig, type Environment } from '../../src/config.js';
import { rawDb } from '../support/raw-db.js';
import { createTestApp, type TestApp } from '../support/app.js';

// Introspection and GraphiQL (on in development, off by default in production) and CORS origins.

// Production refuses the cheap test argon2 settings; these tests hash nothing, so OWASP's cost is free.
// Email off: production needs SMTP_URL, MAIL_FROM and APP_URL with it on, and these tests send no mail.
const PRODUCTION: Environment = { NODE_ENV: 'production', ARGON2_MEMORY_KIB: '19456', ARGON2_TIME_COST: '2', EMAIL_ENABLED: 'false' };

const INTROSPECTION = '{ __schema { queryType { name } } }';
const TYPE_QUERY = '{ __type(name: "User") { fields { name } } }';

const [testEnv, development, production, productionWithIntrospection, introspectionOff, graphiqlOff] = await Promise.all([
  createTestApp(),
  createTestApp({ NODE_ENV: 'development' }),
  createTestApp(PRODUCTION),
  createTestApp({ ...PRODUCTION, INTROSPECTION: 'true', GRAPHIQL: 'true' }),
  createTestApp({ NODE_ENV: 'development', INTROSPECTION: 'false' }),
  createTestApp({ NODE_ENV: 'development', GRAPHIQL: 'false' }),
]);

function expectIntrospectionRefused(response: Awaited<ReturnType<TestApp['gql']>>) {
  expect(response.status).toBeLessThan(500);
  expect(response.data ?? null).toBeNull();
  expect(response.errors?.[0]?.message).toMatch(/introspection has been disabled/);
}

describe('introspection', () => {
  it.each([
    ['NODE_ENV=test', testEnv],
    ['NODE_ENV=development', development],
    ['NODE_ENV=production with INTROSPECTION=true', productionWithIntrospection],
  ])('is allowed with %s', async (_label, app) => {
    const schema = await app.gql(INTROSPECTION);
    expect(schema.errors).toBeUndefined();
    expect(schema.data.__schema.queryType.name).toBe('Query');
    const type = await app.gql(TYPE_QUERY);
    expect(type.data.__type.fields.map((field: { name: string }) => field.name)).toContain('username');
  });

  it.each([
    ['NODE_ENV=production (the default there)', production],
    ['INTROSPECTION=false in development', introspectionOff],
  ])('is refused with %s, and the API itself still works', async (_label, app) => {
    expectIntrospectionRefused(await app.gql(INTROSPECTION));
    expectIntrospectionRefused(await app.gql(TYPE_QUERY));
    const ok = await app.gql('{ userExists(username: "nobody") }');
    expect(ok.errors).toBeUndefined();
    expect(ok.data).toEqual({ userExists: false });
    // __typename is not introspection: clients rely on it for unions.
    expect((await app.gql('{ __typename }')).data).toEqual({ __typename: 'Query' });
  });

  it('does not leak the schema through "Did you mean" suggestions when it is off', async () => {
    const hidden = await production.gql('{ userExist(username: "a") }');
    expect(hidden.errors?.[0]?.message).not.toMatch(/Did you mean/);
    expect(JSON.stringify(hidden)).not.toContain('userExists');
    const shown = await development.gql('{ userExist(username: "a") }');
    expect(shown.errors?.[0]?.message).toMatch(/Did you mean "userExists"/);
  });
});

describe('GraphiQL', () => {
  const openInBrowser = (app: TestApp) => app.yoga.fetch('http://gatehouse.test/graphql', { headers: { accept: 'text/html' } });

  it('is served in development, with the example document', async () => {
    const response = await openInBrowser(development);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await response.text();
    expect(html).toContain('<title>Gatehouse</title>');
    expect(html).toContain('mutation Register');
  });

  it.each([
    ['NODE_ENV=production', production],
    ['GRAPHIQL=false in development', graphiqlOff],
  ])('is not served with %s', async (_label, app) => {
    const response = await openInBrowser(app);
    expect(response.status).not.toBe(200);
    expect(response.headers.get('content-type') ?? '').not.toMatch(/text\/html/);
    expect(await response.text()).not.toMatch(/<html/i);
  });

  it('can be switched on in production with GRAPHIQL=true', async () => {
    const response = await openInBrowser(productionWithIntrospection);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('<title>Gatehouse</title>');
  });
});

const ALLOWED = 'https://app.example';
const OTHER = 'https://evil.example';
const [configured, configuredInProduction] = await Promise.all([
  createTestApp({ CORS_ORIGINS: ALLOWED }),
  createTestApp({ ...PRODUCTION, CORS_ORIGINS: `${ALLOWED}, https://admin.example` }),
]);

describe('CORS', () => {
  const preflight = (app: TestApp, origin: string) =>
    app.yoga.fetch('http://gatehouse.test/graphql', {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, authorization' },
    });
  const postFrom = (app: TestApp, origin: string) =>
    app.yoga.fetch('http://gatehouse.test/graphql', {
      method: 'POST',
      headers: { origin, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
  const getFrom = (app: TestApp, origin: string) =>
    app.yoga.fetch('http://gatehouse.test/graphql?query=%7B__typename%7D', { headers: { origin, 'x-graphql-yoga-csrf': '1' } });

  it.each([
    ['CORS_ORIGINS=https://app.example', () => configured],
    ['the same in production, with a list', () => configuredInProduction],
  ])('grants a configured origin (%s): preflight, POST and GET', async (_label, app) => {
    for (const response of [await preflight(app(), ALLOWED), await postFrom(app(), ALLOWED), await getFrom(app(), ALLOWED)]) {
      expect(response.status).toBeLessThan(300);
      expect(response.headers.get('access-control-allow-origin')).toBe(ALLOWED);
      expect(response.headers.get('access-control-allow-credentials')).toBe('true');
    }
    const allowedHeaders = (await preflight(app(), ALLOWED)).headers.get('access-control-allow-headers') ?? '';
    expect(allowedHeaders.toLowerCase()).toContain('authorization');
  });

  it('does not grant another origin', async () => {
    for (const app of [configured, configuredInProduction]) {
      for (const response of [await preflight(app, OTHER), await postFrom(app, OTHER), await getFrom(app, OTHER)]) {
        const granted = response.headers.get('access-control-allow-origin');
        // A browser only lets the page read the answer when this names its origin (or is *).
        expect(granted).not.toBe(OTHER);
        expect(granted).not.toBe('*');
      }
    }
  });

  it('grants the second origin of a list', async () => {
    const response = await preflight(configuredInProduction, 'https://admin.example');
    expect(response.headers.get('access-control-allow-origin')).toBe('https://admin.example');
  });

  it('sends no CORS headers in production by default', async () => {
    for (const response of [await preflight(production, ALLOWED), await postFrom(production, ALLOWED), await getFrom(production, ALLOWED)]) {
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
      expect(response.headers.get('access-control-allow-credentials')).toBeNull();
    }
  });

  it('answers any origin in development by default', async () => {
    const response = await preflight(development, OTHER);
    expect(['*', OTHER]).toContain(response.headers.get('access-control-allow-origin'));
  });
});

// An unexpected error (here: the users table is gone) must come back as "Unexpected error." with no
// internal message, stack trace, originalError or file path, in every mode, unless GRAPHQL_DEBUG_ERRORS.
const [brokenDevelopment, brokenProduction, brokenWithDebug] = await Promise.all([
  createTestApp({ NODE_ENV: 'development' }),
  createTestApp(PRODUCTION),
  createTestApp({ NODE_ENV: 'development', GRAPHQL_DEBUG_ERRORS: 'true' }),
]);
for (const app of [brokenDevelopment, brokenProduction, brokenWithDebug]) {
  // Past the stores, as another process would; the same statement on both engines.
  await rawDb(app.services).$executeRawUnsafe('ALTER TABLE "User" RENAME TO "UserGone"');
}

describe('unexpected errors', () => {
  // Yoga decides "development" from process.env.NODE_ENV at the moment it masks, not from our config.
  async function askAsIfStartedWith(nodeEnv: string, app: TestApp) {
    const before = process.env.NODE_ENV;
    process.env.NODE_ENV = nodeEnv;
    try {
      return await app.gql('{ userExists(username: "someone") }');
    } finally {
      process.env.NODE_ENV = before;
    }
  }

  const INTERNALS = [
    /stack/i,
    /originalError/,
    /UserGone|no such table|does not exist|prisma/i,
    /node_modules/,
    /\.ts:\d+/,
    /\bat \w/,
    new RegExp(process.cwd().replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')),
  ];

  it.each([
    ['NODE_ENV=development', 'development', () => brokenDevelopment],
    ['NODE_ENV=production', 'production', () => brokenProduction],
  ])('are masked with %s', async (_label, nodeEnv, app) => {
    const response = await askAsIfStartedWith(nodeEnv, app());
    expect(response.errors).toHaveLength(1);
    expect(response.errors![0]).toMatchObject({ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    const answer = JSON.stringify(response);
    for (const internal of INTERNALS) expect(answer).not.toMatch(internal);
  });

  it('are masked for a request that fails before execution too (malformed body), in development', async () => {
    const before = process.env.NODE_ENV;
    process.env.NODE_ENV = 'development';
    try {
      for (const body of ['{"query": ', '{"query": "{ userExists(username: \\"a\\") }", "variables": 5}', '[]']) {
        const response = await brokenDevelopment.yoga.fetch('http://gatehouse.test/graphql', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        expect(response.status).toBeLessThan(500);
        const answer = await response.text();
        for (const internal of INTERNALS) expect(answer).not.toMatch(internal);
      }
    } finally {
      process.env.NODE_ENV = before;
    }
  });

  it('show their details only with GRAPHQL_DEBUG_ERRORS=true', async () => {
    expect(loadConfig({}).graphql.debugErrors).toBe(false);
    const response = await askAsIfStartedWith('development', brokenWithDebug);
    expect(JSON.stringify(response.errors)).toMatch(/originalError/);
    expect(JSON.stringify(response.errors)).toMatch(/does not exist in the current database/);
  });
});

// With introspection off, no error message names what the schema has: not fields, arguments, types,
// input fields nor enum values, whether the mistake is in the document or in a variable.
describe('"Did you mean" suggestions', () => {
  const cases: [string, string, Record<string, unknown> | undefined, RegExp][] = [
    ['a misspelled field', '{ userExist(username: "a") }', undefined, /userExists/],
    ['a misspelled argument', '{ userExists(usernam: "a") }', undefined, /Did you mean/],
    ['a bad enum literal', 'mutation { setUserRole(id: "x", role: ADMN) { __typename } }', undefined, /"ADMIN"/],
    ['a bad enum variable', 'mutation ($role: Role!) { setUserRole(id: "x", role: $role) { __typename } }', { role: 'ADMN' }, /"ADMIN"/],
    ['a misspelled input field', 'mutation { login(input: { usernam: "a", password: "b" }) { __typename } }', undefined, /Did you mean "username"/],
    [
      'a misspelled input field in a variable',
      'mutation ($input: LoginInput!) { login(input: $input) { __typename } }',
      { input: { usernam: 'a', password: 'b' } },
      /Did you mean "username"/,
    ],
    ['a misspelled type in a fragment', '{ me { ...F } } fragment F on Usr { id }', undefined, /Did you mean "User"/],
    ['a field on a union', 'mutation { login(input: { username: "a", password: "b" }) { accessToken } }', undefined, /Did you mean to use an inline fragment/],
  ];

  it.each(cases)('are hidden in production for %s', async (_label, query, variables, revealing) => {
    const response = await production.gql(query, variables);
    expect(response.errors?.length).toBeGreaterThan(0);
    const messages = response.errors!.map((error) => error.message).join('\n');
    expect(messages).not.toMatch(/Did you mean/i);
    expect(messages).not.toMatch(revealing);
    expect(messages).not.toMatch(/\[Suggestion hidden\]/);
  });

  it.each(cases)('are still given in development for %s', async (_label, query, variables) => {
    const response = await development.gql(query, variables);
    expect(response.errors!.map((error) => error.message).join('\n')).toMatch(/Did you mean/);
  });
});
