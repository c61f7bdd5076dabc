import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { createPostgresDatabase } from './postgres.js';
import { SHARED_REDIS_URL } from './redis.js';

// Several real Gatehouse servers (`npm start`'s entry point, each its own process) serving one PostgreSQL
// database, one Redis and one key file, the way issue 15 runs them behind a load balancer; plus the admin
// CLI on the same database and key file while they serve. Nothing is mocked: what one instance does has
// to reach the others through the database, Redis and the key file only.

const root = path.resolve(import.meta.dirname, '../..');

/** Cheap argon2, limits and lockout out of the way; a test that is about them sets its own. */
const BASE_ENV: Record<string, string> = {
  NODE_ENV: 'test',
  LOG_LEVEL: 'warn',
  HOST: '127.0.0.1',
  PORT: '0',
  SHUTDOWN_TIMEOUT_SECONDS: '2',
  ARGON2_MEMORY_KIB: '1024',
  ARGON2_TIME_COST: '1',
  RATE_LIMIT_REGISTER: '100000/1m',
  RATE_LIMIT_LOGIN: '100000/1m',
  RATE_LIMIT_LOGIN_ACCOUNT: '100000/1m',
  RATE_LIMIT_USER_EXISTS: '100000/1m',
  RATE_LIMIT_REFRESH: '100000/1m',
  RATE_LIMIT_AVAILABILITY_PROBE: '100000/1m',
  RATE_LIMIT_AVAILABILITY_PROBE_ACCOUNT: '100000/1m',
  LOCKOUT_THRESHOLD: '100000',
};

export interface GqlAnswer<T = any> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

