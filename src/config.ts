import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { Argon2Settings } from './auth/passwords.js';
import { parseRateLimit, type RateLimitRule, type RateLimitRuleName } from './auth/rate-limit.js';

// Every setting Gatehouse reads from its environment. Parsed once at start-up; the rest of the code
// receives the frozen result and never touches process.env. `.env.example` documents each variable.

const OWASP_ARGON2 = { memoryKiB: 19456, timeCost: 2, parallelism: 1 } as const;

const number = () => z.coerce.number({ error: 'expected a number' });
const positiveInt = (fallback: number) => number().int().positive().default(fallback);
const flag = (fallback: boolean) => z.stringbool().default(fallback);
const rateLimit = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((spec, ctx) => {
      try {
        return parseRateLimit(spec);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    });
const optionalSecret = z
  .string()
  .optional()
  .refine((value) => value === undefined || Buffer.byteLength(value) >= 32, 'must be at least 32 bytes long');

const environmentSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: number().int().min(0).max(65535).default(4000),
  DATA_DIR: z.string().min(1).default('data'),
  DATABASE_URL: z
    .string()
    .regex(/^file:/, 'only SQLite `file:` URLs are supported in this version')
    .optional(),
  KEYS_FILE: z.string().min(1).optional(),
  SQLITE_SYNCHRONOUS: z.enum(['FULL', 'NORMAL']).default('FULL'),
  TRUST_PROXY: flag(false),
  REGISTRATION_MODE: z.enum(['open', 'admin']).default('open'),

  JWT_ISSUER: z.string().min(1).default('gatehouse'),
  JWT_AUDIENCE: z.string().min(1).default('gatehouse'),
  JWT_SECRET: optionalSecret,
  ACCESS_TOKEN_TTL_SECONDS: number().int().min(30).max(86_400).default(900),
  REFRESH_TOKEN_SECRET: optionalSecret,
  SESSION_IDLE_TIMEOUT_DAYS: number().positive().default(30),
  SESSION_ABSOLUTE_LIFETIME_DAYS: number().positive().default(90),
  REFRESH_REUSE_GRACE_SECONDS: number().int().min(0).max(300).default(10),

  ARGON2_MEMORY_KIB: positiveInt(OWASP_ARGON2.memoryKiB),
  ARGON2_TIME_COST: positiveInt(OWASP_ARGON2.timeCost),
  ARGON2_PARALLELISM: positiveInt(OWASP_ARGON2.parallelism),
  ARGON2_CONCURRENCY: number().int().positive().optional(),
  // Read, not set: libuv sizes its thread pool from it (default 4; 0 counts as 1, at most 1024).
  UV_THREADPOOL_SIZE: number().int().min(0).default(4),

  RATE_LIMIT_REGISTER: rateLimit('10/1h'),
  RATE_LIMIT_LOGIN: rateLimit('30/5m'),
  RATE_LIMIT_LOGIN_ACCOUNT: rateLimit('10/5m'),
  RATE_LIMIT_USER_EXISTS: rateLimit('60/1m'),
  RATE_LIMIT_REFRESH: rateLimit('60/1m'),
  RATE_LIMIT_MAX_KEYS: positiveInt(100_000),

  LOCKOUT_THRESHOLD: positiveInt(10),
  LOCKOUT_BASE_SECONDS: positiveInt(30),
  LOCKOUT_MAX_SECONDS: positiveInt(900),
  LOCKOUT_MIN_SOURCES: positiveInt(3),

  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  CORS_ORIGINS: z.string().optional(),
  GRAPHIQL: z.stringbool().optional(),
  INTROSPECTION: z.stringbool().optional(),
  MAX_REQUEST_BODY_BYTES: positiveInt(65_536),
  GRAPHQL_MAX_DEPTH: positiveInt(10),
  GRAPHQL_MAX_ALIASES: positiveInt(15),
  GRAPHQL_MAX_DIRECTIVES: positiveInt(20),
  GRAPHQL_MAX_TOKENS: positiveInt(2_000),
  // Our costliest operation, a full users page (first: 100, every field, through fragments), costs 8,281
  // in graphql-armor's model; 5,000 refused it.
  GRAPHQL_MAX_COST: positiveInt(20_000),
});

export type Environment = Record<string, string | undefined>;

/** Every variable Gatehouse reads (documented one by one in .env.example). */
export const environmentVariables: readonly string[] = Object.keys(environmentSchema.shape);

