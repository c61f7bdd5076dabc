import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { applyMigrations } from '../../src/db/migrate.js';

// PostgreSQL for tests: the server every machine and CI runs (issue 14), reached through a maintenance
// database we only connect to. Each run migrates one template database, once (the first test file that
// asks makes it, under an advisory lock, since files run in parallel workers); each test file then gets
// a copy (CREATE DATABASE … TEMPLATE, a file copy on the server: ~50 ms against ~3 s for a migrate deploy).
// Every database made here is named gatehouse_t_<run id>_…, and the run's teardown
// (postgres-global-setup.ts) drops them: nothing else on the server is touched.

/** Where to connect for CREATE/DROP DATABASE. */
export const POSTGRES_ADMIN_URL = process.env.POSTGRES_TEST_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';

const prefix = (runId: string) => `gatehouse_t_${runId}_`;
const templateName = (runId: string) => `${prefix(runId)}template`;
const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** The URL of database `name` on the admin URL's server. */
export function postgresUrl(name: string): string {
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return url.href;
}

/** Tells the teardown that this run made databases (postgres-global-setup.ts). */
export function runMarker(runId: string): string {
  return path.join(tmpdir(), `gatehouse-postgres-run-${runId}`);
}

async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 10_000, application_name: 'gatehouse-tests' });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`PostgreSQL tests need a server at ${POSTGRES_ADMIN_URL} (set POSTGRES_TEST_URL to use another): ${(error as Error).message}`);
  }
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** A new database name of this run (not created). */
export function newDatabaseName(): string {
  const runId = inject('postgresRunId');
  writeFileSync(runMarker(runId), '');
  return `${prefix(runId)}${randomBytes(6).toString('hex')}`;
}

/** Creates this run's migrated template unless another test file already has. */
async function ensureTemplate(): Promise<string> {
  const runId = inject('postgresRunId');
  const name = templateName(runId);
  writeFileSync(runMarker(runId), '');
  await withAdmin(async (admin) => {
    // Session-level lock, held across the migrate deploy; released when this connection ends at the latest.
    await admin.query('SELECT pg_advisory_lock(hashtext($1))', [name]);
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount) return;
    await admin.query(`CREATE DATABASE ${quote(name)}`);
    try {
      await applyMigrations(postgresUrl(name));
    } catch (error) {
      await admin.query(`DROP DATABASE IF EXISTS ${quote(name)} WITH (FORCE)`);
      throw error;
    }
  });
  return name;
}

/** A migrated database of its own for the caller, and how to drop it. */
export async function createPostgresDatabase(): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const template = await ensureTemplate();
  const name = newDatabaseName();
  await withAdmin(async (admin) => {
    // Fails if someone is connected to the template; the migrate deploy's connections are gone by now, and
    // PostgreSQL waits up to 5 s for backends that are still exiting.
    await admin.query(`CREATE DATABASE ${quote(name)} TEMPLATE ${quote(template)}`);
  });
  return { name, url: postgresUrl(name), drop: () => dropPostgresDatabase(name) };
}

/** Drops one of this run's databases, ending whatever connections a failed test left open. */
export async function dropPostgresDatabase(name: string): Promise<void> {
  if (!name.startsWith(prefix(inject('postgresRunId')))) throw new Error(`refusing to drop ${name}: not made by this test run`);
  await withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS ${quote(name)} WITH (FORCE)`));
}

/** For a test file: a fresh migrated database created before its tests and dropped after them. */
export function usePostgresDatabase(): { readonly url: string } {
  let database: Awaited<ReturnType<typeof createPostgresDatabase>> | undefined;
  beforeAll(async () => {
    database = await createPostgresDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });
  return {
    get url() {
      if (!database) throw new Error('usePostgresDatabase: the database exists only inside tests (after beforeAll)');
      return database.url;
    },
  };
}

/** Teardown: every database of the run (copies first, the template last). */
export async function dropRunDatabases(runId: string): Promise<void> {
  await withAdmin(async (admin) => {
    const { rows } = await admin.query<{ name: string }>(
      'SELECT datname AS name FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname = $2, datname',
      [prefix(runId), templateName(runId)],
    );
    for (const { name } of rows) await admin.query(`DROP DATABASE IF EXISTS ${quote(name)} WITH (FORCE)`);
  });
}
