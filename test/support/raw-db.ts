import { type Database, SqliteDatabase } from '../../src/db/database.js';
import type { SqliteClient } from '../../src/db/client.js';

/**
 * The Prisma client under a running app's data layer, for tests that read or change rows directly, as
 * another process (the admin CLI, a second server) would: past the stores and their caches.
 */
export function rawDb(services: { readonly db: Database }): SqliteClient {
  return SqliteDatabase.clientOf(services.db);
}
