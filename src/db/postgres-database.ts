import { NO_STORE_OBSERVER } from './observer.js';
import { type ChangeFeed, postgresChangeFeed } from './change-feed/index.js';
import type { StoreClock } from './clock.js';
import type { Database, DatabaseSettings } from './database.js';
import { closePostgres, openPostgres, type PostgresDatabase as PostgresClient, type PostgresOptions } from './postgres.js';
import { asStoreClient, type StoreClient, type StoreTransactionClient } from './store-client.js';
import { ApiTokenStore } from './stores/api-tokens.js';
import { EmailTokenStore } from './stores/email-tokens.js';
import { MailOutboxStore } from './stores/mail-outbox.js';
import { SessionStore } from './stores/sessions.js';
import { UserStore } from './stores/users.js';
import { runInPrismaTransaction, type Transaction } from './transaction.js';

/**
 * How many times a transaction runs when PostgreSQL aborts it as a serialization failure (or deadlock).
 * Each retry runs the whole `work` again on fresh reads; conflicts need concurrent writers of the same
 * rows (one user's logins, password change and admin changes), so a few attempts are plenty.
 */
export const SERIALIZATION_ATTEMPTS = 8;

/**
 * PostgreSQL through Prisma's adapter-pg: the same stores as SQLite, over a pool of connections.
 *
 * Concurrency. On SQLite transactions run one at a time (a gate, then BEGIN IMMEDIATE), and several rules
 * in src/auth rely on it: "nothing commits between my check and my change" (the credentials version that
 * ends logins racing a password change, disable or delete; the last-admin guard; the admin actor's
 * re-check at commit; the API-token limit per user). On PostgreSQL transactions overlap, so every
 * transaction here runs SERIALIZABLE: PostgreSQL then guarantees that the committed transactions have
 * the effect of some one-at-a-time order, exactly what the rules assume, and aborts one of any pair whose
 * overlap could break that (SQLSTATE 40001; Prisma's P2034). The aborted one is run again from the start,
 * up to SERIALIZATION_ATTEMPTS times; after that its error surfaces (an internal error, as on SQLite a
 * timeout would). Chosen over row locks (SELECT … FOR UPDATE) because the rules also read sets of rows
 * ("the other enabled admins", "the user's unrevoked tokens", "the user's live sessions") where a row
 * lock does not stop a concurrent insert or change of another row, and because it keeps src/auth and the
 * store API engine-neutral: no rule has to know which rows to lock. Statements outside a transaction (the
 * rotation's compare-and-set, revocations) are single atomic statements and run at READ COMMITTED; an
 * UPDATE's WHERE is re-checked on the row's newest version after a wait, so racing rotations still let
 * exactly one claim per generation win.
 */
export class PostgresDatabase implements Database {
  readonly engine = 'postgresql' as const;
  readonly users: UserStore;
  readonly sessions: SessionStore;
  readonly apiTokens: ApiTokenStore;
  readonly emailTokens: EmailTokenStore;
  readonly mailOutbox: MailOutboxStore;
  readonly changes: ChangeFeed;
  readonly #client: PostgresClient;

  constructor(
    client: PostgresClient,
    clock: StoreClock,
    { url, sessionIdleTimeoutMs, redis, observer = NO_STORE_OBSERVER }: Pick<DatabaseSettings, 'url' | 'sessionIdleTimeoutMs' | 'redis' | 'observer'>,
  ) {
    this.#client = client;
    const stores: StoreClient = asStoreClient(client);
    this.changes = postgresChangeFeed(
      url,
      async (channel, text) => {
        await client.$executeRaw`SELECT pg_notify(${channel}, ${text})`;
      },
      redis,
    );
    // A change made by a single statement (a logout) travels in that statement's transaction.
    this.changes.useTransactions((work) => this.transaction(work));
    this.users = new UserStore(stores, clock, 'postgresql', this.changes, { observer });
    // No prepared-statement fast path: that one is SQLite's (better-sqlite3); the rotation goes through $queryRaw,
    // a login's look-up and insert through Prisma (the insert in a SERIALIZABLE transaction).
    this.sessions = new SessionStore(stores, clock, this.changes, {
      idleTimeoutMs: sessionIdleTimeoutMs,
      transaction: (work) => this.transaction(work),
      observer,
    });
    this.apiTokens = new ApiTokenStore(stores, clock, this.changes, { observer });
    this.emailTokens = new EmailTokenStore(stores, clock);
    this.mailOutbox = new MailOutboxStore(stores, clock);
  }

