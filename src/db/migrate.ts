import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { retryWhileBusy } from './busy.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
// The project's own pinned CLI: npx could pick another version, and a shell would need quoting.
const prismaCli = createRequire(path.join(repoRoot, 'package.json')).resolve('prisma/build/index.js');

const TIMEOUT_MS = 120_000;
const DONE = /No pending migrations to apply\.|All migrations have been successfully applied\./;

const projectMigrations = path.join(repoRoot, 'prisma', 'migrations');
/** PostgreSQL's own migrations (prisma.config.ts selects them for postgres URLs). */
export const postgresMigrations = path.join(repoRoot, 'prisma', 'postgres', 'migrations');

/** `postgres://` or `postgresql://` (what Prisma and node-postgres accept); everything else is SQLite. */
export function isPostgresUrl(databaseUrl: string): boolean {
  return /^postgres(ql)?:\/\//i.test(databaseUrl);
}

/**
 * Names of the migrations in prisma/migrations that the database has not applied yet. Read straight
 * from Prisma's own bookkeeping table, so an up-to-date database (every start but the first after an
 * upgrade) costs a millisecond instead of a CLI run, and never contends with a running server.
 */
export function pendingMigrations(databaseUrl: string, migrationsDir = projectMigrations): string[] {
  // Synchronous because SQLite is; it would read a postgres URL as a file name and answer "everything".
  if (isPostgresUrl(databaseUrl)) throw new TypeError('pendingMigrations reads SQLite files; use pendingPostgresMigrations for PostgreSQL');
  const available = migrationNames(migrationsDir);
  const file = absoluteSqliteUrl(databaseUrl).slice('file:'.length);
  if (!existsSync(file)) return available;
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_prisma_migrations'").get();
    if (!hasTable) return available;
    const applied = new Set(
      db
        .prepare('SELECT migration_name AS name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL')
        .all()
        .map((row) => (row as { name: string }).name),
    );
    return available.filter((name) => !applied.has(name));
  } finally {
    db.close();
  }
}

/**
 * Applies the pending migrations in `migrationsDir` (prisma/migrations), creating the SQLite file if
 * needed. Silent on success; throws a message that says what to do otherwise.
 *
 * On SQLite each migration runs in one transaction together with its row in Prisma's `_prisma_migrations`
 * table, so a crash or a failing statement leaves the database exactly as before that migration, and the
 * next start simply applies it again. `prisma migrate deploy` runs a migration's statements one by one
 * outside a transaction: a crash halfway leaves half a migration and a row that makes every later deploy
 * stop with P3009 until someone repairs it by hand. The rows written here are the ones Prisma writes
 * (same checksum, timestamps and counts), so `prisma migrate status` and later deploys agree with them.
 * PostgreSQL goes through `prisma migrate deploy` (applyPostgresMigrations); other databases through the CLI too.
 */
export async function applyMigrations(databaseUrl: string, migrationsDir?: string): Promise<void> {
  if (isPostgresUrl(databaseUrl)) return applyPostgresMigrations(databaseUrl, migrationsDir ?? postgresMigrations);
  migrationsDir ??= projectMigrations;
  if (pendingMigrations(databaseUrl, migrationsDir).length === 0) return;
  if (!databaseUrl.startsWith('file:')) return deployWithCli(databaseUrl);
  const file = absoluteSqliteUrl(databaseUrl).slice('file:'.length);
  mkdirSync(path.dirname(file), { recursive: true });
  // Busy timeout 0: a lock held by another process is waited for off the event loop (busy.ts).
  const db = new Database(file, { timeout: 0 });
  try {
    await retryWhileBusy(async () => db.pragma('journal_mode = WAL'), LOCK_WAIT_MS);
    // Prisma's table redefinitions switch foreign keys off around DROP TABLE (or it would cascade-delete
    // the rows that point at the table); inside a transaction that pragma is ignored, so it is set here,
    // before BEGIN, and the keys are checked before COMMIT instead.
    db.pragma('foreign_keys = OFF');
    await inWriteTransaction(db, () => db.exec(MIGRATIONS_TABLE));
    refuseUnfinished(db, file);
    for (const name of migrationNames(migrationsDir)) {
      const sql = readFileSync(path.join(migrationsDir, name, 'migration.sql'), 'utf8');
      try {
        await inWriteTransaction(db, () => applyOne(db, name, sql));
      } catch (error) {
        throw new Error(
          `Database migration ${name} failed and was rolled back: the database is unchanged by it, and the next ` +
            `start applies it again. Cause: ${(error as Error).message}`,
        );
      }
    }
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith('SQLITE_BUSY') || /locked by another process/.test((error as Error).message)) {
      throw new Error(`Database migration failed: the database ${file} is busy (another process is writing to it). Stop it and start again.`);
    }
    throw error;
  } finally {
    db.pragma('foreign_keys = ON');
    db.close();
  }
}

