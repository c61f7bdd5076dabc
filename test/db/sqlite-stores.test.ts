import { SqliteDatabase } from '../../src/db/database.js';
import { ManualClock } from '../support/app.js';
import { freshDatabaseUrl } from '../support/db.js';
import { IDLE_TIMEOUT_MS, storeContract } from './store-contract.js';

storeContract('SQLite', async () => {
  const clock = new ManualClock();
  const db = await SqliteDatabase.open({ url: await freshDatabaseUrl(), sessionIdleTimeoutMs: IDLE_TIMEOUT_MS }, clock);
  // As a server does: the caches are used only while the change feed listens (and is live).
  db.changes.listen();
  await db.changes.whenLive(10_000);
  return { db, clock, close: () => db.close() };
});
