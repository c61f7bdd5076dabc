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
