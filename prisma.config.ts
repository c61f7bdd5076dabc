import path from 'node:path';
import { defineConfig } from 'prisma/config';

// Prisma's CLI wants its native schema engine, which it downloads from a host these machines cannot
// reach. Our stand-in speaks the same protocol over @prisma/schema-engine-wasm. A user who has the
// real binary can still point the variable at it.
process.env.PRISMA_SCHEMA_ENGINE_BINARY ??= path.join(import.meta.dirname, 'prisma', 'engine', 'schema-engine.mjs');

const url = process.env.DATABASE_URL ?? `file:${path.join(process.env.DATA_DIR ?? 'data', 'gatehouse.db')}`;

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url },
});
