import { describe, expect, it, vi } from 'vitest';
import type { Environment } from '../src/config.js';
import { bearer, createTestApp, LOGIN, ME, REFRESH, REGISTER, type TestApp, uniqueName } from './support/app.js';

// Production refuses the cheap test argon2 settings; these apps hash nothing. Email off: production
// needs SMTP settings with it on.
const PRODUCTION: Environment = { NODE_ENV: 'production', ARGON2_MEMORY_KIB: '19456', ARGON2_TIME_COST: '2', EMAIL_ENABLED: 'false' };
const TOKEN = 'a-metrics-token-of-some-length';

const [app, development, protectedApp, production, productionWithToken, noEmail] = await Promise.all([
  createTestApp(),
  createTestApp({ NODE_ENV: 'development' }),
  createTestApp({ METRICS_TOKEN: TOKEN }),
  createTestApp(PRODUCTION),
  createTestApp({ ...PRODUCTION, METRICS_TOKEN: TOKEN }),
  createTestApp({ EMAIL_ENABLED: 'false' }),
]);

const scrape = (target: TestApp, headers: Record<string, string> = {}) => target.yoga.fetch('http://gatehouse.test/metrics', { headers });

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses the Prometheus text format strictly enough that a malformed line fails the test. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g)) labels[pair[1] as string] = pair[2] as string;
    // prom-client writes NaN as "Nan" (Prometheus reads the special values case-insensitively).
    const special: Record<string, number> = { nan: Number.NaN, '+inf': Number.POSITIVE_INFINITY, '-inf': Number.NEGATIVE_INFINITY };
    const value = special[(match[3] as string).toLowerCase()] ?? Number(match[3]);
    if (Number.isNaN(value) && (match[3] as string).toLowerCase() !== 'nan') throw new Error(`not a number: ${line}`);
    samples.push({ name: match[1] as string, labels, value });
  }
  return samples;
}

async function samples(target: TestApp): Promise<Sample[]> {
  const response = await scrape(target);
  expect(response.status).toBe(200);
  return parseExposition(await response.text());
}

