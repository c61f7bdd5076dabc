import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { afterAll, expect } from 'vitest';
import type { TestApp } from '../support/app.js';
import { readTable } from '../support/accounts.js';

// Shared by the adversarial suite: raw HTTP, database snapshots and the "nothing leaked" checks every
// answer must pass. The real server as a child process is test/support/server-process.ts.

export interface HttpAnswer<T = any> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

/** One GraphQL operation over real HTTP. */
export async function httpGql<T = any>(
  base: string,
  query: string,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<HttpAnswer<T>> {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, ...((await response.json()) as object) };
}

export const TABLES = ['User', 'Session', 'ApiToken'] as const;

/** Row counts and a SHA-256 over every row of every table, read the way an operator would read the file. */
/** The same, through readTable: from the SQLite file, or on PostgreSQL through the raw client. */
export async function snapshotOf(app: TestApp): Promise<{ counts: Record<string, number>; checksum: string }> {
  const hash = createHash('sha256');
  const counts: Record<string, number> = {};
  for (const table of TABLES) {
    const rows = await readTable(app, `SELECT * FROM "${table}" ORDER BY id`);
    counts[table] = rows.length;
    hash.update(`${table}:${JSON.stringify(rows)}\n`);
  }
  return { counts, checksum: hash.digest('hex') };
}

export function snapshot(db: Database.Database): { counts: Record<string, number>; checksum: string } {
  const hash = createHash('sha256');
  const counts: Record<string, number> = {};
  for (const table of TABLES) {
    const rows = db.prepare(`SELECT * FROM "${table}" ORDER BY id`).all();
    counts[table] = rows.length;
    hash.update(`${table}:${JSON.stringify(rows)}\n`);
  }
  return { counts, checksum: hash.digest('hex') };
}

export function openReadonly(file: string): Database.Database {
  const db = new Database(file, { readonly: true });
  afterAll(() => db.close());
  return db;
}

// Error codes a refusal may carry: ours (src/schema/error-translation.ts) and those graphql-js/Yoga put on bad requests.
const ALLOWED_ERROR_CODES = new Set([
  undefined,
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'RATE_LIMITED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_USER_INPUT',
  'GRAPHQL_PARSE_FAILED',
  'BAD_REQUEST',
  'OPERATION_RESOLUTION_FAILURE',
]);
// Wording that only an unmasked internal error would carry.
const LEAKS =
  /prisma|sqlite|invalid `|TypeError|ReferenceError|Cannot read propert|undefined is not|is not a function|\bat .+\.(ts|js):\d+|node_modules|stack/i;

/** Never a 5xx, never a masked or unmasked internal error. */
export function expectNoInternalError(answer: HttpAnswer, context: unknown = ''): void {
  const where = String(JSON.stringify(context)).slice(0, 300);
  expect(answer.status, `status for ${where}`).toBeLessThan(500);
  for (const error of answer.errors ?? []) {
    expect(error.extensions?.code, `error code for ${where}: ${error.message}`).not.toBe('INTERNAL_SERVER_ERROR');
    expect(ALLOWED_ERROR_CODES.has(error.extensions?.code as string | undefined), `error code ${String(error.extensions?.code)} for ${where}`).toBe(true);
    expect(error.message, `message for ${where}`).not.toBe('Unexpected error.');
    // Validation messages quote the offending value; only the wording around it could leak.
    expect(error.message.replace(/"(?:[^"\\]|\\.)*"/g, '""'), `message for ${where}`).not.toMatch(LEAKS);
    // Yoga itself attaches the JSON.parse SyntaxError to "invalid JSON" (it only echoes the body); nothing
    // else may carry an original error or a stack.
    const { originalError, ...extensions } = error.extensions ?? {};
    if (originalError !== undefined) {
      expect(error.message, `originalError for ${where}`).toBe('POST body sent invalid JSON.');
      expect((originalError as { name?: string }).name).toBe('SyntaxError');
    }
    expect(JSON.stringify(extensions), `extensions for ${where}`).not.toMatch(/stack|originalError|unexpected/i);
  }
}
