import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import type { SqlDriverAdapter } from '@prisma/driver-adapter-utils';
import { PrismaClient } from './generated/sqlite/client.js';
import { PreparedStatements } from './prepared-statements.js';
import { DEFAULT_BUSY_WAIT_MS, retryWhileBusy } from './busy.js';
import { NO_BARRIER, serializeTransactions } from './serialized-adapter.js';
import { type DurabilityBarrier, WalSync } from './wal-sync.js';

/** The Prisma client over SQLite. Only src/db/ (the stores, migrations) and tests' raw reads use it. */
export type SqliteClient = PrismaClient;

export function sqlitePath(databaseUrl: string): string {
  return databaseUrl.replace(/^file:/, '');
}

/**
 * Opens the SQLite database (creating its folder) in WAL mode. Migrations are applied separately.
 *
 * `FULL` (the default): a write is acknowledged only once it is on disk, so it survives a power cut too,
 * not only a process crash, which is all `NORMAL` promises. The fsync that costs runs off the event loop
 * (wal-sync.ts).
 */
export async function openDatabase(databaseUrl: string, synchronous: 'FULL' | 'NORMAL' = 'FULL'): Promise<SqliteClient> {
  mkdirSync(path.dirname(path.resolve(sqlitePath(databaseUrl))), { recursive: true, mode: 0o700 });
  // WAL allows one writer. When another process holds the lock, a statement waits for it off the event
  // loop (busy.ts), so SQLite's own busy timeout, which would sleep on the loop, is 0.
  const prepared = new PreparedStatements();
  const adapter = serializeTransactions(
    new PrismaBetterSqlite3({ url: databaseUrl, timeout: 0 }),
    (connection) => prepareConnection(connection, synchronous),
    prepared,
    { busyWaitMs: DEFAULT_BUSY_WAIT_MS },
  );
  // maxWait covers the wait for the gate (transactions queue behind other queries, serialized-adapter.ts)
  // plus up to DEFAULT_BUSY_WAIT_MS for another process's write lock at BEGIN IMMEDIATE.
  const db = new PrismaClient({ adapter, transactionOptions: { maxWait: 10_000 + DEFAULT_BUSY_WAIT_MS, timeout: 10_000 } });
  preparedStatements.set(db, prepared);
  await db.$connect();
  return db;
}

const preparedStatements = new WeakMap<SqliteClient, PreparedStatements>();

/** The cached-statement path of a database opened by openDatabase (prepared-statements.ts). */
export function preparedStatementsOf(db: SqliteClient): PreparedStatements | undefined {
  return preparedStatements.get(db);
}

/** Puts a new connection in WAL mode and returns what makes its commits durable. */
async function prepareConnection(connection: SqlDriverAdapter, synchronous: 'FULL' | 'NORMAL'): Promise<DurabilityBarrier> {
  const firstValue = async (sql: string) => (await retryWhileBusy(() => connection.queryRaw({ sql, args: [], argTypes: [] }))).rows[0]?.[0];
  // WAL: readers never block the writer, and a commit is one sequential append (much faster writes).
  const inWalMode = (await firstValue('PRAGMA journal_mode = WAL')) === 'wal';
  if (!inWalMode) {
    // An in-memory database: SQLite's own setting applies.
    await connection.executeScript(`PRAGMA synchronous = ${synchronous}`);
    return NO_BARRIER;
  }
  // In WAL mode FULL differs from NORMAL only by the WAL fsync in each commit, which WalSync makes instead.
  await connection.executeScript('PRAGMA synchronous = NORMAL');
  if (synchronous === 'NORMAL') return NO_BARRIER;
  // A read of the schema makes SQLite create the WAL file if it does not exist yet. SQLite names it
  // after the database file as it resolved it (symbolic links followed), which database_list reports.
  await firstValue('SELECT count(*) FROM sqlite_master');
  const databaseFile = await firstValue("SELECT file FROM pragma_database_list WHERE name = 'main'");
  return WalSync.open(String(databaseFile));
}

export async function isDatabaseReachable(db: SqliteClient): Promise<boolean> {
  try {
    await db.$queryRawUnsafe('SELECT 1');
    return true;
  } catch {
    return false;
  }
}