const LOCK_WAIT_MS = 15_000;

/** What the schema engine creates on SQLite (copied from a database it migrated). */
const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    TEXT PRIMARY KEY NOT NULL,
    "checksum"              TEXT NOT NULL,
    "finished_at"           DATETIME,
    "migration_name"        TEXT NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        DATETIME,
    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0
)`;

function migrationNames(migrationsDir: string): string[] {
  return readdirSync(migrationsDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}

/** BEGIN IMMEDIATE (the write lock up front, waited for off the loop), `work`, COMMIT; ROLLBACK on any error. */
async function inWriteTransaction(db: Database.Database, work: () => void): Promise<void> {
  await retryWhileBusy(async () => db.exec('BEGIN IMMEDIATE'), LOCK_WAIT_MS);
  try {
    work();
    db.exec('COMMIT');
  } catch (error) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw error;
  }
}

/** One migration and its bookkeeping row; checked again under the lock (another process may have applied it). */
function applyOne(db: Database.Database, name: string, sql: string): void {
  const done = db.prepare('SELECT 1 FROM _prisma_migrations WHERE migration_name = ? AND finished_at IS NOT NULL AND rolled_back_at IS NULL').get(name);
  if (done) return;
  const startedAt = prismaTimestamp();
  db.exec(sql);
  const violations = db.pragma('foreign_key_check') as unknown[];
  if (violations.length > 0) throw new Error(`it leaves ${violations.length} row(s) violating foreign keys (PRAGMA foreign_key_check)`);
  db.prepare(
    'INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count) VALUES (?, ?, ?, ?, NULL, NULL, ?, 1)',
  ).run(randomUUID(), createHash('sha256').update(sql).digest('hex'), prismaTimestamp(), name, startedAt);
}

/** As the schema engine writes them: 2026-12-02T03:10:51.991+00:00. */
function prismaTimestamp(): string {
  return new Date().toISOString().replace('Z', '+00:00');
}

/**
 * A row without finished_at, not rolled back: a migration that `prisma migrate deploy` (not this code)
 * began and never finished. Its statements ran outside a transaction, so part of it may be in the file;
 * which part, only a person can tell. Say exactly what to do.
 */
function refuseUnfinished(db: Database.Database, file: string): void {
  const failed = db
    .prepare(
      'SELECT migration_name AS name, started_at AS startedAt FROM _prisma_migrations WHERE finished_at IS NULL AND rolled_back_at IS NULL ORDER BY started_at',
    )
    .all() as { name: string; startedAt: string }[];
  if (failed.length === 0) return;
  const { name, startedAt } = failed[0]!;
  throw new Error(
    [
      `Database migration ${name} was started at ${startedAt} by \`prisma migrate deploy\` and never finished, so some of its`,
      `changes may be in ${file}. Gatehouse will not start on a half-migrated database. To recover:`,
      `  1. Stop every Gatehouse process using this file and copy it (with its -wal file) somewhere safe.`,
      `  2. Either restore the backup taken before the upgrade, or undo what part of prisma/migrations/${name}/migration.sql`,
      `     was applied (compare with: sqlite3 ${file} .schema).`,
      `  3. Mark the migration rolled back:`,
      `       DATABASE_URL=file:${file} npx prisma migrate resolve --rolled-back ${name}`,
      `  4. Start Gatehouse again: it applies the migration again, in one transaction.`,
    ].join('\n'),
  );
}