/** The value of one series (0 when absent: a counter not yet incremented has no series). */
function seriesValue(all: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = all.find((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  return found?.value ?? 0;
}

/** The sum over every series of `name` matching `labels` (e.g. one operation, every outcome). */
function sumOf(all: Sample[], name: string, labels: Record<string, string>): number {
  return all
    .filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
    .reduce((sum, sample) => sum + sample.value, 0);
}

describe('GET /metrics', () => {
  it('answers the Prometheus text format with the registry content type, default process metrics included', async () => {
    const response = await scrape(app);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const all = parseExposition(await response.text());
    expect(seriesValue(all, 'gatehouse_process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(all.some((sample) => sample.name === 'gatehouse_nodejs_heap_size_used_bytes')).toBe(true);
  });

  it('counts register, login and a failed login: auth events, requests per operation, latency buckets, hash times', async () => {
    const before = await samples(app);
    const username = uniqueName();
    const password = 'a long enough password';
    expect((await app.gql(REGISTER, { input: { username, password } })).data.register.__typename).toBe('AuthPayload');
    expect((await app.gql(LOGIN, { input: { username, password } })).data.login.__typename).toBe('AuthPayload');
    const failed = await app.gql(LOGIN, { input: { username, password: 'not the password at all' } });
    expect(failed.data?.login.__typename ?? failed.errors?.[0]?.extensions?.code).not.toBe('AuthPayload');
    const after = await samples(app);

    const moved = (name: string, labels: Record<string, string> = {}) => seriesValue(after, name, labels) - seriesValue(before, name, labels);
    expect(moved('gatehouse_auth_events_total', { event: 'register', outcome: 'success' })).toBe(1);
    expect(moved('gatehouse_auth_events_total', { event: 'login', outcome: 'success' })).toBe(1);
    expect(moved('gatehouse_auth_events_total', { event: 'login', outcome: 'INVALID_CREDENTIALS' })).toBe(1);
    expect(moved('gatehouse_graphql_requests_total', { operation: 'register', outcome: 'success' })).toBe(1);
    expect(moved('gatehouse_graphql_requests_total', { operation: 'login', outcome: 'success' })).toBe(2);
    expect(moved('gatehouse_graphql_request_duration_seconds_count', { operation: 'login' })).toBe(2);
    expect(moved('gatehouse_graphql_request_duration_seconds_bucket', { operation: 'login', le: '+Inf' })).toBe(2);
    expect(moved('gatehouse_graphql_request_duration_seconds_bucket', { operation: 'register', le: '10' })).toBe(1);
    // register hashes once; each login verifies once.
    expect(moved('gatehouse_password_hash_duration_seconds_count', { operation: 'hash' })).toBeGreaterThanOrEqual(1);
    expect(moved('gatehouse_password_hash_duration_seconds_count', { operation: 'verify' })).toBeGreaterThanOrEqual(2);
  });

  it('labels an operation by its root field, never by the client-chosen operation name', async () => {
    const hostile = `Hostile_${Math.random().toString(36).slice(2)}`;
    const before = await samples(app);
    await app.gql(`query ${hostile} { me { id } }`);
    await app.gql(`query ${hostile}2 { ${hostile} }`);
    await app.gql(`query { ${hostile}: me { id } }`);
    const text = await (await scrape(app)).text();
    expect(text).not.toContain(hostile);
    const all = parseExposition(text);
    const moved = (labels: Record<string, string>) =>
      sumOf(all, 'gatehouse_graphql_requests_total', labels) - sumOf(before, 'gatehouse_graphql_requests_total', labels);
    // Named or aliased, `me` is counted as `me`; the unknown root field (refused by validation) as 'other'.
    expect(moved({ operation: 'me' })).toBe(2);
    expect(moved({ operation: 'other', outcome: 'invalid' })).toBe(1);
  });

  it('counts cache lookups per cache and the size of each refresh-rotation batch', async () => {
    const before = await samples(app);
    const password = 'a long enough password';
    const sessions = await Promise.all(
      Array.from({ length: 6 }, async () => (await app.gql(REGISTER, { input: { username: uniqueName(), password } })).data.register),
    );
    const [first] = sessions;
    for (let i = 0; i < 3; i++) expect((await app.gql(ME, undefined, bearer(first.accessToken))).data.me.id).toBe(first.user.id);
    const rotated = await Promise.all(sessions.map((session) => app.gql(REFRESH, { token: session.refreshToken })));
    for (const answer of rotated) expect(answer.data.refresh.__typename).toBe('AuthPayload');
    const after = await samples(app);

    const moved = (name: string, labels: Record<string, string> = {}) => sumOf(after, name, labels) - sumOf(before, name, labels);
    // Three `me` calls read the user three times; at most the first one reads the database.
    expect(moved('gatehouse_cache_lookups_total', { cache: 'users', outcome: 'hit' })).toBeGreaterThanOrEqual(2);
    expect(moved('gatehouse_cache_lookups_total', { cache: 'users' })).toBeGreaterThanOrEqual(3);
    expect(moved('gatehouse_cache_lookups_total', { cache: 'sessions' })).toBeGreaterThanOrEqual(3);
    // Every rotation is in exactly one batch, however the six were grouped.
    expect(moved('gatehouse_refresh_rotation_batch_size_sum')).toBe(6);
    const batches = moved('gatehouse_refresh_rotation_batch_size_count');
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(batches).toBeLessThanOrEqual(6);
  });

  it('shows the outbox depth at scrape time, and counts sent mail', async () => {
    const email = `${uniqueName()}@example.test`;
    await app.gql(REGISTER, { input: { username: uniqueName(), password: 'a long enough password', email } });
    // Delivered to the development outbox by the running sender.
    await vi.waitFor(async () => expect(seriesValue(await samples(app), 'gatehouse_mail_deliveries_total', { outcome: 'sent' })).toBeGreaterThanOrEqual(1), {
      timeout: 20_000,
      interval: 100,
    });

    // An app whose sender is stopped keeps what is queued: the gauge must show it.
    const own = await createTestApp();
    await own.services.mailSender?.stop();
    expect(seriesValue(await samples(own), 'gatehouse_mail_outbox_waiting')).toBe(0);
    await own.gql(`mutation ($email: String!) { requestPasswordReset(email: $email) }`, { email: 'nobody@example.test' });
    expect(seriesValue(await samples(own), 'gatehouse_mail_outbox_waiting')).toBe(1);
  });

  it('has no outbox gauge with email disabled', async () => {
    expect((await samples(noEmail)).some((sample) => sample.name === 'gatehouse_mail_outbox_waiting')).toBe(false);
  });
});

describe('access to /metrics', () => {
  it('is open in development and test without METRICS_TOKEN', async () => {
    expect((await scrape(development)).status).toBe(200);
    expect((await scrape(app)).status).toBe(200);
  });

  it('asks for the bearer token when METRICS_TOKEN is set', async () => {
    expect((await scrape(protectedApp)).status).toBe(401);
    expect((await scrape(protectedApp, { authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
    expect((await scrape(protectedApp, { authorization: 'Bearer ' })).status).toBe(401);
    expect((await scrape(protectedApp, { authorization: TOKEN })).status).toBe(401);
    const allowed = await scrape(protectedApp, { authorization: `Bearer ${TOKEN}` });
    expect(allowed.status).toBe(200);
    expect(await allowed.text()).toContain('gatehouse_auth_events_total');
    expect((await scrape(productionWithToken, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await scrape(productionWithToken)).status).toBe(401);
  });

  it('is off (404) in production without METRICS_TOKEN', async () => {
    expect((await scrape(production)).status).toBe(404);
  });

  it('answers GET only', async () => {
    const posted = await development.yoga.fetch('http://gatehouse.test/metrics', {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    expect(posted.status).not.toBe(200);
  });
});
