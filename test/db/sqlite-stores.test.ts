import { SqliteDatabase } from '../../src/db/database.js';
import { ManualClock } from '../support/app.js';
import { freshDatabaseUrl } from '../support/db.js';
import { IDLE_TIMEOUT_MS, storeContract } from './store-contract.js';

storeContract('SQLite', async () => {
  const clock = new ManualClock();
  const db = await SqliteDatabase.open({ url: await freshDatabaseUrl(), sessionIdleTimeoutMs: IDLE_TIMEOUT_MS }, clock);
  return { db, clock, close: () => db.close() };
});
