import { randomUUID } from 'node:crypto';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { inject } from 'vitest';

/** A database of its own for the caller, already migrated: a copy of the run's template (global-setup.ts).
 *  It sits beside the template, so the global teardown removes it with the rest. */
export async function freshDatabaseUrl(): Promise<string> {
  const template = inject('templateDbPath');
  const file = path.join(path.dirname(template), `${randomUUID()}.db`);
  await copyFile(template, file);
  return `file:${file}`;
}

/**
 * Which engine the flow tests run on: TEST_DATABASE=postgres (npm run test:postgres) gives each app its
 * own migrated PostgreSQL database (test/support/postgres.ts); anything else, SQLite.
 */
export const testEngine: 'sqlite' | 'postgres' = process.env.TEST_DATABASE === 'postgres' ? 'postgres' : 'sqlite';
export const onPostgres = testEngine === 'postgres';

/** A fresh migrated database on the test engine, and how to drop it (nothing to do for SQLite copies). */
export async function freshTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  if (!onPostgres) return { url: await freshDatabaseUrl(), drop: async () => {} };
  const { createPostgresDatabase } = await import('./postgres.js');
  return createPostgresDatabase();
}
