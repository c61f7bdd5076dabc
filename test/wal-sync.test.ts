import { mkdtemp, open, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import Sqlite from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openDatabase } from '../src/db/client.js';
import { PrismaClient } from '../src/db/generated/sqlite/client.js';
import { PreparedStatements, sqliteTimestamp } from '../src/db/prepared-statements.js';
import { serializeTransactions } from '../src/db/serialized-adapter.js';
import { type SyncedFile, WalSync } from '../src/db/wal-sync.js';
import { freshDatabaseUrl } from './support/db.js';

// An acknowledged write must survive a power cut: with SQLITE_SYNCHRONOUS=FULL no database result may
// reach a caller before the WAL fsync that covers every write it could depend on has finished.

/** A WAL file whose fsyncs finish only when the test says so. */
function controlledFile() {
  const pending: { finish: () => void; fail: (error: Error) => void }[] = [];
  const file: SyncedFile = {
    datasync: () => new Promise<void>((resolve, reject) => pending.push({ finish: resolve, fail: reject })),
    close: async () => {},
  };
  const finishAll = () => {
    for (const fsync of pending.splice(0)) fsync.finish();
  };
  return { file, pending, finishAll };
}

async function until(condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition(); waited += 5) {
    if (waited > 5000) throw new Error(`condition not reached: ${condition.toString()}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Prisma runs a query only once something awaits it. */
const started = <T>(query: PromiseLike<T>): Promise<T> => Promise.resolve(query);

/** Whether a promise has settled after everything already queued has run. */
async function isSettled(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

function user(username: string) {
  return { id: username, username, usernameKey: username, passwordHash: 'x' };
}

describe('WalSync', () => {
  it('waits for nothing until something is written', () => {
    const { file, pending } = controlledFile();
    const sync = new WalSync(file);
    expect(sync.durable()).toBeUndefined();
    sync.written();
    expect(sync.durable()).toBeInstanceOf(Promise);
    expect(pending).toHaveLength(1);
  });

  it('counts only an fsync that started after the write, and lets waiters share one', async () => {
    const { file, pending } = controlledFile();
    const sync = new WalSync(file);
    sync.written();
    const first = [sync.durable()!, sync.durable()!];
    expect(pending).toHaveLength(1);
    sync.written(); // committed while the first fsync runs: that fsync may have missed it
    const second = sync.durable()!;
    pending[0]!.finish();
    await Promise.all(first);
    expect(await isSettled(second)).toBe(false);
    expect(pending).toHaveLength(2);
    pending[1]!.finish();
    await second;
    expect(sync.durable()).toBeUndefined();
  });

  it('refuses everything after a failed fsync, even once a later one would succeed', async () => {
    const { file, pending } = controlledFile();
    const sync = new WalSync(file);
    sync.written();
    const waiting = sync.durable()!;
    pending[0]!.fail(new Error('EIO'));
    await expect(waiting).rejects.toThrow(/fsync of the SQLite WAL failed/);
    await expect(sync.durable()!).rejects.toThrow(/fsync of the SQLite WAL failed/);
    expect(() => sync.refuseIfFailed()).toThrow(/fsync of the SQLite WAL failed/);
  });
});

describe('database results wait for durability', () => {
  async function databaseWithControlledSync() {
    const { file, pending, finishAll } = controlledFile();
    const url = await freshDatabaseUrl();
    const prepared = new PreparedStatements();
    const adapter = serializeTransactions(
      new PrismaBetterSqlite3({ url }),
      async (connection) => {
        await connection.executeScript('PRAGMA journal_mode = WAL');
        return new WalSync(file);
      },
      prepared,
    );
    const db = new PrismaClient({ adapter });
    const rowsSeenByAnotherProcess = () => {
      const other = new Sqlite(url.replace(/^file:/, ''));
      try {
        return (other.prepare('SELECT count(*) AS n FROM User').get() as { n: number }).n;
      } finally {
        other.close();
      }
    };
    await db.$connect();
    return { db, pending, finishAll, rowsSeenByAnotherProcess, prepared };
  }

  it('acknowledges a write, and a read that could see it, only after the fsync', async () => {
    const { db, pending, finishAll } = await databaseWithControlledSync();
    const created = started(db.user.create({ data: user('durable') }));
    await until(() => pending.length === 1);
    expect(await isSettled(created)).toBe(false);

    const readBack = started(db.user.findUnique({ where: { usernameKey: 'durable' } }));
    expect(await isSettled(readBack)).toBe(false);
    finishAll();
    expect((await created).username).toBe('durable');
    expect((await readBack)?.username).toBe('durable');

    // Nothing left to make durable: a read answers without an fsync.
    expect(await db.user.count()).toBe(1);
    expect(pending).toHaveLength(0);
    await db.$disconnect();
  });

  it('holds a failure that may depend on a write until that write is durable', async () => {
    const { db, pending, finishAll } = await databaseWithControlledSync();
    const created = started(db.user.create({ data: user('taken') }));
    await until(() => pending.length === 1);
    const duplicate = started(db.user.create({ data: user('taken') }));
    expect(await isSettled(duplicate)).toBe(false);
    finishAll();
    await created;
    // The refused INSERT counts as a write too (only SELECTs are reads): one more fsync.
    await until(() => pending.length === 1);
    finishAll();
    await expect(duplicate).rejects.toMatchObject({ code: 'P2002' });
    await db.$disconnect();
  });

  it('acknowledges a transaction only after the fsync that follows its commit', async () => {
    const { db, pending, finishAll } = await databaseWithControlledSync();
    const committed = started(db.$transaction(async (tx) => tx.user.create({ data: user('in-tx') })));
    await until(() => pending.length === 1);
    expect(await isSettled(committed)).toBe(false);
    finishAll();
    expect((await committed).username).toBe('in-tx');
    await db.$disconnect();
  });

  it('runs other statements while an fsync is pending, and shares the next fsync among them', async () => {
    const { db, pending, finishAll, rowsSeenByAnotherProcess } = await databaseWithControlledSync();
    const first = started(db.user.create({ data: user('first') }));
    await until(() => pending.length === 1);
    const second = started(db.user.create({ data: user('second') }));
    const third = started(db.user.create({ data: user('third') }));
    // Committed (another process sees them) while the first fsync runs; none is acknowledged yet.
    await until(() => rowsSeenByAnotherProcess() === 3);
    for (const write of [first, second, third]) expect(await isSettled(write)).toBe(false);
    finishAll();
    await first;
    await until(() => pending.length === 1);
    expect(await isSettled(second)).toBe(false);
    finishAll();
    await Promise.all([second, third]);
    expect(pending).toHaveLength(0);
    await db.$disconnect();
  });

  const insertUser = (prepared: PreparedStatements, id: string) =>
    prepared.writeReturning<{ id: string }>(
      'INSERT INTO "User" ("id", "username", "usernameKey", "passwordHash", "updatedAt") VALUES (?, ?, ?, ?, ?) RETURNING "id"',
      [id, id, id, 'x', sqliteTimestamp(new Date())],
    );

  it('holds a prepared statement to the same rules: after the fsync, and never inside a transaction', async () => {
    const { db, pending, finishAll, rowsSeenByAnotherProcess, prepared } = await databaseWithControlledSync();
    expect(prepared.available).toBe(true);
    const written = insertUser(prepared, 'prepared');
    await until(() => pending.length === 1);
    expect(await isSettled(written)).toBe(false);
    finishAll();
    expect(await written).toEqual([{ id: 'prepared' }]);

    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const transaction = started(
      db.$transaction(async (tx) => {
        await tx.user.create({ data: user('uncommitted') });
        await held;
      }),
    );
    await until(() => rowsSeenByAnotherProcess() === 1 && pending.length === 0);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const outside = insertUser(prepared, 'outside');
    expect(await isSettled(outside)).toBe(false);
    release();
    await until(() => pending.length === 1);
    finishAll();
    await transaction;
    await until(() => pending.length === 1);
    finishAll();
    expect(await outside).toEqual([{ id: 'outside' }]);
    expect(rowsSeenByAnotherProcess()).toBe(3);
    await db.$disconnect();
    expect(prepared.available).toBe(false);
  });

  it('runs nothing more once an fsync has failed', async () => {
    const { db, pending, rowsSeenByAnotherProcess, prepared } = await databaseWithControlledSync();
    const created = started(db.user.create({ data: user('lost') }));
    await until(() => pending.length === 1);
    pending[0]!.fail(new Error('EIO'));
    await expect(created).rejects.toThrow(/fsync of the SQLite WAL failed/);
    await expect(db.user.create({ data: user('after') })).rejects.toThrow(/fsync of the SQLite WAL failed/);
    await expect(db.user.findMany()).rejects.toThrow(/fsync of the SQLite WAL failed/);
    await expect(insertUser(prepared, 'prepared')).rejects.toThrow(/fsync of the SQLite WAL failed/);
    expect(rowsSeenByAnotherProcess()).toBe(1);
    await db.$disconnect();
  });
});

describe('openDatabase', () => {
  afterEach(() => vi.restoreAllMocks());

  /** Spies on every FileHandle's datasync, holding each until the test lets it go. */
  async function spyOnDatasync() {
    const probe = await open(path.join(tmpdir(), `gatehouse-probe-${process.pid}`), 'w');
    const prototype = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const real = prototype.datasync;
    const held: (() => void)[] = [];
    const spy = vi.spyOn(prototype, 'datasync').mockImplementation(function (this: unknown) {
      return new Promise<void>((resolve, reject) => held.push(() => real.call(this).then(resolve, reject)));
    });
    const release = () => {
      for (const go of held.splice(0)) go();
    };
    return { spy, held, release };
  }

  it('with FULL runs SQLite at NORMAL and acknowledges a write only after its own fsync of the WAL', async () => {
    const { spy, held, release } = await spyOnDatasync();
    const db = await openDatabase(await freshDatabaseUrl(), 'FULL');
    const [{ synchronous }] = await db.$queryRawUnsafe<[{ synchronous: bigint | number }]>('SELECT synchronous FROM pragma_synchronous');
    expect(Number(synchronous)).toBe(1);
    release();
    const callsBefore = spy.mock.calls.length;
    const created = started(db.user.create({ data: user('on-disk') }));
    await until(() => held.length === 1);
    expect(await isSettled(created)).toBe(false);
    release();
    expect((await created).username).toBe('on-disk');
    expect(spy.mock.calls.length).toBe(callsBefore + 1);
    await db.$disconnect();
  });

  it('with NORMAL makes no fsync of its own', async () => {
    const { spy } = await spyOnDatasync();
    const db = await openDatabase(await freshDatabaseUrl(), 'NORMAL');
    await db.user.create({ data: user('in-cache') });
    expect(spy).not.toHaveBeenCalled();
    await db.$disconnect();
  });

  it('finds the WAL beside the real file when the database path is a symbolic link', async () => {
    const target = (await freshDatabaseUrl()).replace(/^file:/, '');
    const link = path.join(await mkdtemp(path.join(tmpdir(), 'gatehouse-link-')), 'linked.db');
    await symlink(target, link);
    const db = await openDatabase(`file:${link}`, 'FULL');
    expect((await db.user.create({ data: user('linked') })).username).toBe('linked');
    await db.$disconnect();
  });

  it('leaves FULL to SQLite when there is no WAL (an in-memory database)', async () => {
    const db = await openDatabase('file::memory:', 'FULL');
    const [{ synchronous }] = await db.$queryRawUnsafe<[{ synchronous: bigint | number }]>('SELECT synchronous FROM pragma_synchronous');
    expect(Number(synchronous)).toBe(2);
    await db.$disconnect();
  });
});
