import type { Prisma, PrismaClient as SqlitePrismaClient } from './generated/sqlite/client.js';

/**
 * What the stores need of a Prisma client: the model delegates and `$queryRaw`. Written against the
 * SQLite client's types, and used for both engines' clients: the PostgreSQL client is generated from the
 * same model (scripts/postgres-schema.ts; test/postgres/schema-drift.test.ts fails on drift), runs on the
 * same Prisma runtime, and its delegates take the same arguments and return the same rows. TypeScript
 * cannot see that (each generated client has its own nominal namespace of helper types), so the one cast
 * lives in `asStoreClient` below; everything else is checked.
 */
export type StoreClient = Pick<SqlitePrismaClient, 'user' | 'session' | 'apiToken' | 'emailToken' | 'mailOutbox' | '$queryRaw'>;

/** The client that runs statements inside an interactive transaction, for either engine. */
export type StoreTransactionClient = Prisma.TransactionClient;

/** Which SQL dialect a store's few hand-written statements must speak. */
export type Engine = 'sqlite' | 'postgresql';

/** A PostgreSQL client seen through the stores' structural type (see StoreClient for why this holds). */
export function asStoreClient<T extends { user: unknown; session: unknown; apiToken: unknown; emailToken: unknown; mailOutbox: unknown; $queryRaw: unknown }>(
  client: T,
): StoreClient {
  return client as unknown as StoreClient;
}
