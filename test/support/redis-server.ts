import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';

// A redis-server of the test's own, for tests that stop Redis in the middle: the shared one at
// 127.0.0.1:6379 is never stopped or flushed. No persistence, so a restart comes back empty, like a
// Redis that lost its memory.

export interface OwnRedis {
  readonly url: string;
  readonly port: number;
  /** Starts it (again, on the same port) and waits until it answers PING. */
  start(): Promise<void>;
  /** Stops it (SIGKILL: as abrupt as a crash) and waits for the process to end. */
  stop(): Promise<void>;
  readonly running: boolean;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function answersPing(url: string): Promise<boolean> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 500, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

/** A stopped-or-running redis-server on a free port; killed after the test file. Call start() to run it. */
export async function ownRedisServer(): Promise<OwnRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  afterAll(() => {
    child?.kill('SIGKILL');
  });
  return {
    url,
    port,
    get running() {
      return child !== undefined;
    },
    async start() {
      if (child) return;
      let output = '';
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout!.on('data', (chunk) => (output += chunk));
      child.stderr!.on('data', (chunk) => (output += chunk));
      const current = child;
      exited = new Promise((resolve) => current.once('exit', () => resolve()));
      const deadline = performance.now() + 20_000;
      while (!(await answersPing(url))) {
        if (current.exitCode !== null || performance.now() > deadline) throw new Error(`redis-server on port ${port} did not start:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async stop() {
      if (!child) return;
      child.kill('SIGKILL');
      await exited;
      child = undefined;
    },
  };
}
