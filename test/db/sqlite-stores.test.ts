import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { preparedStatementsOf } from '../../src/db/client.js';
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

describe("the login's SQLite fast path", () => {
  const open = async () => {
    const clock = new ManualClock();
    const db = await SqliteDatabase.open({ url: await freshDatabaseUrl(), sessionIdleTimeoutMs: IDLE_TIMEOUT_MS }, clock);
    afterAll(() => db.close());
    const client = SqliteDatabase.clientOf(db);
    const prepared = preparedStatementsOf(client)!;
    expect(prepared.available).toBe(true);
    return { db, clock, client, prepared };
  };

  it('looks the user up and inserts the session through prepared statements, without a Prisma transaction', async () => {
    const { db, clock, client, prepared } = await open();
    const user = await db.transaction((tx) =>
      db.users.create(tx, {
        id: randomUUID(),
        username: 'Alice',
        usernameKey: 'alice',
        email: null,
        emailKey: null,
        fullname: null,
        passwordHash: 'h',
        role: 'USER',
      }),
    );
    const reads = vi.spyOn(prepared, 'read');
    const writes = vi.spyOn(prepared, 'writeReturning');
    const transactions = vi.spyOn(client, '$transaction');
    try {
      expect((await db.users.findByUsernameKey('alice'))?.id).toBe(user.id);
      const session = {
        id: randomUUID(),
        userId: user.id,
        createdAt: new Date(clock.now()),
        expiresAt: new Date(clock.now() + 60_000),
        userAgent: null,
        ip: null,
      };
      expect(await db.sessions.createIfCredentialsCurrent(session, 0)).toMatchObject({ id: session.id });
      expect(reads).toHaveBeenCalledTimes(1);
      expect(writes).toHaveBeenCalledTimes(1);
      expect(transactions).not.toHaveBeenCalled();
    } finally {
      vi.restoreAllMocks();
    }
  });

  it("reads dates written in SQLite's own format (a column default) as Prisma does", async () => {
    const { db, client } = await open();
    const id = randomUUID();
    // What CURRENT_TIMESTAMP writes: UTC without a zone.
    await client.$executeRawUnsafe(
      `INSERT INTO "User" ("id", "username", "usernameKey", "passwordHash", "role", "credentialsVersion", "createdAt", "updatedAt", "disabledAt")
       VALUES (?, 'Bob', 'bob', 'h', 'USER', 0, '2026-01-02 03:04:05', '2026-01-02 03:04:05.250', '2026-01-02T03:04:05.000+00:00')`,
      id,
    );
    // Read as local time, the text would come out hours off (TZ is UTC on most test machines).
    const timeZone = process.env.TZ;
    process.env.TZ = 'America/New_York';
    try {
      const byId = await db.users.find(id);
      expect(byId?.createdAt.toISOString()).toBe('2026-01-02T03:04:05.000Z');
      expect(await db.users.findByUsernameKey('bob')).toEqual(byId);
    } finally {
      if (timeZone === undefined) delete process.env.TZ;
      else process.env.TZ = timeZone;
    }
  });
});
