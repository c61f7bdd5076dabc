import type { StoreTransactionClient } from './store-client.js';

declare const transactionBrand: unique symbol;

/**
 * An open transaction, as a value of its own type. Store methods that must run inside one take it as
 * their first parameter: neither the plain client nor nothing type-checks there, so a write cannot
 * silently leave the transaction (on SQLite that waits for the transaction's own gate until Prisma's
 * timeout rolls it back).
 */
export interface Transaction {
  readonly [transactionBrand]: true;
}

/** Runs `work` in one transaction: all of it commits, or none of it. */
export type RunInTransaction = <T>(work: (tx: Transaction) => Promise<T>) => Promise<T>;

type PrismaTransactionClient = StoreTransactionClient;

/** The Prisma transaction client behind a Transaction, and what runs once it has committed. */
class PrismaTransaction {
  readonly #afterCommit: (() => void)[] = [];
  constructor(readonly client: PrismaTransactionClient) {}

  afterCommit(action: () => void): void {
    this.#afterCommit.push(action);
  }

  committed(): void {
    for (const action of this.#afterCommit) action();
  }
}

/** Runs `work` in a Prisma interactive transaction; the stores' after-commit actions run once it committed. */
export async function runInPrismaTransaction<T>(
  begin: <R>(work: (client: PrismaTransactionClient) => Promise<R>) => Promise<R>,
  work: (tx: Transaction) => Promise<T>,
): Promise<T> {
  let opened: PrismaTransaction | undefined;
  const result = await begin((client) => {
    opened = new PrismaTransaction(client);
    return work(opened as unknown as Transaction);
  });
  opened?.committed();
  return result;
}

/** For the stores only: the Prisma client that runs statements inside `tx`. */
export function prismaIn(tx: Transaction): PrismaTransactionClient {
  return opened(tx).client;
}

/**
 * For the stores only: runs `action` once `tx` has committed (not at all if it rolls back). A cache entry
 * dropped inside the transaction is dropped again here, in case a read that began before the commit put
 * the old row back meanwhile.
 */
export function afterCommit(tx: Transaction, action: () => void): void {
  opened(tx).afterCommit(action);
}

function opened(tx: Transaction): PrismaTransaction {
  if (!(tx instanceof PrismaTransaction)) throw new TypeError('not a transaction opened by Database.transaction');
  return tx;
}