/**
 * PostgreSQL: `prisma migrate deploy` (through the stand-in), which takes Prisma's advisory lock so that
 * instances starting together apply each migration once. Before it, one query on Prisma's bookkeeping
 * table: an up-to-date database (every start but the first after an upgrade) skips the CLI, a process of
 * its own. After it, the same query proves the migrations are applied, whatever the CLI printed.
 */
async function applyPostgresMigrations(databaseUrl: string, migrationsDir: string): Promise<void> {
  // The CLI reads the folder from prisma.config.ts, not from us: another folder cannot be honoured.
  if (path.resolve(migrationsDir) !== postgresMigrations) {
    throw new Error(`PostgreSQL migrations are applied from ${postgresMigrations} (prisma.config.ts); got ${migrationsDir}`);
  }
  if ((await pendingPostgresMigrations(databaseUrl, migrationsDir)).length === 0) return;
  await createPostgresDatabase(databaseUrl);
  await deployWithCli(databaseUrl);
  const left = await pendingPostgresMigrations(databaseUrl, migrationsDir);
  if (left.length > 0) {
    throw new Error(`Database migration failed: prisma migrate deploy reported success, but ${describePostgres(databaseUrl)} still lacks ${left.join(', ')}.`);
  }
}

/**
 * Names of the migrations in prisma/postgres/migrations that the database has not finished applying.
 * A missing database, schema or `_prisma_migrations` table means all of them (migrate deploy creates
 * what is missing). An unreachable server, or one that refuses us, is an error that says so.
 */
