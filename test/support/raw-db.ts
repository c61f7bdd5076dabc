import { type Database, PostgresDatabase, SqliteDatabase } from '../../src/db/database.js';
import type { SqliteClient } from '../../src/db/client.js';

/**
 * The Prisma client under a running app's data layer, for tests that read or change rows directly, as
 * another process (the admin CLI, a second server) would: past the stores and their caches. On
 * PostgreSQL (TEST_DATABASE=postgres) the PostgreSQL client, typed as SQLite's: both are generated from
 * one model, so model calls behave the same; raw SQL must be written for both engines.
 */
export function rawDb(services: { readonly db: Database }): SqliteClient {
  if (services.db instanceof PostgresDatabase) return PostgresDatabase.clientOf(services.db) as unknown as SqliteClient;
  return SqliteDatabase.clientOf(services.db);
}
