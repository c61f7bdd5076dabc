import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { applyMigrations, pendingMigrations, pendingPostgresMigrations } from '../../src/db/migrate.js';
import { dropPostgresDatabase, newDatabaseName, postgresUrl } from '../support/postgres.js';

// Migrations on PostgreSQL go through the real Prisma CLI and the schema-engine stand-in, as at start-up.

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const prismaCli = path.join(repoRoot, 'node_modules', 'prisma', 'build', 'index.js');

function prisma(args: string[], databaseUrl: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [prismaCli, ...args],
      // A loaded 2-core machine: the CLI and the wasm engine take a few seconds to start.
      { cwd: repoRoot, env: { ...process.env, DATABASE_URL: databaseUrl, CHECKPOINT_DISABLE: '1' }, timeout: 90_000, encoding: 'utf8' },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, output: stdout + stderr }),
    );
  });
}

async function appliedRows(url: string): Promise<{ id: string; migration_name: string; finished_at: Date }[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query('SELECT id, migration_name, finished_at FROM _prisma_migrations ORDER BY migration_name')).rows;
  } finally {
    await client.end();
  }
}

// Not from the template: this file tests exactly what makes a database migrated.
const name = newDatabaseName();
const url = postgresUrl(name);
afterAll(() => dropPostgresDatabase(name));

describe('PostgreSQL migrations', { timeout: 180_000 }, () => {
  it('two instances starting together on a database that does not exist yet both succeed; each migration is applied once', async () => {
    const all = await pendingPostgresMigrations(url);
    expect(all).toEqual([
      '20261124034447_init',
      '20261124130837_api_tokens_and_roles',
      '20261202031115_credentials_version',
      '20261202154830_email_tokens_and_outbox',
    ]);
    await Promise.all([applyMigrations(url), applyMigrations(url)]);
    expect(await pendingPostgresMigrations(url)).toEqual([]);
    expect((await appliedRows(url)).map((row) => row.migration_name)).toEqual(all);
  });

  it('migrate status then reports the database up to date, and migrate diff finds no drift from the PostgreSQL schema', async () => {
    const status = await prisma(['migrate', 'status'], url);
    expect(status.output).toContain('prisma/postgres/schema.prisma');
    expect(status.output).toContain('Database schema is up to date!');
    expect(status.code).toBe(0);
    const diff = await prisma(['migrate', 'diff', '--from-config-datasource', '--to-schema', 'prisma/postgres/schema.prisma', '--exit-code'], url);
    // --exit-code: 0 empty, 2 not empty.
    expect({ code: diff.code, output: diff.output }).toMatchObject({ code: 0 });
  });

  it('a second applyMigrations is a no-op: no CLI run, no new bookkeeping rows', async () => {
    const before = await appliedRows(url);
    // Any CLI run would now fail: the engine path must exist. So success proves the fast path answered.
    const engine = process.env.PRISMA_SCHEMA_ENGINE_BINARY;
    process.env.PRISMA_SCHEMA_ENGINE_BINARY = path.join(repoRoot, 'no-such-engine');
    try {
      await applyMigrations(url);
    } finally {
      if (engine === undefined) delete process.env.PRISMA_SCHEMA_ENGINE_BINARY;
      else process.env.PRISMA_SCHEMA_ENGINE_BINARY = engine;
    }
    expect(await appliedRows(url)).toEqual(before);
  });

  it('says clearly when the server is unreachable, without running the CLI', async () => {
    // Port 1: nothing listens there, so the connection is refused at once.
    await expect(applyMigrations('postgresql://postgres:secret@127.0.0.1:1/gatehouse')).rejects.toThrow(
      /^Database migration failed: PostgreSQL at 127\.0\.0\.1:1\/gatehouse is unreachable \(ECONNREFUSED\)/,
    );
    await expect(applyMigrations('postgresql://postgres:secret@127.0.0.1:1/gatehouse')).rejects.not.toThrow(/secret/);
  });

  it('the synchronous SQLite check refuses a PostgreSQL URL instead of answering "everything pending"', () => {
    expect(() => pendingMigrations(url)).toThrow(/pendingPostgresMigrations/);
  });
});
