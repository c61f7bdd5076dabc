import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/postgres/client.js';

// PostgreSQL through Prisma's driver adapter over node-postgres. The client is generated from
// prisma/postgres/schema.prisma (itself generated from the SQLite model, scripts/postgres-schema.ts):
// a generated client works only with its own provider. Not wired into the app yet: the stores in src/db
// will choose between this and openDatabase (client.ts) by DATABASE_URL.

export type PostgresDatabase = PrismaClient;
export type {
  User as PostgresUserRecord,
  Session as PostgresSessionRecord,
  ApiToken as PostgresApiTokenRecord,
} from './generated/postgres/client.js';

export interface PostgresOptions {
  /**
   * Connections per process. Default 10: Node runs our JavaScript on one thread, so more connections only
   * help while requests wait on round trips, and rotations are group-committed (one statement per batch),
   * so there are few writers at once. Keep instances × poolSize under the server's max_connections
   * (100 by default, a few reserved for superusers): 10 leaves room for 8 instances and an admin.
   */
  poolSize?: number;
  /**
   * statement_timeout, in ms. Default 10 s, the same bound as an interactive transaction's timeout on
   * SQLite (client.ts): a runaway query (a bad plan, a lock wait behind someone's manual transaction)
   * then fails with an error instead of holding a pooled connection, and with it a share of the pool,
   * indefinitely.
   */
  statementTimeoutMs?: number;
  /** Shown in pg_stat_activity and the server log (default `gatehouse`); see below. */
  applicationName?: string;
  /** Called when an idle pooled connection fails (server restart, network cut); default: ignored. */
  onIdleError?: (error: Error) => void;
}

export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<PostgresDatabase> {
  // Prisma's `?schema=` names the PostgreSQL schema; node-postgres does not know it, the adapter does.
  const schema = new URL(url).searchParams.get('schema') ?? undefined;
  const adapter = new PrismaPg(
    {
      connectionString: url,
      max: options.poolSize ?? 10,
      // Sent in the startup packet, so they cost no round trip per connection.
      statement_timeout: options.statementTimeoutMs ?? 10_000,
      // A transaction left open by a stalled process keeps its row locks (a session row blocks every
      // rotation of that session): end it after 30 s of silence.
      idle_in_transaction_session_timeout: 30_000,
      // Identifies our connections in pg_stat_activity, pg_locks and the server log, so an operator can
      // tell Gatehouse's load and locks from other applications' and terminate ours. A fallback: an
      // `application_name` in the URL or PGAPPNAME still wins, e.g. to name each instance.
      fallback_application_name: options.applicationName ?? 'gatehouse',
      // Waiting for a connection (server down, pool exhausted) fails after 5 s rather than hanging a request.
      connectionTimeoutMillis: 5_000,
    },
    {
      schema,
      // node-postgres emits 'error' on the pool when an idle connection dies; with no listener that event
      // would crash the process. The pool replaces the connection on next use.
      onPoolError: options.onIdleError ?? (() => {}),
      onConnectionError: options.onIdleError ?? (() => {}),
    },
  );
  const db = new PrismaClient({ adapter, transactionOptions: { maxWait: 5_000, timeout: 10_000 } });
  await db.$connect();
  return db;
}

/** Ends the pool: waits for the queries in flight, then closes every connection. */
export async function closePostgres(db: PostgresDatabase): Promise<void> {
  await db.$disconnect();
}