export interface Instance {
  /** 'A', 'B', 'C', ... in start order. */
  readonly name: string;
  /** http://127.0.0.1:<port> */
  readonly base: string;
  readonly child: ChildProcess;
  /** One GraphQL operation over HTTP. */
  gql<T = any>(query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Promise<GqlAnswer<T>>;
  /** A plain GET (/health, /.well-known/jwks.json). */
  get(pathname: string): Promise<Response>;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
}

export interface AdminResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Cluster {
  readonly instances: readonly Instance[];
  readonly databaseUrl: string;
  readonly dataDir: string;
  readonly keysFile: string;
  readonly redisUrl: string;
  readonly redisKeyPrefix: string;
  /** The environment every instance got (without PORT differences: all listen on a free port). */
  readonly env: Readonly<Record<string, string>>;
  /** `npm run admin -- <args>` on the same database and key file, while the instances serve. */
  admin(args: readonly string[], stdin?: string): Promise<AdminResult>;
  /** Raw SQL on the shared database, as an operator's psql would run it (past every cache). */
  sql<R extends Record<string, unknown> = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
}

export interface ClusterOptions {
  /** Instances to start (default 2). */
  readonly count?: number;
  /** Added to (and overriding) the environment of every instance and of the admin CLI. */
  readonly env?: Record<string, string>;
  /** Another Redis than the shared one, e.g. a redis-server of the test's own that it stops (redis-server.ts). */
  readonly redisUrl?: string;
}

/**
 * For a describe block: a fresh PostgreSQL database, a key prefix of its own on Redis and a temporary
 * data directory, `count` servers started on them before the block's tests, and after them every server
 * stopped (SIGTERM, then SIGKILL), the database dropped and the prefix's keys deleted. Lazy (beforeAll),
 * so a block skipped on SQLite starts nothing. Read the returned object's fields inside tests only.
 */
export function useInstances(options: ClusterOptions = {}): Cluster {
  let cluster: (Cluster & { stop(): Promise<void> }) | undefined;
  beforeAll(async () => {
    cluster = await startCluster(options);
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);
  // A failed test shows what the servers said (LOG_LEVEL=warn by default: warnings and errors).
  afterEach(({ task }) => {
    if (task.result?.state !== 'fail' || !cluster) return;
    for (const instance of cluster.instances) console.log(`--- instance ${instance.name} output (last 3000 characters) ---\n${instance.output().slice(-3000)}`);
  });
  const current = () => {
    if (!cluster) throw new Error('useInstances: the instances exist only inside tests (after beforeAll)');
    return cluster;
  };
  return {
    get instances() {
      return current().instances;
    },
    get databaseUrl() {
      return current().databaseUrl;
    },
    get dataDir() {
      return current().dataDir;
    },
    get keysFile() {
      return current().keysFile;
    },
    get redisUrl() {
      return current().redisUrl;
    },
    get redisKeyPrefix() {
      return current().redisKeyPrefix;
    },
    get env() {
      return current().env;
    },
    admin: (args, stdin) => current().admin(args, stdin),
    sql: (text, params) => current().sql(text, params),
  };
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster & { stop(): Promise<void> }> {
  const count = options.count ?? 2;
  const database = await createPostgresDatabase();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-multi-'));
  const keysFile = path.join(dataDir, 'keys.json');
  const redisUrl = options.redisUrl ?? SHARED_REDIS_URL;
  const redisKeyPrefix = `gatehouse-test:${randomBytes(6).toString('hex')}:`;
  const env: Record<string, string> = {
    ...BASE_ENV,
    DATA_DIR: dataDir,
    KEYS_FILE: keysFile,
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: redisKeyPrefix,
    ...options.env,
  };
  const instances: SpawnedInstance[] = [];
  const stop = async () => {
    await Promise.all(instances.map((instance) => instance.stop()));
    await database.drop();
    if (!options.redisUrl) await deleteKeysUnder(redisUrl, redisKeyPrefix);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    // All at once, like a deployment's replicas: the first start creates the key file, and of two creating
    // it at once one wins and the other reads its file (keys.ts loadOrCreateKeyFile).
    const started = await Promise.allSettled(Array.from({ length: count }, (_, i) => startInstance(String.fromCharCode(65 + i), env)));
    for (const result of started) if (result.status === 'fulfilled') instances.push(result.value);
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  } catch (error) {
    await stop();
    throw error;
  }
  const sqlClient = new pg.Pool({ connectionString: database.url, max: 2, application_name: 'gatehouse-tests' });
  sqlClient.on('error', () => {});
  return {
    instances,
    databaseUrl: database.url,
    dataDir,
    keysFile,
    redisUrl,
    redisKeyPrefix,
    env,
    admin: (args, stdin = '') => runAdmin(env, args, stdin),
    sql: async (text, params) => (await sqlClient.query(text, params)).rows,
    stop: async () => {
      await sqlClient.end().catch(() => {});
      await stop();
    },
  };
}

interface SpawnedInstance extends Instance {
  stop(): Promise<void>;
}

// Should the worker end without afterAll (a crash, a timeout kill), no server outlives it.
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

const STARTUP_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 10_000;

async function startInstance(name: string, env: Record<string, string>): Promise<SpawnedInstance> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      running.delete(child);
      resolve();
    }),
  );
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`instance ${name} did not report listening within ${STARTUP_TIMEOUT_MS} ms:\n${output}`)),
      STARTUP_TIMEOUT_MS,
    );
    const onData = (chunk: Buffer) => {
      output += chunk;
      // main.ts prints this line once the app is wired and the port serves (PORT=0: the kernel's choice).
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`instance ${name} exited during start (code ${child.exitCode}, signal ${child.signalCode}):\n${output}`));
    });
  }).catch(async (error: unknown) => {
    child.kill('SIGKILL');
    await exited;
    throw error;
  });

  return {
    name,
    base,
    child,
    output: () => output,
    get: (pathname) => fetch(`${base}${pathname}`),
    async gql(query, variables = {}, headers = {}) {
      const response = await fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
        body: JSON.stringify({ query, variables }),
      });
      const text = await response.text();
      try {
        return { status: response.status, ...(JSON.parse(text) as object) };
      } catch {
        throw new Error(`instance ${name} answered ${response.status} with a body that is not JSON: ${text.slice(0, 300)}`);
      }
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

function runAdmin(env: Record<string, string>, args: readonly string[], stdin: string): Promise<AdminResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/admin.ts', ...args],
      { cwd: root, env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 90_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(stdin);
  });
}

/** Deletes this run's keys (SCAN under the prefix): the shared Redis is never flushed. */
async function deleteKeysUnder(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } catch {
    // Unreachable: nothing to clean now; whatever stayed is under this run's prefix only.
  } finally {
    redis.disconnect();
  }
}

/**
 * Polls `probe` until it returns true or `deadlineMs` after `since` (a performance.now() reading, by default
 * now) passed. Resolves to the milliseconds from `since` to the answer of the probe that returned true (the
 * latest the change can have arrived), or null at the deadline. Always probes at least once.
 */
export async function pollUntil(probe: () => Promise<boolean>, deadlineMs: number, since = performance.now(), intervalMs = 20): Promise<number | null> {
  const start = since;
  for (;;) {
    if (await probe()) return performance.now() - start;
    if (performance.now() - start >= deadlineMs) return null;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
