import { isIP } from 'node:net';
import os from 'node:os';
import type { RateLimitRule } from './auth/rate-limit.js';

// Settings that pass their own type check but cannot work: each would start a server on which every
// login, every refresh or every request fails. config.ts refuses them at start, with every other problem.

const DAY_MS = 86_400_000;

/** Why a SQLite URL cannot hold Gatehouse's data, or undefined when it can. */
/** What is wrong with DATABASE_URL: PostgreSQL for postgres:// and postgresql://, SQLite `file:` otherwise. */
export function databaseUrlProblem(url: string): string | undefined {
  if (/^postgres(ql)?:/i.test(url)) return postgresUrlProblem(url);
  return sqliteUrlProblem(url);
}

/**
 * A PostgreSQL URL that node-postgres and Prisma can both use: postgresql://user[:password]@host[:port]/database.
 * Refused here, with the reason, rather than failing later with a driver's error (or connecting to a
 * default database named after the user, when the path is missing).
 */
export function postgresUrlProblem(url: string): string | undefined {
  if (!/^postgres(ql)?:\/\//i.test(url)) return 'write postgresql://user@host:5432/database (with //)';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'is not a valid URL; write postgresql://user:password@host:5432/database (percent-encode special characters in the password)';
  }
  if (parsed.hostname === '') return 'names no host; write postgresql://user@host:5432/database';
  if (parsed.port !== '' && !(Number(parsed.port) >= 1 && Number(parsed.port) <= 65535)) return 'has an invalid port';
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (database === '' || database.includes('/')) return 'names no database; write postgresql://user@host:5432/database';
  if (parsed.hash) return 'takes no fragment (#…)';
  return undefined;
}

