import { PostgresDatabase } from '../../src/db/database.js';
import { ManualClock } from '../support/app.js';
import { createPostgresDatabase } from '../support/postgres.js';
import { IDLE_TIMEOUT_MS, storeContract } from './store-contract.js';

storeContract('PostgreSQL', async () => {
  const clock = new ManualClock();
  const database = await createPostgresDatabase();
  const db = await PostgresDatabase.open({ url: database.url, sessionIdleTimeoutMs: IDLE_TIMEOUT_MS }, clock);
  return {
    db,
    clock,
    close: async () => {
      await db.close();
      await database.drop();
    },
  };
});
