import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// prisma/schema.prisma (SQLite) is the one data model. Prisma needs the provider as a literal and a client
// per provider, so PostgreSQL gets a copy with exactly two lines changed: the datasource provider and the
// client's output folder. Run by `npm run prisma:postgres-schema` and by `postinstall` before generation;
// test/postgres/schema-drift.test.ts fails when the committed copy is stale.

export const sourceSchemaPath = fileURLToPath(new URL('../prisma/schema.prisma', import.meta.url));
export const postgresSchemaPath = fileURLToPath(new URL('../prisma/postgres/schema.prisma', import.meta.url));

const HEADER = [
  '// GENERATED from prisma/schema.prisma by scripts/postgres-schema.ts: do not edit. Change the SQLite schema',
  '// and run `npm run prisma:postgres-schema`; only the provider and the client output differ.',
  '',
  '',
].join('\n');

/** Replaces exactly one match of `pattern` in `text`, or says which line the model no longer has. */
function replaceOnce(text: string, pattern: RegExp, replacement: string, what: string): string {
  const matches = text.match(new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`)) ?? [];
  if (matches.length !== 1) {
    throw new Error(`scripts/postgres-schema.ts: expected exactly one ${what} in prisma/schema.prisma, found ${matches.length}`);
  }
  return text.replace(pattern, replacement);
}

/** The PostgreSQL schema for a given SQLite schema text. */
export function postgresSchema(sqliteSchema: string): string {
  let text = replaceOnce(sqliteSchema, /^(\s*provider\s*=\s*)"sqlite"/m, '$1"postgresql"', 'datasource `provider = "sqlite"`');
  // The copy lives one folder deeper, so the same folder is one more `../` away.
  text = replaceOnce(
    text,
    /^(\s*output\s*=\s*)"\.\.\/src\/db\/generated\/sqlite"/m,
    '$1"../../src/db/generated/postgres"',
    'client `output = "../src/db/generated/sqlite"`',
  );
  return HEADER + text;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(postgresSchemaPath, postgresSchema(readFileSync(sourceSchemaPath, 'utf8')));
  console.log('prisma/postgres/schema.prisma written');
}
