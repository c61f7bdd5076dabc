import type { IsolationLevel, SqlDriverAdapter, SqlDriverAdapterFactory, SqlQuery, Transaction } from '@prisma/driver-adapter-utils';

/**
 * Keeps other queries out of an open interactive transaction.
 *
 * The better-sqlite3 adapter runs everything on one SQLite connection, and its own lock only keeps two
 * transactions apart: an ordinary query issued while another request's transaction was open ran
 * *inside* it, saw its uncommitted rows, and was rolled back with it — a logout acknowledged to one
 * client was undone by an unrelated admin action failing. Here a transaction holds a gate from start to
 * commit or rollback, and every query outside it waits at the gate. Queries are synchronous in
 * better-sqlite3 anyway, so the gate costs one promise per query and no parallelism.
 *
 * Do not use the plain client inside a transaction callback: it would wait for its own transaction
 * (Prisma's transaction timeout then rolls it back).
 */
export function serializeTransactions(factory: SqlDriverAdapterFactory): SqlDriverAdapterFactory {
  return {
    provider: factory.provider,
    adapterName: factory.adapterName,
    async connect() {
      return gatedAdapter(await factory.connect(), new Gate());
    },
  };
}

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

function gatedAdapter(adapter: SqlDriverAdapter, gate: Gate): SqlDriverAdapter {
  return {
    provider: adapter.provider,
    adapterName: adapter.adapterName,
    queryRaw: (query: SqlQuery) => gate.run(() => adapter.queryRaw(query)),
    executeRaw: (query: SqlQuery) => gate.run(() => adapter.executeRaw(query)),
    executeScript: (script: string) => gate.run(() => adapter.executeScript(script)),
    getConnectionInfo: adapter.getConnectionInfo?.bind(adapter),
    dispose: () => adapter.dispose(),
    async startTransaction(isolationLevel?: IsolationLevel): Promise<Transaction> {
      const leave = await gate.enter();
      let transaction: Transaction;
      try {
        transaction = await adapter.startTransaction(isolationLevel);
      } catch (error) {
        leave();
        throw error;
      }
      const finish = (end: () => Promise<void>) => async () => {
        try {
          await end();
        } finally {
          leave();
        }
      };
      // The transaction's own queries run inside the gate it holds; only its end lets others in.
      return {
        provider: transaction.provider,
        adapterName: transaction.adapterName,
        options: transaction.options,
        queryRaw: (query: SqlQuery) => transaction.queryRaw(query),
        executeRaw: (query: SqlQuery) => transaction.executeRaw(query),
        createSavepoint: transaction.createSavepoint?.bind(transaction),
        rollbackToSavepoint: transaction.rollbackToSavepoint?.bind(transaction),
        releaseSavepoint: transaction.releaseSavepoint?.bind(transaction),
        commit: finish(() => transaction.commit()),
        rollback: finish(() => transaction.rollback()),
      };
    },
  };
}
