import { PostgresDatabase } from '../../src/db/database.js';
import { ManualClock } from '../support/app.js';
import { createPostgresDatabase } from '../support/postgres.js';
import { IDLE_TIMEOUT_MS, storeContract } from './store-contract.js';

storeContract('PostgreSQL', async () => {
  const clock = new ManualClock();
  const database = await createPostgresDatabase();
  const db = await PostgresDatabase.open({ url: database.url, sessionIdleTimeoutMs: IDLE_TIMEOUT_MS }, clock);
  // As a server does: the caches are used only while the change feed listens (and is live).
  db.changes.listen();
  await db.changes.whenLive(10_000);
  return {
    db,
    clock,
    close: async () => {
      await db.close();
      await database.drop();
    },
  };
});
