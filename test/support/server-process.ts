import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

// The real server as a child process: `npm start`'s entry point (`node --import tsx src/main.ts`), started
// with an environment of the test's choosing, waited for until it listens, stopped with SIGTERM (SIGKILL
// if it does not go), and everything it wrote kept for the test to read. Every test that needs the
// process rather than the app in memory (test/support/app.ts) starts it here.

const root = path.resolve(import.meta.dirname, '../..');

/** Processes still running when the test file ends are killed, whatever the test did. */
const running = new Set<ChildProcess>();
afterAll(() => {
  for (const child of running) child.kill('SIGKILL');
});

/** Cheap argon2 keeps start-up and logins fast; the production parameters are the password tests' concern. */
export const CHEAP_ARGON2_ENV: Record<string, string> = { ARGON2_MEMORY_KIB: '1024', ARGON2_TIME_COST: '1' };

/** Cheap argon2 and rate limits out of the way, for tests whose subject is not the throttling. */
export const CHEAP_SERVER_ENV: Record<string, string> = {
  ...CHEAP_ARGON2_ENV,
  RATE_LIMIT_REGISTER: '100000/1m',
  RATE_LIMIT_LOGIN: '100000/1m',
  RATE_LIMIT_LOGIN_ACCOUNT: '100000/1m',
  RATE_LIMIT_USER_EXISTS: '100000/1m',
  RATE_LIMIT_REFRESH: '100000/1m',
  LOCKOUT_THRESHOLD: '100000',
};

export interface ServerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  readonly child: ChildProcess;
  /**
   * The base URL (`http://host:port`) once the server logged that it listens; rejects, with what it wrote,
   * if it exits first. A test that expects the start to fail awaits `exited` instead.
   */
  readonly listening: Promise<string>;
  readonly exited: Promise<ServerExit>;
  /** Everything the process wrote so far, stdout and stderr in the order they arrived. */
  output(): string;
  /** SIGTERM (a graceful shutdown), then SIGKILL if it has not exited after `graceMs`; resolves with its exit. */
  stop(graceMs?: number): Promise<ServerExit>;
}

export interface ServerProcessOptions {
  /**
   * Added to `PATH`, `NODE_ENV=test`, cheap argon2 and `PORT=0` (a free port), and taking precedence over
   * them. Nothing else of the test runner's environment reaches the server.
   */
  readonly env?: Record<string, string>;
  /** Starts the server under this umask (e.g. '000'); the umask is per process and inherited. */
  readonly umask?: string;
}

/** Starts the server and returns at once; await `listening` (or `exited`). */
export function spawnServer({ env = {}, umask }: ServerProcessOptions = {}): ServerProcess {
  const node = [process.execPath, '--import', 'tsx', 'src/main.ts'];
  // `sh -c 'umask … && exec "$0" "$@"' node …`: the shell sets the umask and becomes the server.
  const [command, ...args] = umask === undefined ? node : ['/bin/sh', '-c', `umask ${umask} && exec "$0" "$@"`, ...node];
  const child = spawn(command!, args, {
    cwd: root,
    env: { PATH: process.env.PATH, NODE_ENV: 'test', ...CHEAP_ARGON2_ENV, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  const exited = new Promise<ServerExit>((resolve) =>
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  const listening = new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) resolve(match[1]!);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then(({ code, signal }) => reject(new Error(`server exited with ${code ?? signal}: ${output}`)));
  });
  // A server expected to fail never listens; only a test that awaits `listening` should see that.
  listening.catch(() => undefined);
  return {
    child,
    listening,
    exited,
    output: () => output,
    async stop(graceMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Runs the server until it exits by itself (a start that must fail), killed after `timeoutMs` otherwise. */
export async function runServerToExit(options: ServerProcessOptions, timeoutMs = 60_000): Promise<ServerExit & { output: string }> {
  const server = spawnServer(options);
  const timer = setTimeout(() => server.child.kill('SIGKILL'), timeoutMs);
  try {
    return { ...(await server.exited), output: server.output() };
  } finally {
    clearTimeout(timer);
  }
}

/** A server started by startServer, listening on `base`, with its data in `dataDir`. */
export interface SpawnedServer extends ServerProcess {
  readonly base: string;
  readonly dataDir: string;
  readonly dbPath: string;
  readonly keysFile: string;
}

/**
 * The server on `dataDir` (a fresh one by default) with CHEAP_SERVER_ENV and LOG_LEVEL=warn, plus `env`;
 * resolves once it listens, rejects if it exits first.
 */
export async function startServer(env: Record<string, string> = {}, dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-server-'))): Promise<SpawnedServer> {
  const server = spawnServer({ env: { LOG_LEVEL: 'warn', DATA_DIR: dataDir, ...CHEAP_SERVER_ENV, ...env } });
  const base = await server.listening;
  return { ...server, base, dataDir, dbPath: path.join(dataDir, 'gatehouse.db'), keysFile: path.join(dataDir, 'keys.json') };
}