export async function pendingPostgresMigrations(databaseUrl: string, migrationsDir = postgresMigrations): Promise<string[]> {
  const available = migrationNames(migrationsDir);
  // Loaded here so that a SQLite start never loads node-postgres.
  const { default: pg } = await import('pg');
  // Prisma's `?schema=` picks the PostgreSQL schema; node-postgres does not know it.
  const schema = new URL(databaseUrl).searchParams.get('schema') ?? 'public';
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 10_000, application_name: 'gatehouse-migrate' });
  // A connection that dies after connecting emits 'error'; without a listener that would crash the process.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    if ((error as { code?: string }).code === '3D000') return available; // database does not exist yet
    throw postgresConnectError(databaseUrl, error as Error & { code?: string });
  }
  try {
    const { rows } = await client.query<{ name: string }>(
      `SELECT migration_name AS name FROM "${schema.replaceAll('"', '""')}"."_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
    );
    const applied = new Set(rows.map((row) => row.name));
    return available.filter((name) => !applied.has(name));
  } catch (error) {
    // undefined_table, invalid_schema_name: nothing applied yet.
    if (['42P01', '3F000'].includes((error as { code?: string }).code ?? '')) return available;
    throw error;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Creates the database if it does not exist. The CLI would too, but two instances starting together on a
 * new database would both try, and the second fail; here "already exists" is success. Like the CLI, it
 * connects to the `postgres` maintenance database and needs the CREATEDB privilege.
 */
async function createPostgresDatabase(databaseUrl: string): Promise<void> {
  const { default: pg } = await import('pg');
  const name = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  const probe = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 10_000, application_name: 'gatehouse-migrate' });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return;
  } catch (error) {
    if ((error as { code?: string }).code !== '3D000') throw postgresConnectError(databaseUrl, error as Error & { code?: string });
  } finally {
    await probe.end().catch(() => {});
  }
  const maintenance = new URL(databaseUrl);
  maintenance.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: maintenance.href, connectionTimeoutMillis: 10_000, application_name: 'gatehouse-migrate' });
  admin.on('error', () => {});
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
  } catch (error) {
    // duplicate_database, or the catalog's unique index when two CREATEs race: someone else made it.
    if (!['42P04', '23505'].includes((error as { code?: string }).code ?? '')) {
      throw new Error(`Database migration failed: ${describePostgres(databaseUrl)} does not exist and could not be created: ${(error as Error).message}`, {
        cause: error,
      });
    }
  } finally {
    await admin.end().catch(() => {});
  }
}

/** host:port/database, without the password a URL may carry. */
function describePostgres(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  return `PostgreSQL at ${url.hostname}:${url.port || '5432'}${url.pathname}`;
}

function postgresConnectError(databaseUrl: string, error: Error & { code?: string }): Error {
  const unreachable =
    ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ECONNRESET'].includes(error.code ?? '') || /timeout/i.test(error.message);
  const what = unreachable
    ? `${describePostgres(databaseUrl)} is unreachable (${error.code ?? error.message}). Start the server, or correct the host and port in DATABASE_URL.`
    : `${describePostgres(databaseUrl)} refused the connection: ${error.message}${error.code ? ` (${error.code})` : ''}. Check the user, password and database in DATABASE_URL.`;
  return new Error(`Database migration failed: ${what}`, { cause: error });
}

/** Any other database: `prisma migrate deploy` through the project's CLI. */
async function deployWithCli(databaseUrl: string): Promise<void> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: absoluteSqliteUrl(databaseUrl),
    // No update check: it would try the network on every start.
    CHECKPOINT_DISABLE: '1',
    PRISMA_HIDE_UPDATE_MESSAGE: '1',
  };
  await new Promise<void>((resolve, reject) => {
    execFile(
      process.execPath,
      [prismaCli, 'migrate', 'deploy'],
      // cwd: the CLI finds prisma.config.ts (and through it the schema engine stand-in) there.
      { cwd: repoRoot, env, timeout: TIMEOUT_MS, maxBuffer: 10 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        // A schema engine that dies without answering leaves the CLI with nothing to wait for: it exits 0
        // having done nothing. Only its closing line proves the migrations were checked.
        if (!error && DONE.test(stdout)) return resolve();
        const how = !error
          ? 'did not report success'
          : error.killed
            ? `was stopped after ${TIMEOUT_MS / 1000} s`
            : `exited with code ${error.code ?? error.signal}`;
        const output = [stderr.trim(), stdout.trim()].filter(Boolean).join('\n');
        // The engine reports a locked SQLite file as an obscure connector timeout.
        const hint =
          /SocketTimeout|database is locked|SQLITE_BUSY/.test(output) && databaseUrl.startsWith('file:')
            ? `\nThe database ${absoluteSqliteUrl(databaseUrl)} is busy: another process is writing to it. Stop it and start again.`
            : /P1001|Can't reach database server|ECONNREFUSED/.test(output) && isPostgresUrl(databaseUrl)
              ? `\n${describePostgres(databaseUrl)} is unreachable. Start the server, or correct the host and port in DATABASE_URL.`
              : '';
        reject(new Error(`Database migration failed: prisma migrate deploy ${how}.${hint}\n${output || error?.message || ''}`));
      },
    );
  });
}

/** The CLI runs in the repo root, but a relative SQLite path means the caller's working directory
 *  (that is where openDatabase opens it). */
function absoluteSqliteUrl(databaseUrl: string): string {
  if (!databaseUrl.startsWith('file:')) return databaseUrl;
  const file = databaseUrl.slice('file:'.length);
  return path.isAbsolute(file) ? databaseUrl : `file:${path.resolve(file)}`;
}
