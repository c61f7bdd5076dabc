import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
// The project's own pinned CLI: npx could pick another version, and a shell would need quoting.
const prismaCli = createRequire(path.join(repoRoot, 'package.json')).resolve('prisma/build/index.js');

const TIMEOUT_MS = 120_000;
const DONE = /No pending migrations to apply\.|All migrations have been successfully applied\./;

/**
 * Applies pending migrations from prisma/migrations with `prisma migrate deploy` (creating the SQLite file
 * if needed). Silent on success; throws with the CLI's output otherwise.
 */
export async function applyMigrations(databaseUrl: string): Promise<void> {
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
        reject(new Error(`Database migration failed: prisma migrate deploy ${how}.\n${output || error?.message || ''}`));
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
