import {
  DriverAdapterError,
  type IsolationLevel,
  type SqlDriverAdapter,
  type SqlDriverAdapterFactory,
  type SqlQuery,
  type Transaction,
} from '@prisma/driver-adapter-utils';
import { betterSqliteConnectionOf, type PreparedStatements, type StatementRunner, statementCache } from './prepared-statements.js';
import { DEFAULT_BUSY_WAIT_MS, retryWhileBusy } from './busy.js';
import type { DurabilityBarrier } from './wal-sync.js';

/**
 * The one SQLite connection, shared safely: transactions kept apart, and nothing answered before it is
 * durable.
 *
 * **Transactions.** The better-sqlite3 adapter runs everything on one SQLite connection, and its own
 * lock only keeps two transactions apart: an ordinary query issued while another request's transaction
 * was open ran *inside* it, saw its uncommitted rows, and was rolled back with it — a logout
 * acknowledged to one client was undone by an unrelated admin action failing. Here a transaction holds a
 * gate from start to commit or rollback, and every query outside it waits at the gate. Queries are
 * synchronous in better-sqlite3 anyway, so the gate costs one promise per query and no parallelism.
 *
 * **Durability.** A write is marked on the barrier inside the gate, before any other statement can see
 * it; every result (reads included) then waits outside the gate until the barrier says all writes so
 * far are on disk (wal-sync.ts), so other statements and the next commits go on meanwhile.
 *
 * **Other processes** (the admin CLI, a second server) write to the same file. Their lock must never
 * hold the event loop: the connection's busy timeout is 0, and a statement refused with SQLITE_BUSY is
 * retried here, off the loop and outside the gate, for at most `busyWaitMs` (busy.ts has the why).
 * Reads keep answering meanwhile (WAL readers need no lock). Transactions start with `BEGIN IMMEDIATE`:
 * a deferred one that reads and then writes fails at once with SQLITE_BUSY_SNAPSHOT whenever another
 * process committed in between, and no wait helps it then; taking the write lock up front costs
 * nothing, since the gate already lets only one transaction run in this process.
 *
 * `connectBarrier` prepares each new connection (pragmas) and returns its barrier; `prepared`, if given,
 * is attached to each new connection (prepared-statements.ts).
 *
 * Do not use the plain client inside a transaction callback: it would wait for its own transaction
 * (Prisma's transaction timeout then rolls it back).
 */
export function serializeTransactions(
  factory: SqlDriverAdapterFactory,
  connectBarrier: (adapter: SqlDriverAdapter) => Promise<DurabilityBarrier> = async () => NO_BARRIER,
  prepared?: PreparedStatements,
  { busyWaitMs = DEFAULT_BUSY_WAIT_MS }: { busyWaitMs?: number } = {},
): SqlDriverAdapterFactory {
  return {
    provider: factory.provider,
    adapterName: factory.adapterName,
    async connect() {
      const adapter = await factory.connect();
      try {
        return gatedAdapter(adapter, new Gate(), await connectBarrier(adapter), busyWaitMs, prepared);
      } catch (error) {
        await adapter.dispose();
        throw error;
      }
    },
  };
}

export const NO_BARRIER: DurabilityBarrier = { written: () => {}, durable: () => undefined, refuseIfFailed: () => {}, close: async () => {} };

// Prisma's reads are SELECTs; anything else (INSERT … RETURNING, UPDATE, COMMIT, PRAGMA) counts as a
// write. Counting a read as a write costs one fsync; the reverse would acknowledge too early.
const isRead = (sql: string) => /^\s*SELECT\b/i.test(sql);

class Gate {
  #tail: Promise<void> = Promise.resolve();

  /** Waits for everyone before; returns the function that lets the next one in. */
  async enter(): Promise<() => void> {
    let leave!: () => void;
    const previous = this.#tail;
    this.#tail = new Promise<void>((resolve) => (leave = resolve));
    await previous;
    return leave;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    const leave = await this.enter();
    try {
      return await work();
    } finally {
      leave();
    }
  }
}

