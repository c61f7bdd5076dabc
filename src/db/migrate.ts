import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
// The project's own pinned CLI: npx could pick another version, and a shell would need quoting.
const prismaCli = createRequire(path.join(repoRoot, 'package.json')).resolve('prisma/build/index.js');

const TIMEOUT_MS = 120_000;
const DONE = /No pending migrations to apply\.|All migrations have been successfully applied\./;

const migrationsDir = path.join(repoRoot, 'prisma', 'migrations');

/**
 * Names of the migrations in prisma/migrations that the database has not applied yet. Read straight
 * from Prisma's own bookkeeping table, so an up-to-date database (every start but the first after an
 * upgrade) costs a millisecond instead of a CLI run, and never contends with a running server.
 */
export function pendingMigrations(databaseUrl: string): string[] {
  const available = readdirSync(migrationsDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name);
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
 * Applies pending migrations from prisma/migrations with `prisma migrate deploy` (creating the SQLite file
 * if needed). Silent on success; throws with the CLI's output otherwise.
 */
export async function applyMigrations(databaseUrl: string): Promise<void> {
  if (pendingMigrations(databaseUrl).length === 0) return;
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
        const hint = /SocketTimeout|database is locked|SQLITE_BUSY/.test(output)
          ? `\nThe database ${absoluteSqliteUrl(databaseUrl)} is busy: another process is writing to it. Stop it and start again.`
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
