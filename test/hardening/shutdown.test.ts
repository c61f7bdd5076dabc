import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { REGISTER } from '../support/app.js';
import { startServer, type SpawnedServer } from '../support/server-process.js';

// SIGTERM/SIGINT with requests in flight: every request the server accepted gets its whole answer, new
// connections are refused, the database is closed and the process exits 0 (bounded by
// SHUTDOWN_TIMEOUT_SECONDS).

// Real-cost hashing, made slower still: registrations that take a while on the thread pool.
const SLOW_HASHING = { ARGON2_MEMORY_KIB: '19456', ARGON2_TIME_COST: '6' };

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A registration over its own connection; resolves with the status, the Connection header and the result. */
function registration(server: SpawnedServer, username: string) {
  const state = { settled: false };
  const done = fetch(`${server.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify({ query: REGISTER, variables: { input: { username, password: 'a long enough password' } } }),
  })
    .then(async (response) => ({
      status: response.status,
      connection: response.headers.get('connection'),
      typename: ((await response.json()) as { data?: { register?: { __typename?: string } } }).data?.register?.__typename,
    }))
    .catch((error: unknown) => ({ status: 0, connection: null, typename: String((error as Error).cause ?? error) }))
    .finally(() => (state.settled = true));
  return Object.assign(state, { done });
}

function usersIn(dbPath: string): number {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.prepare("SELECT count(*) AS n FROM User WHERE username LIKE 'drain%'").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** A raw keep-alive connection that has answered one request and now sits idle. */
async function idleKeepAliveSocket(server: SpawnedServer): Promise<{ socket: Socket; closed: Promise<void> }> {
  const { hostname, port } = new URL(server.base);
  const socket = connect(Number(port), hostname);
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  let received = '';
  socket.on('data', (chunk) => (received += chunk));
  socket.write(`GET /live HTTP/1.1\r\nHost: ${hostname}\r\nConnection: keep-alive\r\n\r\n`);
  await until(() => /^HTTP\/1\.1 200/.test(received) && received.includes('\r\n\r\n'), 'the keep-alive answer');
  return { socket, closed };
}

describe('shutdown on SIGTERM', { timeout: 120_000 }, () => {
  it('finishes every accepted request, refuses new connections, closes idle ones and exits 0', async () => {
    // A drain long enough for 40 slow hashes on a loaded 2-core machine (the default 10 s was cut there,
    // answering 503); cutting at the timeout is the next test's subject.
    const server = await startServer({ ...SLOW_HASHING, SHUTDOWN_TIMEOUT_SECONDS: '60' });
    const idle = await idleKeepAliveSocket(server);
    const requests = Array.from({ length: 40 }, (_, i) => registration(server, `drain${i}`));
    // Let the server accept them all; the hashing keeps most of them running well beyond this.
    await sleep(400);
    const runningAtSignal = requests.filter((r) => !r.settled).length;
    server.child.kill('SIGTERM');
    await until(() => /Shutdown: SIGTERM received/.test(server.output()), 'the shutdown to start');

    // A new connection is not served while accepted requests are still running: refused once the listening
    // socket is closed, or reset when it reached the kernel's queue just before that.
    const fresh = await fetch(`${server.base}/live`).then(
      (response) => `answered ${response.status}`,
      (error: Error) => String((error.cause as NodeJS.ErrnoException | undefined)?.code ?? error),
    );
    const stillRunning = requests.filter((r) => !r.settled).length;
    expect(['ECONNREFUSED', 'ECONNRESET']).toContain(fresh);
    expect(runningAtSignal).toBeGreaterThan(0);
    expect(stillRunning).toBeGreaterThan(0);
    // The idle keep-alive connection is closed by the server, not left to hold the shutdown.
    await idle.closed;

    const answers = await Promise.all(requests.map((r) => r.done));
    // Every request the server had begun when the signal came is answered in full. On a loaded machine a
    // few may reach their (already accepted) connection only after it: those get a whole 503 and do nothing;
    // and some may not have been taken in at all: refused once the port closed, or reset when they sat in
    // the kernel's queue or on a connection whose request the server had not begun to read (closed as idle).
    // None of those was acknowledged, and the database check below shows none changed anything.
    const accepted = Number(/waiting up to [\d.]+ s for (\d+) request\(s\)/.exec(server.output())?.[1]);
    const registered = answers.filter((a) => a.status === 200 && a.typename === 'AuthPayload').length;
    expect(registered).toBeGreaterThanOrEqual(accepted);
    const others = answers.filter((a) => !(a.status === 200 && a.typename === 'AuthPayload'));
    expect(others.map((a) => (a.status === 0 && /ECONNREFUSED|ECONNRESET|other side closed/.test(a.typename ?? '') ? 'refused' : a.status))).toEqual(
      others.map((a) => (a.status === 0 ? 'refused' : 503)),
    );
    // Those still running when the signal came were told not to reuse their connection.
    expect(answers.filter((a) => a.connection === 'close').length).toBeGreaterThanOrEqual(stillRunning);
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(server.output()).toMatch(/Shutdown complete\./);
    // Exactly the acknowledged registrations are in the database.
    expect(usersIn(server.dbPath)).toBe(registered);
  });

  it('cuts what is still running after SHUTDOWN_TIMEOUT_SECONDS, and exits 1', async () => {
    // Hashes far longer than the timeout, and time for the requests to arrive even on a loaded machine.
    const server = await startServer({ ARGON2_MEMORY_KIB: '19456', ARGON2_TIME_COST: '150', SHUTDOWN_TIMEOUT_SECONDS: '1' });
    const requests = Array.from({ length: 12 }, (_, i) => registration(server, `cut${i}`));
    await sleep(1500);
    server.child.kill('SIGTERM');
    await until(() => /Shutdown: SIGTERM received/.test(server.output()), 'the shutdown to start');
    expect(Number(/waiting up to [\d.]+ s for (\d+) request\(s\)/.exec(server.output())?.[1])).toBeGreaterThan(0);
    const exit = await server.exited;
    expect(exit).toEqual({ code: 1, signal: null });
    expect(server.output()).toMatch(/shutdown timeout passed; cutting \d+ request\(s\)/);
    // Each request either got its whole answer or none: nothing half-written to the client. On a loaded
    // machine a request may reach its (accepted) connection only after SIGTERM: a whole 503 then.
    for (const answer of await Promise.all(requests.map((r) => r.done))) {
      expect(answer.status === 0 || answer.status === 503 || answer.typename === 'AuthPayload', JSON.stringify(answer)).toBe(true);
    }
  });
});
