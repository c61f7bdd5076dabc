import type { RedisSettings } from '../redis.js';
import { type ChangeFeed, sqliteChangeFeed } from './change-feed/index.js';
import type { StoreClock } from './clock.js';
import { isDatabaseReachable, openDatabase, preparedStatementsOf, type SqliteClient } from './client.js';
import { ApiTokenStore } from './stores/api-tokens.js';
import { EmailTokenStore } from './stores/email-tokens.js';
import { MailOutboxStore } from './stores/mail-outbox.js';
import { SessionStore } from './stores/sessions.js';
import { UserStore } from './stores/users.js';
import { runInPrismaTransaction, type Transaction } from './transaction.js';
import { isPostgresUrl } from './migrate.js';
import { NO_STORE_OBSERVER, type StoreObserver } from './observer.js';
import { PostgresDatabase } from './postgres-database.js';
import type { Engine } from './store-client.js';

export interface DatabaseSettings {
  readonly url: string;
  readonly sqliteSynchronous?: 'FULL' | 'NORMAL';
  /** A session unused for this long can no longer be rotated, listed or kept (SessionStore). */
  readonly sessionIdleTimeoutMs: number;
  /** With PostgreSQL, changes also travel through Redis pub/sub (change-feed/). */
  readonly redis?: RedisSettings;
  /** Told about cache lookups and rotation batches (metrics); nothing by default. */
  readonly observer?: StoreObserver;
}

/**
 * The data layer as the auth services see it: one store per kind of row, and transactions. Nothing
 * above src/db/ sees Prisma or SQL. Each engine provides one (SqliteDatabase, PostgresDatabase);
 * test/db/store-contract.ts is the behaviour every engine must show. See stores/README.md for the pattern new stores follow.
 */
export interface Database {
  /** Which engine holds the data (for /health and engine-specific checks; never for rules). */
  readonly engine: Engine;
  readonly users: UserStore;
  readonly sessions: SessionStore;
  readonly apiTokens: ApiTokenStore;
  readonly emailTokens: EmailTokenStore;
  readonly mailOutbox: MailOutboxStore;
  /**
   * Carries changes between processes and decides whether the stores' caches may be used. A server calls
   * `changes.listen()`; until it does (the admin CLI never does) every read goes to the database.
   */
  readonly changes: ChangeFeed;
  /**
   * Runs `work` in one transaction: all of it commits, or none of it. The rules in src/auth rely on
   * transactions behaving as if run one at a time (a check and the change it guards cannot be split by
   * another commit): SQLite runs them one at a time (serialized-adapter.ts); PostgreSQL runs them
   * SERIALIZABLE and runs `work` again when PostgreSQL aborts it, so whatever `work` does outside the
   * database must be safe to do twice (the stores only mark cached entries ended or drop them).
   */
  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T>;
  /** Whether a trivial statement answers. */
  isReachable(): Promise<boolean>;
  /** Finishes what is running (and makes it durable) and closes the connection. */
  close(): Promise<void>;
}

export { PostgresDatabase } from './postgres-database.js';

/**
 * The one place that picks the engine: PostgreSQL for postgres:// and postgresql:// URLs, SQLite for the
 * rest (file: URLs; config.ts refuses anything else). Opens, does not migrate (applyMigrations does).
 */
export function openDatabaseAt(settings: DatabaseSettings, clock: StoreClock): Promise<Database> {
  return isPostgresUrl(settings.url) ? PostgresDatabase.open(settings, clock) : SqliteDatabase.open(settings, clock);
}

/** SQLite through Prisma's better-sqlite3 adapter: one connection, a transaction gate, off-loop fsync. */
export class SqliteDatabase implements Database {
  readonly engine = 'sqlite' as const;
  readonly users: UserStore;
  readonly sessions: SessionStore;
  readonly apiTokens: ApiTokenStore;
  readonly emailTokens: EmailTokenStore;
  readonly mailOutbox: MailOutboxStore;
  readonly changes: ChangeFeed;
  readonly #client: SqliteClient;

  /** Builds the stores over an open client (openDatabase); the stores' caches live on `clock`'s monotonic time. */
  constructor(
    client: SqliteClient,
    clock: StoreClock,
    { sessionIdleTimeoutMs, observer = NO_STORE_OBSERVER }: Pick<DatabaseSettings, 'sessionIdleTimeoutMs' | 'observer'>,
  ) {
    this.#client = client;
    this.changes = sqliteChangeFeed(async () => {
      const [row] = await client.$queryRawUnsafe<{ data_version: number | bigint }[]>('PRAGMA data_version');
      return Number(row?.data_version);
    });
    const prepared = preparedStatementsOf(client);
    this.users = new UserStore(client, clock, 'sqlite', this.changes, { prepared, observer });
    this.sessions = new SessionStore(client, clock, this.changes, {
      idleTimeoutMs: sessionIdleTimeoutMs,
      transaction: (work) => this.transaction(work),
      prepared,
      observer,
    });
    this.apiTokens = new ApiTokenStore(client, clock, this.changes, { observer });
    this.emailTokens = new EmailTokenStore(client, clock);
    this.mailOutbox = new MailOutboxStore(client, clock);
  }

  /** Opens (but does not migrate) the database at `settings.url`. */
  static async open(settings: DatabaseSettings, clock: StoreClock): Promise<SqliteDatabase> {
    return new SqliteDatabase(await openDatabase(settings.url, settings.sqliteSynchronous), clock, settings);
  }

  /** Runs `work` in one transaction; transactions run one at a time (serialized-adapter.ts). */
  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    return runInPrismaTransaction((inside) => this.#client.$transaction(inside), work);
  }

  /** Whether a trivial statement answers. */
  isReachable(): Promise<boolean> {
    return isDatabaseReachable(this.#client);
  }

  /**
   * The Prisma client underneath, for src/db/ itself (migrations) and for tests'
   * raw reads (test/support/raw-db.ts). Never for src/auth/: queries belong in a store.
   */
  static clientOf(db: Database): SqliteClient {
    if (!(db instanceof SqliteDatabase)) throw new TypeError('not a SQLite database');
    return db.#client;
  }

  /** Finishes what is running (and its fsyncs) and closes the connection. */
  async close(): Promise<void> {
    await this.changes.close();
    await this.#client.$disconnect();
  }
}

export type { Transaction } from './transaction.js';
export type { Engine } from './store-client.js';
export type { ApiTokenRecord, EmailTokenPurpose, EmailTokenRecord, MailKind, OutboxMailRecord, UserRole, SessionRecord, UserRecord } from './records.js';
