import type { IsolationLevel, SqlDriverAdapter, SqlDriverAdapterFactory, SqlQuery, Transaction } from '@prisma/driver-adapter-utils';
import { betterSqliteConnectionOf, type PreparedStatements, type StatementRunner, statementCache } from './prepared-statements.js';
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
): SqlDriverAdapterFactory {
  return {
    provider: factory.provider,
    adapterName: factory.adapterName,
    async connect() {
      const adapter = await factory.connect();
      try {
        return gatedAdapter(adapter, new Gate(), await connectBarrier(adapter), prepared);
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

function gatedAdapter(adapter: SqlDriverAdapter, gate: Gate, durability: DurabilityBarrier, prepared?: PreparedStatements): SqlDriverAdapter {
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
  const statement = <T>(run: () => Promise<T>, writes: boolean) =>
    afterDurable(
      gate.run(() => {
        durability.refuseIfFailed();
        return marked(run, writes);
      }),
    );
  const connection = prepared && betterSqliteConnectionOf(adapter);
  const prepare = connection && statementCache(connection);
  const runner: StatementRunner | undefined =
    prepare &&
    (<T>(sql: string, args: readonly unknown[]) =>
      statement(async () => {
        // Raw better-sqlite3 errors (SqliteError), not Prisma's: callers only tell success from failure.
        if (!connection.open) throw new Error('the database connection is closed');
        return prepare(sql).all(...args) as T[];
      }, true));
  if (runner) prepared?.attach(runner);
  return {
    provider: adapter.provider,
    adapterName: adapter.adapterName,
    queryRaw: (query: SqlQuery) => statement(() => adapter.queryRaw(query), !isRead(query.sql)),
    executeRaw: (query: SqlQuery) => statement(() => adapter.executeRaw(query), true),
    executeScript: (script: string) => statement(() => adapter.executeScript(script), true),
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
      const leave = await gate.enter();
      let transaction: Transaction;
      try {
        durability.refuseIfFailed();
        // The transaction's reads must not see writes that are not yet durable either.
        await durability.durable();
        transaction = await adapter.startTransaction(isolationLevel);
      } catch (error) {
        leave();
        throw error;
      }
      const finish = (end: () => Promise<void>) => async () => {
        try {
          await end();
        } finally {
          durability.written();
          leave();
        }
        await durability.durable();
      };
      // The transaction's own queries run inside the gate it holds; only its end lets others in. Prisma
      // sends COMMIT through executeRaw and then calls commit(): either one marks the write.
      return {
        provider: transaction.provider,
        adapterName: transaction.adapterName,
        options: transaction.options,
        queryRaw: (query: SqlQuery) => marked(() => transaction.queryRaw(query), !isRead(query.sql)),
        executeRaw: (query: SqlQuery) => marked(() => transaction.executeRaw(query), true),
        createSavepoint: transaction.createSavepoint?.bind(transaction),
        rollbackToSavepoint: transaction.rollbackToSavepoint?.bind(transaction),
        releaseSavepoint: transaction.releaseSavepoint?.bind(transaction),
        commit: finish(() => transaction.commit()),
        rollback: finish(() => transaction.rollback()),
      };
    },
  };
}