function gatedAdapter(
  adapter: SqlDriverAdapter,
  gate: Gate,
  durability: DurabilityBarrier,
  busyWaitMs: number,
  prepared?: PreparedStatements,
): SqlDriverAdapter {
  const afterDurable = async <T>(result: Promise<T>): Promise<T> => {
    try {
      return await result;
    } finally {
      // A failure (a unique violation, say) may depend on a write that is not yet durable, too.
      await durability.durable();
    }
  };
  // Marks the write as soon as the statement ends, before any other statement can see it.
  const marked = async <T>(run: () => Promise<T>, writes: boolean): Promise<T> => {
    try {
      return await run();
    } finally {
      if (writes) durability.written();
    }
  };
  // Outside a transaction every statement is its own: one refused with SQLITE_BUSY changed nothing, and
  // retrying it (after leaving the gate, so others go on meanwhile) is safe.
  const once = <T>(run: () => Promise<T>, writes: boolean) =>
    gate.run(() => {
      durability.refuseIfFailed();
      return marked(run, writes);
    });
  const statement = <T>(run: () => Promise<T>, writes: boolean) => afterDurable(retryWhileBusy(() => once(run, writes), busyWaitMs));
  const connection = betterSqliteConnectionOf(adapter);
  const prepare = prepared && connection && statementCache(connection);
  const runner: StatementRunner | undefined =
    prepare &&
    (<T>(sql: string, args: readonly unknown[], writes: boolean) =>
      statement(async () => {
        // Raw better-sqlite3 errors (SqliteError), not Prisma's: callers only tell success from failure.
        if (!connection.open) throw new Error('the database connection is closed');
        return prepare(sql).all(...args) as T[];
      }, writes));
  if (runner) prepared?.attach(runner);
  const run = (sql: string) => adapter.executeRaw({ sql, args: [], argTypes: [] });
  return {
    provider: adapter.provider,
    adapterName: adapter.adapterName,
    queryRaw: (query: SqlQuery) => statement(() => adapter.queryRaw(query), !isRead(query.sql)),
    executeRaw: (query: SqlQuery) => statement(() => adapter.executeRaw(query), true),
    // Never retried: a script's earlier statements may have committed before a later one met the lock.
    executeScript: (script: string) => afterDurable(once(() => adapter.executeScript(script), true)),
    getConnectionInfo: adapter.getConnectionInfo?.bind(adapter),
    async dispose() {
      if (runner) prepared?.detach(runner);
      // Everything acknowledged stays acknowledged: running work and its fsyncs finish first, and the
      // connection closes while the gate holds back anything that arrives meanwhile.
      const leave = await gate.enter();
      try {
        await durability.durable()?.catch(() => {});
        await adapter.dispose();
        await durability.close();
      } finally {
        leave();
      }
    },
    async startTransaction(isolationLevel?: IsolationLevel): Promise<Transaction> {
      if (isolationLevel && isolationLevel !== 'SERIALIZABLE') {
        throw new DriverAdapterError({ kind: 'InvalidIsolationLevel', level: isolationLevel });
      }
      // Not the adapter's own startTransaction: it sends a deferred BEGIN. Its transactions are nothing
      // but statements on the one connection anyway, which the gate now keeps apart.
      const leave = await retryWhileBusy(async () => {
        const leave = await gate.enter();
        try {
          durability.refuseIfFailed();
          // The transaction's reads must not see writes that are not yet durable either.
          await durability.durable();
          await run('BEGIN IMMEDIATE');
          return leave;
        } catch (error) {
          leave();
          throw error;
        }
      }, busyWaitMs);
      const finish = async () => {
        try {
          // Prisma sends COMMIT or ROLLBACK through executeRaw before it calls commit() or rollback().
          // Should that statement have failed, the transaction must not stay open for the next query.
          if (!connection)
            await run('ROLLBACK').catch(() => {}); // "no transaction is active" is fine
          else if (connection.inTransaction) await run('ROLLBACK');
        } finally {
          durability.written();
          leave();
        }
        await durability.durable();
      };
      // The transaction's own queries run inside the gate it holds; only its end lets others in. Prisma
      // sends COMMIT through executeRaw and then calls commit(): either one marks the write.
      return {
        provider: adapter.provider,
        adapterName: adapter.adapterName,
        options: { usePhantomQuery: false },
        queryRaw: (query: SqlQuery) => marked(() => adapter.queryRaw(query), !isRead(query.sql)),
        executeRaw: (query: SqlQuery) => marked(() => adapter.executeRaw(query), true),
        createSavepoint: async (name: string) => void (await run(`SAVEPOINT ${name}`)),
        rollbackToSavepoint: async (name: string) => void (await run(`ROLLBACK TO ${name}`)),
        releaseSavepoint: async (name: string) => void (await run(`RELEASE SAVEPOINT ${name}`)),
        commit: finish,
        rollback: finish,
      };
    },
  };
}
