import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/client.js';
import { REGISTER } from '../support/app.js';
import { freshDatabaseUrl } from '../support/db.js';
import { httpGql } from '../security/support.js';
import { startServer, type SpawnedServer } from '../support/server-process.js';

// Another process (the admin CLI, a second server, an operator's sqlite3 shell) holding the database's
// write lock: this process must keep answering what needs no lock, make writes wait off the event loop,
// and start its transactions as writers.

const UPDATE_FULLNAME = /* GraphQL */ `mutation ($fullname: String!) {
  updateProfile(input: { fullname: $fullname }) { __typename ... on User { fullname } ... on Error { code message } }
}`;
const ME = 'query { me { id username } }';

/** A promise whose settlement the test can observe without awaiting it. */
function track<T>(promise: Promise<T>) {
  const state = { settled: false, value: undefined as T | undefined };
  const done = promise.then((value) => {
    state.settled = true;
    state.value = value;
    return value;
  });
  return Object.assign(state, { done });
}

/** The write lock, taken by a connection of this (the test's) process, as another process would. */
function lockDatabase(dbPath: string) {
  const other = new Database(dbPath, { timeout: 0 });
  other.exec('BEGIN IMMEDIATE');
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    other.exec('ROLLBACK');
    other.close();
  };
  afterAll(release);
  return {
    release,
    get held() {
      return held;
    },
  };
}

async function registered(server: SpawnedServer, username: string) {
  const answer = await httpGql(server.base, REGISTER, { input: { username, password: 'a long enough password' } });
  expect(answer.data?.register?.__typename).toBe('AuthPayload');
  return { authorization: `Bearer ${answer.data.register.accessToken as string}` };
}

function fullnameOf(dbPath: string, username: string): string | null {
  const reader = new Database(dbPath, { readonly: true });
  try {
    return (reader.prepare('SELECT fullname FROM User WHERE username = ?').get(username) as { fullname: string | null }).fullname;
  } finally {
    reader.close();
  }
}

describe('another process holds the write lock', { timeout: 120_000 }, () => {
  it('keeps /live and me answering while a write waits for the lock, then the write succeeds', async () => {
    const server = await startServer();
    const auth = await registered(server, 'lockwaiter');
    // `me` once, so its state is cached as in normal operation.
    expect((await httpGql(server.base, ME, {}, auth)).data?.me?.username).toBe('lockwaiter');

    const lock = lockDatabase(server.dbPath);
    const write = track(httpGql(server.base, UPDATE_FULLNAME, { fullname: 'Written After The Lock' }, auth));
    // Let the write reach the database and find it locked.
    await sleep(500);
    const live = await fetch(`${server.base}/live`);
    const me = await httpGql(server.base, ME, {}, auth);
    // Order, not wall-clock: both answered while the lock was still held and the write still waited.
    expect(live.status).toBe(200);
    expect(me.data?.me?.username).toBe('lockwaiter');
    expect(lock.held).toBe(true);
    expect(write.settled).toBe(false);

    lock.release();
    const answer = await write.done;
    expect(answer.errors).toBeUndefined();
    expect(answer.data?.updateProfile).toEqual({ __typename: 'User', fullname: 'Written After The Lock' });
    expect(fullnameOf(server.dbPath, 'lockwaiter')).toBe('Written After The Lock');
  });

  it('fails a write cleanly when the lock is held beyond the wait, changing nothing, and recovers after', async () => {
    const server = await startServer();
    const auth = await registered(server, 'locktimeout');
    const lock = lockDatabase(server.dbPath);
    // The server waits up to 5 s for another process's lock (src/db/busy.ts); hold it well beyond.
    const write = track(httpGql(server.base, UPDATE_FULLNAME, { fullname: 'Never Written' }, auth));
    await sleep(500);
    // The wait does not hold the event loop.
    expect((await fetch(`${server.base}/live`)).status).toBe(200);
    expect(write.settled).toBe(false);
    const answer = await Promise.race([write.done, sleep(30_000).then(() => 'no answer' as const)]);
    expect(lock.held).toBe(true);
    expect(answer).not.toBe('no answer');
    if (answer === 'no answer') return;
    // A retryable refusal, no details of the database, no partial result.
    expect(answer.data?.updateProfile ?? null).toBeNull();
    expect(answer.errors).toEqual([
      expect.objectContaining({
        message: 'The database is busy; nothing was changed. Try again.',
        extensions: { code: 'SERVICE_UNAVAILABLE', retryAfter: 1 },
      }),
    ]);
    for (const error of answer.errors ?? []) expect(error.message).not.toMatch(/sqlite|prisma|locked/i);
    expect((await fetch(`${server.base}/live`)).status).toBe(200);

    lock.release();
    expect(fullnameOf(server.dbPath, 'locktimeout')).toBeNull();
    const retried = await httpGql(server.base, UPDATE_FULLNAME, { fullname: 'Written On Retry' }, auth);
    expect(retried.data?.updateProfile).toEqual({ __typename: 'User', fullname: 'Written On Retry' });
  });
});

describe('transactions start as writers', () => {
  it('a transaction that reads, then writes, succeeds although another process writes in between', async () => {
    const url = await freshDatabaseUrl();
    const db = await openDatabase(url);
    const other = new Database(url.slice('file:'.length), { timeout: 0 });
    try {
      const now = new Date();
      await db.user.create({ data: { id: 'target-id', username: 'target', usernameKey: 'target', passwordHash: 'x', updatedAt: now } });
      let otherWrite: 'committed' | 'refused' | undefined;
      await db.$transaction(async (tx) => {
        const user = await tx.user.findUniqueOrThrow({ where: { usernameKey: 'target' } });
        // Another process commits between this transaction's read and its write. A deferred transaction
        // then fails its write at once with SQLITE_BUSY_SNAPSHOT; one begun IMMEDIATE holds the lock, so
        // the other process is the one that waits (here: is refused, having no busy timeout).
        try {
          other.prepare("UPDATE User SET fullname = 'other process' WHERE usernameKey = 'target'").run();
          otherWrite = 'committed';
        } catch (error) {
          expect((error as { code: string }).code).toMatch(/^SQLITE_BUSY/);
          otherWrite = 'refused';
        }
        await tx.user.update({ where: { id: user.id }, data: { disabledAt: now } });
      });
      expect(otherWrite).toBe('refused');
      expect((await db.user.findUniqueOrThrow({ where: { usernameKey: 'target' } })).disabledAt).toEqual(now);
    } finally {
      other.close();
      await db.$disconnect();
    }
  });
});
