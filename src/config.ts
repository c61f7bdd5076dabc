import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { Argon2Settings } from './auth/passwords.js';
import { parseRateLimit, type RateLimitRule, type RateLimitRuleName } from './auth/rate-limit.js';
import { type EmailConfig, emailConfigOf, emailEnvironment, emailProblems } from './config-email.js';
import { crossFieldProblems, isListenHost, rateLimitProblem, databaseUrlProblem } from './config-checks.js';

// Every setting Gatehouse reads from its environment. Parsed once at start-up; the rest of the code
// receives the frozen result and never touches process.env. `.env.example` documents each variable.

const OWASP_ARGON2 = { memoryKiB: 19456, timeCost: 2, parallelism: 1 } as const;

// The custom message only for input that is not a number: bound checks keep their own ("must be ≥ 4").
const number = () => z.coerce.number({ error: (issue) => (issue.code === 'invalid_type' ? 'expected a number' : undefined) });
const positiveInt = (fallback: number) => number().int().positive().default(fallback);
const atLeast = (floor: number, fallback: number) => number().int().min(floor).default(fallback);
const flag = (fallback: boolean) => z.stringbool().default(fallback);
const rateLimit = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((spec, ctx) => {
      try {
        const rule = parseRateLimit(spec);
        const problem = rateLimitProblem(rule);
        if (problem) ctx.addIssue({ code: 'custom', message: `"${spec}": ${problem}` });
        return rule;
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    });
const optionalSecret = z
  .string()
  .optional()
  .refine((value) => value === undefined || Buffer.byteLength(value) >= 32, 'must be at least 32 bytes long');

// 100 years: far beyond any sensible session, and far below what a Date or the database can hold.
const MAX_SESSION_DAYS = 36_500;
const sessionDaysMessage = `must be at most ${MAX_SESSION_DAYS} (100 years)`;

const environmentSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z
    .string()
    .default('127.0.0.1')
    .refine(isListenHost, 'must be an IP address or a host name, without brackets, scheme or port (e.g. 127.0.0.1, 0.0.0.0, ::, localhost)'),
  PORT: number().int().min(0).max(65535).default(4000),
  SHUTDOWN_TIMEOUT_SECONDS: number().int().min(0).max(600).default(10),
  DATA_DIR: z.string().min(1).default('data'),
  DATABASE_URL: z
    .string()
    .optional()
    .superRefine((url, ctx) => {
      const problem = url === undefined ? undefined : databaseUrlProblem(url);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  KEYS_FILE: z.string().min(1).optional(),
  REDIS_URL: z
    .string()
    .optional()
    .refine((url) => url === undefined || /^rediss?:\/\/[^\s]+$/.test(url), 'must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379'),
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1 to 64 letters, digits or _ . : -')
    .default('gatehouse:'),
  ALLOW_NEW_KEYS: flag(false),
  SQLITE_SYNCHRONOUS: z.enum(['FULL', 'NORMAL']).default('FULL'),
  TRUST_PROXY: flag(false),
  REGISTRATION_MODE: z.enum(['open', 'admin']).default('open'),

  JWT_ISSUER: z.string().min(1).default('gatehouse'),
  JWT_AUDIENCE: z.string().min(1).default('gatehouse'),
  JWT_SECRET: optionalSecret,
  ACCESS_TOKEN_TTL_SECONDS: number().int().min(30).max(86_400).default(900),
  REFRESH_TOKEN_SECRET: optionalSecret,
  SESSION_IDLE_TIMEOUT_DAYS: number().positive().max(MAX_SESSION_DAYS, sessionDaysMessage).default(30),
  SESSION_ABSOLUTE_LIFETIME_DAYS: number().positive().max(MAX_SESSION_DAYS, sessionDaysMessage).default(90),
  REFRESH_REUSE_GRACE_SECONDS: number().int().min(0).max(300).default(10),
  // Where refresh tokens travel: in answers (body), in an httpOnly cookie only (cookie), or both.
  REFRESH_TOKEN_TRANSPORT: z.enum(['body', 'cookie', 'both']).default('body'),
  // Strict by default; no "none": a cross-site cookie would rest on the Origin check alone, and browsers
  // that block third-party cookies would not send it anyway (README, Browser apps).
  REFRESH_COOKIE_SAMESITE: z.enum(['strict', 'lax']).default('strict'),

  // Upper bounds: argon2's own (32-bit memory and passes, 24-bit lanes); beyond them every hash fails.
  ARGON2_MEMORY_KIB: number()
    .int()
    .positive()
    .max(2 ** 32 - 1)
    .default(OWASP_ARGON2.memoryKiB),
  ARGON2_TIME_COST: number()
    .int()
    .positive()
    .max(2 ** 32 - 1)
    .default(OWASP_ARGON2.timeCost),
  ARGON2_PARALLELISM: number()
    .int()
    .positive()
    .max(2 ** 24 - 1)
    .default(OWASP_ARGON2.parallelism),
  ARGON2_CONCURRENCY: number().int().positive().optional(),
  // Read, not set: libuv sizes its thread pool from it (default 4; 0 counts as 1, at most 1024).
  UV_THREADPOOL_SIZE: number().int().min(0).default(4),

  RATE_LIMIT_REGISTER: rateLimit('10/1h'),
  RATE_LIMIT_LOGIN: rateLimit('30/5m'),
  RATE_LIMIT_LOGIN_ACCOUNT: rateLimit('10/5m'),
  RATE_LIMIT_USER_EXISTS: rateLimit('60/1m'),
  RATE_LIMIT_REFRESH: rateLimit('60/1m'),
  RATE_LIMIT_AVAILABILITY_PROBE: rateLimit('10/1h'),
  RATE_LIMIT_AVAILABILITY_PROBE_ACCOUNT: rateLimit('5/1h'),
  // Mail asked for per address and purpose (whoever asks), and per client network (whatever the address).
  RATE_LIMIT_EMAIL_RECIPIENT: rateLimit('5/1h'),
  RATE_LIMIT_EMAIL_CLIENT: rateLimit('20/1h'),
  RATE_LIMIT_IPV6_PREFIX: number().int().min(0).max(128).default(64),
  // Both in-memory maps (rate limits, lockout) allocate their whole index up front: 10 million keys already
  // take hundreds of MiB and seconds at start; beyond that the start takes minutes or fails.
  RATE_LIMIT_MAX_KEYS: number().int().positive().max(10_000_000).default(100_000),
  // Users one admin search page looks at, matching or not: the bound on a search's work (user-admin.ts).
  ADMIN_SEARCH_SCAN_LIMIT: number().int().min(100).max(1_000_000).default(5_000),

  LOCKOUT_THRESHOLD: positiveInt(10),
  LOCKOUT_BASE_SECONDS: positiveInt(30),
  // lockout.ts forgets a counter an hour after its last failure, which would end a longer lock early.
  LOCKOUT_MAX_SECONDS: number().int().positive().max(3600, 'must be at most 3600 (lockout state is kept for an hour)').default(900),
  // lockout.ts records at most 32 distinct addresses per name: a higher minimum would never lock.
  LOCKOUT_MIN_SOURCES: number().int().positive().max(32, 'must be at most 32 (distinct addresses tracked per name)').default(3),

  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  CORS_ORIGINS: z
    .string()
    .optional()
    .superRefine((list, ctx) => {
      for (const origin of list
        ?.split(',')
        .map((entry) => entry.trim())
        .filter(Boolean) ?? []) {
        if (!isCorsOrigin(origin)) ctx.addIssue({ code: 'custom', message: `"${origin}" is not an origin (scheme://host[:port], no path) nor *` });
      }
    }),
  // Stack traces and internal messages in answers. Never follows NODE_ENV: an exposed development server
  // must not hand them out.
  GRAPHQL_DEBUG_ERRORS: flag(false),
  GRAPHIQL: z.stringbool().optional(),
  // The bearer token /metrics asks for. Without it /metrics is open, except in production, where it is off:
  // the metrics name operations, error codes and load, which are not for anyone who can reach the port.
  METRICS_TOKEN: z
    .string()
    .optional()
    .refine((value) => value === undefined || Buffer.byteLength(value) >= 16, 'must be at least 16 bytes long'),
  INTROSPECTION: z.stringbool().optional(),
  // Floors: below them register, login, refresh or me itself is refused (test/hardening/operator-traps.test.ts).
  MAX_REQUEST_BODY_BYTES: atLeast(1024, 65_536),
  GRAPHQL_MAX_DEPTH: atLeast(4, 10),
  GRAPHQL_MAX_ALIASES: positiveInt(15),
  GRAPHQL_MAX_DIRECTIVES: positiveInt(20),
  GRAPHQL_MAX_TOKENS: atLeast(200, 2_000),
  // Our costliest operation, a full users page (first: 100, every field, through fragments), costs 8,281
  // in graphql-armor's model; 5,000 refused it.
  GRAPHQL_MAX_COST: atLeast(200, 20_000),
  ...emailEnvironment,
});

export type Environment = Record<string, string | undefined>;

/**
 * "*" or an exact origin as browsers send it. "null" (sandboxed frames, file: pages) is refused: any page
 * can make its origin null, so allowing it would allow everyone, with credentials.
 */
function isCorsOrigin(origin: string): boolean {
  if (origin === '*') return true;
  try {
    const url = new URL(origin);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === origin;
  } catch {
    return false;
  }
}

/** Every variable Gatehouse reads (documented one by one in .env.example). */
export const environmentVariables: readonly string[] = Object.keys(environmentSchema.shape);

export interface Config {
  readonly env: 'development' | 'production' | 'test';
  readonly http: { readonly host: string; readonly port: number; readonly trustProxy: boolean };
  /** On SIGTERM/SIGINT, how long requests already accepted may take to finish before the process exits. */
  readonly shutdownTimeoutSeconds: number;
  /** open: anyone may register. admin: only an administrator creates accounts. */
  readonly registrationMode: 'open' | 'admin';
  /** Users one admin search page may look at (matching or not). */
  readonly adminSearchScanLimit: number;
  readonly dataDir: string;
  readonly databaseUrl: string;
  /** FULL: acknowledged writes survive power loss. NORMAL: only a process crash, but no fsync per write. */
  readonly sqliteSynchronous: 'FULL' | 'NORMAL';
  readonly keysFile: string;
  /** Whether a missing key file may be replaced by new keys although the database has users or sessions. */
  readonly allowNewKeys: boolean;
  /** Redis for several instances (change feed, shared limits); undefined runs without it. */
  readonly redis: { readonly url: string; readonly keyPrefix: string } | undefined;
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
    /** body: refresh tokens in answers; cookie: only in the httpOnly cookie (never seen by JavaScript); both. */
    readonly refreshTokenTransport: 'body' | 'cookie' | 'both';
    /** The SameSite attribute of the refresh cookie. */
    readonly refreshCookieSameSite: 'Strict' | 'Lax';
  };
  readonly argon2: Argon2Settings;
  readonly rateLimits: {
    readonly rules: Readonly<Record<RateLimitRuleName, RateLimitRule>>;
    readonly maxKeys: number;
    /** IPv6 clients are counted per network of this many leading bits; IPv4 per address. */
    readonly ipv6Prefix: number;
  };
  readonly lockout: {
    readonly threshold: number;
    readonly baseDelayMs: number;
    readonly maxDelayMs: number;
    readonly minSources: number;
    readonly maxEntries: number;
  };
  readonly email: EmailConfig;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly graphql: {
    /** Origins allowed by CORS, with credentials; '*' any, without credentials. Empty: no cross-origin requests. */
    readonly corsOrigins: readonly string[];
    /** Unexpected errors' messages and stack traces in answers (GRAPHQL_DEBUG_ERRORS). */
    readonly debugErrors: boolean;
    readonly graphiql: boolean;
    /** GET /metrics: 'off' (404), 'open', or only with `Authorization: Bearer <token>` (METRICS_TOKEN). */
    readonly metrics: 'off' | 'open' | { readonly token: string };
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

/** libuv's pool size for a UV_THREADPOOL_SIZE value (0 counts as 1, at most 1024). */
const threadPoolSizeOf = (setting: number) => Math.min(1024, Math.max(1, setting));

/** One hash per core, and always a pool thread left for fsyncs and signatures. */
const defaultArgon2Concurrency = (poolSetting: number) => Math.max(1, Math.min(os.availableParallelism(), threadPoolSizeOf(poolSetting) - 1));

/** Parses the whole environment at once; throws a ConfigError listing every problem found. */
export function loadConfig(environment: Environment): Config {
  // Empty strings mean "not set" (a blank line in .env should not fail validation).
  const present = Object.fromEntries(Object.entries(environment).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = environmentSchema.safeParse(present);
  const problems = parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.') || '(environment)'}: ${issue.message}`);
  // Rules between settings run even when other settings are invalid, so the list is complete at once; a rule
  // whose own inputs are invalid is skipped (those are already reported).
  const field = <K extends keyof typeof environmentSchema.shape>(name: K): z.output<(typeof environmentSchema.shape)[K]> | undefined => {
    const result = environmentSchema.shape[name].safeParse(present[name]);
    return result.success ? (result.data as z.output<(typeof environmentSchema.shape)[K]>) : undefined;
  };
  // The cheap argon2 settings exist for tests; a production deployment must not run below OWASP's floor.
  if (field('NODE_ENV') === 'production') {
    for (const [name, value, floor] of [
      ['ARGON2_MEMORY_KIB', field('ARGON2_MEMORY_KIB'), OWASP_ARGON2.memoryKiB],
      ['ARGON2_TIME_COST', field('ARGON2_TIME_COST'), OWASP_ARGON2.timeCost],
    ] as const) {
      if (value !== undefined && value < floor) problems.push(`${name}: must be at least ${floor} when NODE_ENV=production`);
    }
  }
  const poolSize = field('UV_THREADPOOL_SIZE');
  const concurrency = field('ARGON2_CONCURRENCY') ?? (poolSize === undefined ? undefined : defaultArgon2Concurrency(poolSize));
  problems.push(
    ...crossFieldProblems({
      accessTokenTtlSeconds: field('ACCESS_TOKEN_TTL_SECONDS'),
      sessionIdleDays: field('SESSION_IDLE_TIMEOUT_DAYS'),
      sessionAbsoluteDays: field('SESSION_ABSOLUTE_LIFETIME_DAYS'),
      reuseGraceSeconds: field('REFRESH_REUSE_GRACE_SECONDS'),
      argon2MemoryKiB: field('ARGON2_MEMORY_KIB'),
      argon2TimeCost: field('ARGON2_TIME_COST'),
      argon2Parallelism: field('ARGON2_PARALLELISM'),
      argon2HashesAtOnce: concurrency === undefined || poolSize === undefined ? undefined : Math.min(concurrency, threadPoolSizeOf(poolSize)),
      lockoutBaseSeconds: field('LOCKOUT_BASE_SECONDS'),
      lockoutMaxSeconds: field('LOCKOUT_MAX_SECONDS'),
    }),
  );
  const emailFields = Object.fromEntries(Object.keys(emailEnvironment).map((name) => [name, field(name as keyof typeof emailEnvironment)]));
  problems.push(...emailProblems(emailFields, field('NODE_ENV') === 'production'));
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;

  const dataDir = path.resolve(e.DATA_DIR);
  const production = e.NODE_ENV === 'production';
  return deepFreeze({
    env: e.NODE_ENV,
    http: { host: e.HOST, port: e.PORT, trustProxy: e.TRUST_PROXY },
    shutdownTimeoutSeconds: e.SHUTDOWN_TIMEOUT_SECONDS,
    registrationMode: e.REGISTRATION_MODE,
    adminSearchScanLimit: e.ADMIN_SEARCH_SCAN_LIMIT,
    dataDir,
    databaseUrl: e.DATABASE_URL ?? `file:${path.join(dataDir, 'gatehouse.db')}`,
    sqliteSynchronous: e.SQLITE_SYNCHRONOUS,
    keysFile: path.resolve(e.KEYS_FILE ?? path.join(dataDir, 'keys.json')),
    allowNewKeys: e.ALLOW_NEW_KEYS,
    redis: e.REDIS_URL === undefined ? undefined : { url: e.REDIS_URL, keyPrefix: e.REDIS_KEY_PREFIX },
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
      refreshTokenTransport: e.REFRESH_TOKEN_TRANSPORT,
      refreshCookieSameSite: e.REFRESH_COOKIE_SAMESITE === 'lax' ? 'Lax' : 'Strict',
    },
    argon2: {
      memoryKiB: e.ARGON2_MEMORY_KIB,
      timeCost: e.ARGON2_TIME_COST,
      parallelism: e.ARGON2_PARALLELISM,
      concurrency: e.ARGON2_CONCURRENCY ?? defaultArgon2Concurrency(e.UV_THREADPOOL_SIZE),
    },
    rateLimits: {
      rules: {
        register: e.RATE_LIMIT_REGISTER,
        login: e.RATE_LIMIT_LOGIN,
        loginAccount: e.RATE_LIMIT_LOGIN_ACCOUNT,
        userExists: e.RATE_LIMIT_USER_EXISTS,
        refresh: e.RATE_LIMIT_REFRESH,
        availabilityProbe: e.RATE_LIMIT_AVAILABILITY_PROBE,
        availabilityProbeAccount: e.RATE_LIMIT_AVAILABILITY_PROBE_ACCOUNT,
        emailRecipient: e.RATE_LIMIT_EMAIL_RECIPIENT,
        emailClient: e.RATE_LIMIT_EMAIL_CLIENT,
      },
      maxKeys: e.RATE_LIMIT_MAX_KEYS,
      ipv6Prefix: e.RATE_LIMIT_IPV6_PREFIX,
    },
    lockout: {
      threshold: e.LOCKOUT_THRESHOLD,
      baseDelayMs: e.LOCKOUT_BASE_SECONDS * 1000,
      maxDelayMs: e.LOCKOUT_MAX_SECONDS * 1000,
      minSources: e.LOCKOUT_MIN_SOURCES,
      maxEntries: e.RATE_LIMIT_MAX_KEYS,
    },
    email: emailConfigOf(e, dataDir),
    logLevel: e.LOG_LEVEL,
    graphql: {
      // Development answers any origin, but never with credentials (http/cors.ts); production none until
      // CORS_ORIGINS names them.
      corsOrigins:
        e.CORS_ORIGINS !== undefined
          ? e.CORS_ORIGINS.split(',')
              .map((origin) => origin.trim())
              .filter(Boolean)
          : production
            ? []
            : ['*'],
      debugErrors: e.GRAPHQL_DEBUG_ERRORS,
      graphiql: e.GRAPHIQL ?? !production,
      // 'off' answers 404; 'open' serves anyone; otherwise the bearer token asked for.
      metrics: e.METRICS_TOKEN !== undefined ? { token: e.METRICS_TOKEN } : production ? 'off' : 'open',
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
