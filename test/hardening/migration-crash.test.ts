import { execFile, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { applyMigrations, pendingMigrations } from '../../src/db/migrate.js';
import { startServer } from '../support/server-process.js';

// A migration that fails or is killed halfway must not leave a database that no later start accepts
// (Prisma's P3009 "found failed migrations"): the next start applies it again, or says exactly what to do.

const root = path.resolve(import.meta.dirname, '../..');
const projectMigrations = path.join(root, 'prisma', 'migrations');
const PROJECT_MIGRATIONS = readdirSync(projectMigrations)
  .filter((name) => !name.endsWith('.toml'))
  .sort();
const [INIT, SECOND] = PROJECT_MIGRATIONS as [string, string];

function scratch(prefix: string) {
  return mkdtempSync(path.join(tmpdir(), `gatehouse-${prefix}-`));
}

/** prisma/migrations plus one migration of the test's own. */
function migrationsWith(name: string, sql: string): string {
  const dir = path.join(scratch('migrations'), 'migrations');
  cpSync(projectMigrations, dir, { recursive: true });
  mkdirSync(path.join(dir, name));
  writeFileSync(path.join(dir, name, 'migration.sql'), sql);
  return dir;
}

function inspect(file: string) {
  const db = new Database(file, { readonly: true });
  try {
    return {
      tables: (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name),
      migrations: db.prepare('SELECT migration_name AS name, finished_at IS NOT NULL AS finished FROM _prisma_migrations ORDER BY migration_name').all(),
    };
  } finally {
    db.close();
  }
}

function run(command: string[], env: Record<string, string>): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      command[0]!,
      command.slice(1),
      { cwd: root, env: { ...process.env, CHECKPOINT_DISABLE: '1', ...env }, encoding: 'utf8', timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
    );
  });
}

describe('a migration that fails or is killed halfway', { timeout: 120_000 }, () => {
  it('fails as a whole: nothing of it stays, and once fixed the next start applies it', async () => {
    const file = path.join(scratch('migrate-fail'), 'gatehouse.db');
    const migrations = migrationsWith('20990101000000_broken', 'CREATE TABLE "Extra" ("id" TEXT NOT NULL PRIMARY KEY);\nINSERT INTO "Missing" VALUES (1);\n');

    await expect(applyMigrations(`file:${file}`, migrations)).rejects.toThrow(
      /migration 20990101000000_broken failed and was rolled back: the database is unchanged by it.*no such table: Missing/s,
    );
    // The migrations before it are in; nothing of it is, not even a "failed" row.
    expect(inspect(file).tables).not.toContain('Extra');
    expect(inspect(file).migrations).toEqual(PROJECT_MIGRATIONS.map((name) => ({ name, finished: 1 })));

    writeFileSync(path.join(migrations, '20990101000000_broken', 'migration.sql'), 'CREATE TABLE "Extra" ("id" TEXT NOT NULL PRIMARY KEY);\n');
    await applyMigrations(`file:${file}`, migrations);
    expect(inspect(file).tables).toContain('Extra');
    expect(pendingMigrations(`file:${file}`, migrations)).toEqual([]);
  });

  it('killed in the middle of a migration, the next start applies it once, from scratch', async () => {
    const file = path.join(scratch('migrate-kill'), 'gatehouse.db');
    const migrations = migrationsWith(
      '20990101000000_slow',
      'CREATE TABLE "Big" ("n" INTEGER NOT NULL);\n' +
        'WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3000000) INSERT INTO "Big" SELECT n FROM c;\n',
    );
    await applyMigrations(`file:${file}`, projectMigrations);
    const script = `import { applyMigrations } from './src/db/migrate.ts'; await applyMigrations(${JSON.stringify(`file:${file}`)}, ${JSON.stringify(migrations)});`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
    // Killed once the migration's transaction has spilled pages into the WAL: well inside it.
    const walSize = () => {
      try {
        return statSync(`${file}-wal`).size;
      } catch {
        return 0;
      }
    };
    for (let i = 0; i < 3000 && walSize() < 4 * 1024 * 1024; i++) await sleep(10);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    expect(inspect(file).tables).not.toContain('Big');
    expect(pendingMigrations(`file:${file}`, migrations)).toEqual(['20990101000000_slow']);
    await applyMigrations(`file:${file}`, migrations);
    const db = new Database(file, { readonly: true });
    expect(db.prepare('SELECT count(*) AS n FROM "Big"').get()).toEqual({ n: 3000000 });
    db.close();
  });

  it('writes the rows Prisma writes: prisma migrate status agrees the database is up to date', async () => {
    const file = path.join(scratch('migrate-status'), 'gatehouse.db');
    await applyMigrations(`file:${file}`);
    const status = await run([process.execPath, path.join(root, 'node_modules', 'prisma', 'build', 'index.js'), 'migrate', 'status'], {
      DATABASE_URL: `file:${file}`,
    });
    expect(status.output).toMatch(/Database schema is up to date!/);
    expect(status.code).toBe(0);
  });

  it('left half-applied by prisma migrate deploy, the server says exactly what to do, and that works', async () => {
    const dataDir = scratch('migrate-legacy');
    const file = path.join(dataDir, 'gatehouse.db');
    // What `prisma migrate deploy` leaves when killed during the second migration: its first statement
    // applied, its row without finished_at.
    const onlyInit = path.join(scratch('migrations-init'), 'migrations');
    cpSync(path.join(projectMigrations, INIT), path.join(onlyInit, INIT), { recursive: true });
    await applyMigrations(`file:${file}`, onlyInit);
    const db = new Database(file);
    db.exec('CREATE TABLE "ApiToken" ("id" TEXT NOT NULL PRIMARY KEY)');
    db.prepare("INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at) VALUES ('x', 'y', ?, '2026-01-01T00:00:00.000+00:00')").run(SECOND);
    db.close();

    const refused = await startServer({}, dataDir).then(
      () => 'started',
      (error: Error) => error.message,
    );
    expect(refused).toMatch(new RegExp(`Database migration ${SECOND} was started at .* and never finished`));
    const resolveCommand = new RegExp(`DATABASE_URL=(file:\\S+) npx prisma migrate resolve --rolled-back ${SECOND}`).exec(refused);
    expect(resolveCommand?.[1]).toBe(`file:${file}`);

    // The operator's steps: undo the partial change, mark it rolled back (the printed command), start.
    const repair = new Database(file);
    repair.exec('DROP TABLE "ApiToken"');
    repair.close();
    const resolved = await run(['npx', 'prisma', 'migrate', 'resolve', '--rolled-back', SECOND], { DATABASE_URL: resolveCommand![1]! });
    expect(resolved.code, resolved.output).toBe(0);
    const server = await startServer({}, dataDir);
    expect((await fetch(`${server.base}/live`)).status).toBe(200);
    expect(inspect(file).tables).toContain('ApiToken');
    await server.stop();
  });
});
