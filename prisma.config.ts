import path from 'node:path';
import { defineConfig } from 'prisma/config';

// Prisma's CLI wants its native schema engine, which it downloads from a host these machines cannot
// reach. Our stand-in speaks the same protocol over @prisma/schema-engine-wasm. A user who has the
// real binary can still point the variable at it.
process.env.PRISMA_SCHEMA_ENGINE_BINARY ??= path.join(import.meta.dirname, 'prisma', 'engine', 'schema-engine.mjs');

const url = process.env.DATABASE_URL ?? `file:${path.join(process.env.DATA_DIR ?? 'data', 'gatehouse.db')}`;

// One model, two providers (scripts/postgres-schema.ts): a PostgreSQL URL selects the generated PostgreSQL
// schema and its own migrations; anything else is SQLite. Migration SQL and migration_lock.toml are
// provider-specific, so the two folders never mix.
const postgres = /^postgres(ql)?:\/\//i.test(url);

export default defineConfig({
  schema: postgres ? 'prisma/postgres/schema.prisma' : 'prisma/schema.prisma',
  migrations: { path: postgres ? 'prisma/postgres/migrations' : 'prisma/migrations' },
  datasource: {
    url,
    // Optional for `migrate dev` on PostgreSQL; without it the stand-in creates and drops a temporary one.
    ...(postgres && process.env.SHADOW_DATABASE_URL ? { shadowDatabaseUrl: process.env.SHADOW_DATABASE_URL } : {}),
  },
});
