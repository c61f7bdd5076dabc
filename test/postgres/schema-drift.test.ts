import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { postgresSchema, postgresSchemaPath, sourceSchemaPath } from '../../scripts/postgres-schema.js';

describe('PostgreSQL schema generated from the SQLite model', () => {
  it('the committed prisma/postgres/schema.prisma is what the script makes (run `npm run prisma:postgres-schema`)', () => {
    expect(readFileSync(postgresSchemaPath, 'utf8')).toBe(postgresSchema(readFileSync(sourceSchemaPath, 'utf8')));
  });

  it('differs from the model only in the provider and the client output', () => {
    const source = readFileSync(sourceSchemaPath, 'utf8').split('\n');
    // After the three-line header (two comment lines, one blank), line for line.
    const generated = readFileSync(postgresSchemaPath, 'utf8').split('\n').slice(3);
    expect(generated).toHaveLength(source.length);
    const changed = generated.filter((line, i) => line !== source[i]);
    expect(changed.map((line) => line.trim())).toEqual(['output                 = "../../src/db/generated/postgres"', 'provider = "postgresql"']);
  });

  it('refuses a model whose provider line it cannot find, rather than writing a SQLite copy', () => {
    expect(() => postgresSchema('datasource db {\n  provider = "mysql"\n}\n')).toThrow(/exactly one datasource/);
  });

  it('every SQLite migration has a PostgreSQL counterpart of the same name (and the reverse)', () => {
    const names = (dir: string) =>
      readdirSync(new URL(dir, import.meta.url), { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name)
        .sort();
    expect(names('../../prisma/postgres/migrations/')).toEqual(names('../../prisma/migrations/'));
  });
});