export interface Config {
  readonly env: 'development' | 'production' | 'test';
  readonly http: { readonly host: string; readonly port: number; readonly trustProxy: boolean };
  /** open: anyone may register. admin: only an administrator creates accounts. */
  readonly registrationMode: 'open' | 'admin';
  readonly dataDir: string;
  readonly databaseUrl: string;
  /** FULL: acknowledged writes survive power loss. NORMAL: only a process crash, but no fsync per write. */
  readonly sqliteSynchronous: 'FULL' | 'NORMAL';
  readonly keysFile: string;
  readonly jwt: {
    readonly issuer: string;
    readonly audience: string;
    /** When set, access tokens are HS256 with this secret instead of EdDSA with generated keys. */
    readonly secret: string | undefined;
    readonly accessTokenTtlSeconds: number;
  };
  readonly sessions: {
    readonly refreshTokenSecret: string | undefined;
    readonly idleTimeoutMs: number;
    readonly absoluteLifetimeMs: number;
    readonly reuseGraceMs: number;
  };
  readonly argon2: Argon2Settings;
  readonly rateLimits: { readonly rules: Readonly<Record<RateLimitRuleName, RateLimitRule>>; readonly maxKeys: number };
  readonly lockout: {
    readonly threshold: number;
    readonly baseDelayMs: number;
    readonly maxDelayMs: number;
    readonly minSources: number;
    readonly maxEntries: number;
  };
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly graphql: {
    /** Origins allowed by CORS; '*' any. Empty: no cross-origin requests. */
    readonly corsOrigins: readonly string[];
    readonly graphiql: boolean;
    readonly introspection: boolean;
    readonly maxRequestBodyBytes: number;
    readonly maxDepth: number;
    readonly maxAliases: number;
    readonly maxDirectives: number;
    readonly maxTokens: number;
    readonly maxCost: number;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const DAY_MS = 86_400_000;

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** Parses the whole environment at once; throws a ConfigError listing every problem found. */
export function loadConfig(environment: Environment): Config {
  // Empty strings mean "not set" (a blank line in .env should not fail validation).
  const present = Object.fromEntries(Object.entries(environment).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = environmentSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.') || '(environment)'}: ${issue.message}`));
  }
  const e = parsed.data;

  const threadPoolSize = Math.min(1024, Math.max(1, e.UV_THREADPOOL_SIZE));
  const problems: string[] = [];
  // The cheap argon2 settings exist for tests; a production deployment must not run below OWASP's floor.
  if (e.NODE_ENV === 'production') {
    for (const [name, value, floor] of [
      ['ARGON2_MEMORY_KIB', e.ARGON2_MEMORY_KIB, OWASP_ARGON2.memoryKiB],
      ['ARGON2_TIME_COST', e.ARGON2_TIME_COST, OWASP_ARGON2.timeCost],
    ] as const) {
      if (value < floor) problems.push(`${name}: must be at least ${floor} when NODE_ENV=production`);
    }
  }
  if (e.SESSION_IDLE_TIMEOUT_DAYS > e.SESSION_ABSOLUTE_LIFETIME_DAYS) {
    problems.push('SESSION_IDLE_TIMEOUT_DAYS: must not exceed SESSION_ABSOLUTE_LIFETIME_DAYS');
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const dataDir = path.resolve(e.DATA_DIR);
  const production = e.NODE_ENV === 'production';
  return deepFreeze({
    env: e.NODE_ENV,
    http: { host: e.HOST, port: e.PORT, trustProxy: e.TRUST_PROXY },
    registrationMode: e.REGISTRATION_MODE,
    dataDir,
    databaseUrl: e.DATABASE_URL ?? `file:${path.join(dataDir, 'gatehouse.db')}`,
    sqliteSynchronous: e.SQLITE_SYNCHRONOUS,
    keysFile: path.resolve(e.KEYS_FILE ?? path.join(dataDir, 'keys.json')),
    jwt: {
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      secret: e.JWT_SECRET,
      accessTokenTtlSeconds: e.ACCESS_TOKEN_TTL_SECONDS,
    },
    sessions: {
      refreshTokenSecret: e.REFRESH_TOKEN_SECRET,
      idleTimeoutMs: e.SESSION_IDLE_TIMEOUT_DAYS * DAY_MS,
      absoluteLifetimeMs: e.SESSION_ABSOLUTE_LIFETIME_DAYS * DAY_MS,
      reuseGraceMs: e.REFRESH_REUSE_GRACE_SECONDS * 1000,
    },
    argon2: {
      memoryKiB: e.ARGON2_MEMORY_KIB,
      timeCost: e.ARGON2_TIME_COST,
      parallelism: e.ARGON2_PARALLELISM,
      // One hash per core, and always a pool thread left for fsyncs and signatures.
      concurrency: e.ARGON2_CONCURRENCY ?? Math.max(1, Math.min(os.availableParallelism(), threadPoolSize - 1)),
    },
    rateLimits: {
      rules: {
        register: e.RATE_LIMIT_REGISTER,
        login: e.RATE_LIMIT_LOGIN,
        loginAccount: e.RATE_LIMIT_LOGIN_ACCOUNT,
        userExists: e.RATE_LIMIT_USER_EXISTS,
        refresh: e.RATE_LIMIT_REFRESH,
      },
      maxKeys: e.RATE_LIMIT_MAX_KEYS,
    },
    lockout: {
      threshold: e.LOCKOUT_THRESHOLD,
      baseDelayMs: e.LOCKOUT_BASE_SECONDS * 1000,
      maxDelayMs: e.LOCKOUT_MAX_SECONDS * 1000,
      minSources: e.LOCKOUT_MIN_SOURCES,
      maxEntries: e.RATE_LIMIT_MAX_KEYS,
    },
    logLevel: e.LOG_LEVEL,
    graphql: {
      // Development answers any origin; production none until CORS_ORIGINS names them.
      corsOrigins: e.CORS_ORIGINS !== undefined ? e.CORS_ORIGINS.split(',').map((origin) => origin.trim()).filter(Boolean) : production ? [] : ['*'],
      graphiql: e.GRAPHIQL ?? !production,
      introspection: e.INTROSPECTION ?? !production,
      maxRequestBodyBytes: e.MAX_REQUEST_BODY_BYTES,
      maxDepth: e.GRAPHQL_MAX_DEPTH,
      maxAliases: e.GRAPHQL_MAX_ALIASES,
      maxDirectives: e.GRAPHQL_MAX_DIRECTIVES,
      maxTokens: e.GRAPHQL_MAX_TOKENS,
      maxCost: e.GRAPHQL_MAX_COST,
    },
  });
}
