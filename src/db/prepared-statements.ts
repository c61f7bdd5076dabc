import Sqlite from 'better-sqlite3';
import { LRUCache } from 'lru-cache';

export type SqlArgument = string | number | bigint | null;

/**
 * Runs a statement on the shared connection, under the same gate and durability rules as Prisma's
 * queries: `writes` marks it as a write (its caller waits for the fsync that covers it); a read waits for
 * every write before it to be durable, like any other read.
 */
export type StatementRunner = <T>(sql: string, args: readonly SqlArgument[], writes: boolean) => Promise<T[]>;

/**
 * The hottest statements (the refresh-token rotation, and a login's user read and session insert) as
 * cached prepared statements on the adapter's own better-sqlite3 connection, instead of through Prisma.
 *
 * Prisma's better-sqlite3 adapter prepares every statement anew and maps every argument and row, and
 * Prisma's query builder and interactive transactions add more on top; for these statements that cost
 * several times the CPU of a statement prepared once (README, Performance).
 *
 * Only plain values go in: dates are passed as text in the adapter's own format (`sqliteTimestamp`),
 * which a test checks against what Prisma writes. The runner is attached per connection; without one
 * (another adapter, or a Prisma version whose adapter no longer exposes its connection) callers use
 * Prisma as before.
 */
export class PreparedStatements {
  #runner: StatementRunner | undefined;

  /** Called by the adapter wrapper on each connect. */
  attach(runner: StatementRunner): void {
    this.#runner = runner;
  }

  /** Called when that connection closes; a newer connection's runner stays. */
  detach(runner: StatementRunner): void {
    if (this.#runner === runner) this.#runner = undefined;
  }

  get available(): boolean {
    return this.#runner !== undefined;
  }

  /** Runs a statement that writes and returns rows (`… RETURNING`). */
  writeReturning<T>(sql: string, args: readonly SqlArgument[]): Promise<T[]> {
    if (!this.#runner) throw new Error('no prepared-statement connection attached');
    return this.#runner<T>(sql, args, true);
  }

  /** Runs a SELECT. */
  read<T>(sql: string, args: readonly SqlArgument[]): Promise<T[]> {
    if (!this.#runner) throw new Error('no prepared-statement connection attached');
    return this.#runner<T>(sql, args, false);
  }
}

/**
 * A DateTime column as read straight from the connection: text in the adapter's `iso8601` format (what
 * Prisma writes), SQLite's own `YYYY-MM-DD HH:MM:SS` (a column default; UTC, as Prisma reads it), or
 * epoch milliseconds.
 */
export function sqliteDate(value: string | number | bigint): Date {
  if (typeof value !== 'string') return new Date(Number(value));
  return new Date(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?$/.test(value) ? `${value.replace(' ', 'T')}Z` : value);
}

/** A date as Prisma's better-sqlite3 adapter stores a DateTime in its default `iso8601` format, which
 *  openDatabase keeps (it sets no `timestampFormat`). */
export function sqliteTimestamp(date: Date): string {
  return date.toISOString().replace('Z', '+00:00');
}

/** The adapter's better-sqlite3 connection, if it still exposes one (it is not part of its typed API). */
export function betterSqliteConnectionOf(adapter: unknown): Sqlite.Database | undefined {
  const client = (adapter as { client?: unknown }).client;
  return client instanceof Sqlite ? client : undefined;
}

/** Prepared statements by SQL text; the rotation has one text per batch size (at most 500, a few KiB each). */
export function statementCache(connection: Sqlite.Database): (sql: string) => Sqlite.Statement {
  const cache = new LRUCache<string, Sqlite.Statement>({ max: 512 });
  return (sql) => {
    let statement = cache.get(sql);
    if (!statement) {
      statement = connection.prepare(sql);
      cache.set(sql, statement);
    }
    return statement;
  };
}
