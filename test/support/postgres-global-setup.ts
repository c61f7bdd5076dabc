import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { dropRunDatabases, runMarker } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Names this run's PostgreSQL databases (template and per-file copies, postgres.ts), so the teardown
     *  drops exactly those and runs on the same server never meet. */
    postgresRunId: string;
  }
}

/** Costs nothing when no test uses PostgreSQL: the template is made by the first test file that needs one,
 *  which leaves a marker; only then does the teardown connect, and it drops only this run's databases. */
export default function setup(project: TestProject): () => Promise<void> {
  const runId = randomBytes(4).toString('hex');
  project.provide('postgresRunId', runId);
  return async () => {
    if (!existsSync(runMarker(runId))) return;
    await dropRunDatabases(runId);
    rmSync(runMarker(runId), { force: true });
  };
}