  /** Opens the pool to `settings.url` (does not migrate: applyMigrations does). */
  static async open(settings: DatabaseSettings, clock: StoreClock, options?: PostgresOptions): Promise<PostgresDatabase> {
    return new PostgresDatabase(await openPostgres(settings.url, options), clock, settings);
  }

  /** Runs `work` in one SERIALIZABLE transaction, again from the start after a serialization failure. */
  async transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await runInPrismaTransaction(
          (inside) => this.#client.$transaction((client) => inside(client as unknown as StoreTransactionClient), { isolationLevel: 'Serializable' }),
          work,
        );
      } catch (error) {
        if (attempt >= SERIALIZATION_ATTEMPTS || !isSerializationFailure(error)) throw error;
        // Exponential backoff with full jitter (up to 2, 4, … 128 ms), so that the transactions that
        // collided do not collide again in lockstep; a burst on one user's rows then drains in turns.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 2 ** attempt));
      }
    }
  }

  async isReachable(): Promise<boolean> {
    try {
      await this.#client.$queryRaw`SELECT 1`;
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Whether this pool can take writes now: reachable, not a hot standby (pg_is_in_recovery, e.g. after a
   * failover left the URL pointing at a replica) and not read-only by default. One read, no write: /health
   * is public and frequent.
   */
  async acceptsWrites(): Promise<boolean> {
    try {
      const [row] = await this.#client.$queryRaw<{ writable: boolean }[]>`
        SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off' AS "writable"`;
      return row?.writable === true;
    } catch {
      return false;
    }
  }

  /** The Prisma client underneath: for src/db/ itself and tests' raw reads (test/support/raw-db.ts). */
  static clientOf(db: Database): PostgresClient {
    if (!(db instanceof PostgresDatabase)) throw new TypeError('not a PostgreSQL database');
    return db.#client;
  }

  async close(): Promise<void> {
    await this.changes.close();
    await closePostgres(this.#client);
  }
}

/**
 * PostgreSQL aborted the transaction so that the committed ones stay serializable: 40001
 * (serialization_failure) or 40P01 (deadlock_detected). Prisma reports both as P2034 on a driver adapter,
 * but inside an interactive transaction the adapter's DriverAdapterError (cause.kind 'TransactionWriteConflict')
 * comes through as it is, so every form is recognized.
 */
export function isSerializationFailure(error: unknown): boolean {
  for (
    let current = error as { code?: unknown; kind?: unknown; cause?: unknown; meta?: unknown; message?: unknown } | undefined, depth = 0;
    current && depth < 5;
    depth++
  ) {
    if (current.code === 'P2034' || current.code === '40001' || current.code === '40P01') return true;
    // adapter-pg's DriverAdapterError carries { kind: 'TransactionWriteConflict' } as its cause for both codes.
    if (current.kind === 'TransactionWriteConflict') return true;
    const meta = current.meta as { driverAdapterError?: { cause?: { originalCode?: string; kind?: string } } } | undefined;
    const cause = meta?.driverAdapterError?.cause;
    if (cause?.originalCode === '40001' || cause?.originalCode === '40P01' || cause?.kind === 'TransactionWriteConflict') return true;
    if (
      typeof current.message === 'string' &&
      /could not serialize access|deadlock detected|TransactionWriteConflict|\b40001\b|\b40P01\b/.test(current.message)
    )
      return true;
    current = current.cause as typeof current;
  }
  return false;
}
