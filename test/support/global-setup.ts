import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { applyMigrations } from '../../src/db/migrate.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A SQLite file migrated once per run; tests copy it (db.ts) instead of migrating again. Its folder,
     *  copies included, is removed after the run. */
    templateDbPath: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-template-'));
  const templateDbPath = path.join(dir, 'template.db');
  try {
    await applyMigrations(`file:${templateDbPath}`);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  project.provide('templateDbPath', templateDbPath);
  return () => rm(dir, { recursive: true, force: true });
}
