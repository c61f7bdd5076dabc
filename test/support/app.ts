import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { createApp, type App, type AppOptions } from '../../src/app.js';
import type { Clock } from '../../src/auth/clock.js';
import { loadConfig, type Environment } from '../../src/config.js';
import { freshTestDatabase } from './db.js';

/** A clock the test moves by hand: `advance` is time passing, `jumpWallClock` a clock being reset. */
export class ManualClock implements Clock {
  // Not 0: lru-cache reads a start time of 0 as "no TTL".
  #monotonic = 1_000_000;
  constructor(private current = Date.now()) {}
  now(): number {
    return this.current;
  }
  monotonicMs(): number {
    return this.#monotonic;
  }
  /** Time passes: both readings move. */
  advance(ms: number): void {
    this.current += ms;
    this.#monotonic += ms;
  }
  /** The wall clock alone is set (NTP step, an operator fixing the date), e.g. -3_600_000 for an hour back. */
  jumpWallClock(ms: number): void {
    this.current += ms;
  }
}

export interface TestApp extends App {
  /** Runs one GraphQL operation in process through yoga.fetch. */
  gql<T = any>(query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Promise<GraphQLResponse<T>>;
}

export interface GraphQLResponse<T> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

// Cheap argon2 keeps the suite fast; the production parameters are exercised by the password tests.
const testEnvironment: Environment = {
  NODE_ENV: 'test',
  ARGON2_MEMORY_KIB: '1024',
  ARGON2_TIME_COST: '1',
  RATE_LIMIT_REGISTER: '1000/1m',
  RATE_LIMIT_LOGIN: '1000/1m',
  RATE_LIMIT_LOGIN_ACCOUNT: '1000/1m',
  RATE_LIMIT_USER_EXISTS: '1000/1m',
  RATE_LIMIT_REFRESH: '1000/1m',
  RATE_LIMIT_AVAILABILITY_PROBE: '1000/1m',
  RATE_LIMIT_AVAILABILITY_PROBE_ACCOUNT: '1000/1m',
  RATE_LIMIT_EMAIL_RECIPIENT: '1000/1m',
  RATE_LIMIT_EMAIL_CLIENT: '1000/1m',
  // Mail: quick polls and retries, so delivery tests do not wait on production's backoff.
  MAIL_POLL_INTERVAL_SECONDS: '0.5',
  MAIL_RETRY_BASE_SECONDS: '0.2',
  MAIL_RETRY_MAX_SECONDS: '1',
  LOG_LEVEL: 'silent',
};

/**
 * TEST_REDIS_URL=redis://127.0.0.1:6379 runs a suite with the limits shared through Redis: each app gets
 * its own key prefix, so it starts from zero like an in-memory app (never a FLUSHDB on the shared Redis).
 */
function sharedLimitsEnvironment(): Environment {
  const url = process.env.TEST_REDIS_URL;
  if (!url) return {};
  counter += 1;
  return { REDIS_URL: url, REDIS_KEY_PREFIX: `gh-test:${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}:` };
}

/** A fully wired app on its own freshly migrated database and key file; closed after the test file. */
export async function createTestApp(overrides: Environment = {}, options: AppOptions = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-test-'));
  // On the engine TEST_DATABASE names (support/db.ts), unless the test brings its own DATABASE_URL.
  const database = overrides.DATABASE_URL === undefined ? await freshTestDatabase() : undefined;
  const config = loadConfig({
    ...testEnvironment,
    ...sharedLimitsEnvironment(),
    DATA_DIR: dataDir,
    ...(database ? { DATABASE_URL: database.url } : {}),
    ...overrides,
  });
  const app = await createApp(config, options);
  // Tests start once the caches are in use, as on a server that has been up for a moment.
  if (!(await app.services.db.changes.whenLive(10_000))) throw new Error('the change feed did not become live within 10 s');
  afterAll(async () => {
    await app.close();
    await database?.drop();
  });
  return {
    ...app,
    async gql(query, variables, headers = {}) {
      const response = await app.yoga.fetch('http://gatehouse.test/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
        body: JSON.stringify({ query, variables }),
      });
      return { status: response.status, ...(await response.json()) };
    },
  };
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

const RESULT_FIELDS = /* GraphQL */ `
  __typename
  ... on AuthPayload { accessToken refreshToken tokenType expiresIn user { id username email fullname role createdAt } }
  ... on Error { code message }
`;
export const AUTH_FIELDS = /* GraphQL */ `
  ${RESULT_FIELDS}
  ... on ValidationError { fieldErrors { field message } }
`;

export const REGISTER = /* GraphQL */ `
  mutation Register($input: RegisterInput!) { register(input: $input) { ${AUTH_FIELDS} } }
`;
export const LOGIN = /* GraphQL */ `
  mutation Login($input: LoginInput!) { login(input: $input) { ${AUTH_FIELDS} } }
`;
export const REFRESH = /* GraphQL */ `
  mutation Refresh($token: String!) { refresh(refreshToken: $token) { ${RESULT_FIELDS} } }
`;
export const ME = /* GraphQL */ `query Me { me { id username email role } }`;

let counter = 0;
/** A username no other test in this file uses. */
export function uniqueName(prefix = 'user'): string {
  counter += 1;
  return `${prefix}${counter}_${Math.random().toString(36).slice(2, 8)}`;
}

export async function registerUser(app: TestApp, input: { username?: string; password?: string; email?: string } = {}) {
  const username = input.username ?? uniqueName();
  const password = input.password ?? 'a long enough password';
  const { data } = await app.gql(REGISTER, { input: { username, password, ...(input.email ? { email: input.email } : {}) } });
  if (data?.register?.__typename !== 'AuthPayload') throw new Error(`registration failed: ${JSON.stringify(data)}`);
  return { username, password, ...data.register } as {
    username: string;
    password: string;
    accessToken: string;
    refreshToken: string;
    user: { id: string; username: string };
  };
}