export function sqliteUrlProblem(url: string): string | undefined {
  if (!url.startsWith('file:')) return 'only SQLite `file:` and PostgreSQL `postgresql://` URLs are supported';
  const file = url.slice('file:'.length);
  if (file.trim() === '') return 'names no file; write file:/path/to/gatehouse.db';
  // The server, the migration and the admin CLI each open the URL: each would get its own empty database.
  if (file.startsWith(':memory:') || /mode=memory/.test(file)) return 'an in-memory database keeps nothing; name a file';
  // The driver takes everything after `file:` as the file name: "?mode=ro" would silently become part of
  // the name of a new, empty database, and "?connection_limit=1" means nothing to SQLite.
  if (/[?#]/.test(file)) return 'takes no query string or fragment (everything after file: is the file name); use DATA_DIR or a plain path';
  if (file.startsWith('//')) return 'write file:/absolute/path or file:relative/path, not the file:// form';
  if (file.endsWith('/')) return 'names a folder; name the database file';
  return undefined;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** An IP address or a host name that `listen` can resolve; not a URL, not "host:port", not "[::1]". */
export function isListenHost(host: string): boolean {
  return isIP(host) !== 0 || HOST_NAME.test(host);
}

// A window longer than this is almost certainly a typo, and without Redis the limiter's counters live in
// memory: a restart forgets them, so a longer window promises what the process cannot keep.
const MAX_RATE_LIMIT_WINDOW_MS = 30 * DAY_MS;
// More calls than this per window is no limit at all: almost certainly a typo.
const MAX_RATE_LIMIT_CALLS = 1_000_000;

export function rateLimitProblem(rule: RateLimitRule): string | undefined {
  if (rule.windowMs > MAX_RATE_LIMIT_WINDOW_MS) return 'window must be at most 30d (counters may be kept in memory)';
  if (rule.max > MAX_RATE_LIMIT_CALLS) return `at most ${MAX_RATE_LIMIT_CALLS} calls per window`;
  return undefined;
}

/** Values of the settings a cross-field rule reads; undefined when that setting is itself invalid. */
export interface CheckedSettings {
  readonly accessTokenTtlSeconds?: number;
  readonly sessionIdleDays?: number;
  readonly sessionAbsoluteDays?: number;
  readonly reuseGraceSeconds?: number;
  readonly argon2MemoryKiB?: number;
  readonly argon2TimeCost?: number;
  readonly argon2Parallelism?: number;
  /** Hashes that can run at once: ARGON2_CONCURRENCY, at most the thread pool's size. */
  readonly argon2HashesAtOnce?: number;
  readonly lockoutBaseSeconds?: number;
  readonly lockoutMaxSeconds?: number;
}

// argon2 (RFC 9106) needs at least 8 KiB per lane; @node-rs/argon2 answers every hash with "Memory cost
// is too small" below that, so every registration and every login would fail.
const ARGON2_MIN_KIB_PER_LANE = 8;
// Memory passes per hash (KiB × iterations) above which one hash takes minutes on any current machine:
// every login would time out while holding a thread-pool thread.
const ARGON2_MAX_WORK = 2 ** 30;

/** Problems between settings that are each valid on their own. */
export function crossFieldProblems(s: CheckedSettings): string[] {
  const problems: string[] = [];
  const { argon2MemoryKiB: memory, argon2Parallelism: lanes } = s;
  if (memory !== undefined && lanes !== undefined && memory < ARGON2_MIN_KIB_PER_LANE * lanes) {
    problems.push(`ARGON2_MEMORY_KIB: must be at least 8 × ARGON2_PARALLELISM = ${ARGON2_MIN_KIB_PER_LANE * lanes} (argon2's minimum; every hash would fail)`);
  }
  if (memory !== undefined && s.argon2HashesAtOnce !== undefined) {
    const needed = memory * 1024 * s.argon2HashesAtOnce;
    const available = availableMemoryBytes();
    if (needed > available) {
      problems.push(
        `ARGON2_MEMORY_KIB: ${s.argon2HashesAtOnce} hash(es) at once need ${Math.ceil(needed / 2 ** 20)} MiB, more than this machine's ${Math.floor(available / 2 ** 20)} MiB; lower it or ARGON2_CONCURRENCY`,
      );
    }
  }
  if (memory !== undefined && s.argon2TimeCost !== undefined && memory * s.argon2TimeCost > ARGON2_MAX_WORK) {
    problems.push('ARGON2_TIME_COST: with ARGON2_MEMORY_KIB, one hash would take minutes (KiB × passes must stay under 2^30)');
  }
  if (s.sessionIdleDays !== undefined && s.sessionAbsoluteDays !== undefined && s.sessionIdleDays > s.sessionAbsoluteDays) {
    problems.push('SESSION_IDLE_TIMEOUT_DAYS: must not exceed SESSION_ABSOLUTE_LIFETIME_DAYS');
  }
  const idleSeconds = s.sessionIdleDays === undefined ? undefined : (s.sessionIdleDays * DAY_MS) / 1000;
  // A client refreshes when its access token expires; a session that idles out sooner can never be refreshed.
  if (idleSeconds !== undefined && s.accessTokenTtlSeconds !== undefined && idleSeconds < s.accessTokenTtlSeconds) {
    problems.push(
      `SESSION_IDLE_TIMEOUT_DAYS: must be at least ACCESS_TOKEN_TTL_SECONDS (${s.accessTokenTtlSeconds} s), or no session survives to its first refresh`,
    );
  }
  if (idleSeconds !== undefined && s.reuseGraceSeconds !== undefined && s.reuseGraceSeconds >= idleSeconds) {
    problems.push('REFRESH_REUSE_GRACE_SECONDS: must be shorter than the session idle timeout');
  }
  if (s.lockoutBaseSeconds !== undefined && s.lockoutMaxSeconds !== undefined && s.lockoutBaseSeconds > s.lockoutMaxSeconds) {
    problems.push('LOCKOUT_BASE_SECONDS: must not exceed LOCKOUT_MAX_SECONDS');
  }
  return problems;
}

/** The memory this process may use: its cgroup limit when there is one, else the machine's. */
function availableMemoryBytes(): number {
  const constrained = process.constrainedMemory?.() ?? 0;
  const total = os.totalmem();
  return constrained > 0 && constrained < total ? constrained : total;
}
