import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaClient } from './generated/sqlite/client.js';
import { serializeTransactions } from './serialized-adapter.js';

export type Database = PrismaClient;
export type { User as UserRecord, Session as SessionRecord, ApiToken as ApiTokenRecord } from './generated/sqlite/client.js';

export function sqlitePath(databaseUrl: string): string {
  return databaseUrl.replace(/^file:/, '');
}

/** Opens the SQLite database (creating its folder) in WAL mode. Migrations are applied separately. */
export async function openDatabase(databaseUrl: string, synchronous: 'FULL' | 'NORMAL' = 'FULL'): Promise<Database> {
  mkdirSync(path.dirname(path.resolve(sqlitePath(databaseUrl))), { recursive: true });
  // busy timeout: WAL allows one writer; a second one waits instead of failing with SQLITE_BUSY.
  const adapter = serializeTransactions(new PrismaBetterSqlite3({ url: databaseUrl, timeout: 5000 }));
  // Transactions queue behind other queries (serialized-adapter.ts): allow for that under load.
  const db = new PrismaClient({ adapter, transactionOptions: { maxWait: 10_000, timeout: 10_000 } });
  // WAL: readers never block the writer, and a commit is one sequential append (6x faster writes here).
  await db.$queryRawUnsafe('PRAGMA journal_mode = WAL');
  // FULL (default): a commit we acknowledged survives a power cut too, not only a process crash, which
  // is all NORMAL promises. FULL costs an fsync (~0.5 ms here) per write, on the event loop.
  await db.$executeRawUnsafe(`PRAGMA synchronous = ${synchronous === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
  return db;
}

export async function isDatabaseReachable(db: Database): Promise<boolean> {
  try {
    await db.$queryRawUnsafe('SELECT 1');
    return true;
  } catch {
    return false;
  }
}
