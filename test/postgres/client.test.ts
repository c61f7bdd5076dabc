import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Prisma } from '../../src/db/generated/postgres/client.js';
import { closePostgres, openPostgres, type PostgresDatabase } from '../../src/db/postgres.js';
import { usePostgresDatabase } from '../support/postgres.js';

const database = usePostgresDatabase();
let db: PostgresDatabase;
beforeAll(async () => {
  db = await openPostgres(database.url);
});
afterAll(async () => {
  await closePostgres(db);
});

const HOUR = 3_600_000;

function newUser(name = `user-${randomUUID().slice(0, 8)}`) {
  return { id: randomUUID(), username: name, usernameKey: name.toLowerCase(), passwordHash: '$argon2id$test' };
}

async function newSession(userId: string, overrides: Partial<Prisma.SessionUncheckedCreateInput> = {}) {
  const now = new Date();
  return db.session.create({
    data: { id: randomUUID(), userId, lastUsedAt: now, expiresAt: new Date(now.getTime() + HOUR), rotatedAt: now, ...overrides },
  });
}

describe('the PostgreSQL client over adapter-pg', () => {
  it('creates a user, a session and an API token and reads them back', async () => {
    const user = await db.user.create({ data: { ...newUser('Alice'), email: 'Alice@Example.com', emailKey: 'alice@example.com' } });
    const session = await newSession(user.id, { userAgent: 'test', ip: '203.0.113.7' });
    const token = await db.apiToken.create({
      data: { id: randomUUID(), userId: user.id, name: 'ci', scopes: 'profile:read', secretHash: randomUUID(), expiresAt: new Date(Date.now() + HOUR) },
    });
    const read = await db.user.findUnique({ where: { usernameKey: 'alice' }, include: { sessions: true, apiTokens: true } });
    expect(read).toMatchObject({ id: user.id, username: 'Alice', emailKey: 'alice@example.com', role: 'USER', credentialsVersion: 0, disabledAt: null });
    expect(read?.createdAt).toBeInstanceOf(Date);
    expect(read?.sessions).toEqual([session]);
    expect(read?.apiTokens).toEqual([token]);
    // Millisecond precision survives the round trip (TIMESTAMP(3)).
    expect(read?.sessions[0]?.expiresAt.getTime()).toBe(session.expiresAt.getTime());
    expect(await db.apiToken.findUnique({ where: { secretHash: token.secretHash }, select: { userId: true } })).toEqual({ userId: user.id });
  });

  it('sets the pool up as openPostgres says: statement timeout and application name on every connection', async () => {
    const [settings] = await db.$queryRaw<{ timeout: string; idle: string; app: string }[]>`
      SELECT current_setting('statement_timeout') AS timeout,
             current_setting('idle_in_transaction_session_timeout') AS idle,
             current_setting('application_name') AS app`;
    expect(settings).toEqual({ timeout: '10s', idle: '30s', app: 'gatehouse' });
  });

  it('reports a unique violation as P2002, outside and inside a transaction (the services rely on that code)', async () => {
    const user = await db.user.create({ data: newUser('Bob') });
    const again = db.user.create({ data: { ...newUser('bob'), usernameKey: user.usernameKey } });
    await expect(again).rejects.toBeInstanceOf(Prisma.PrismaClientKnownRequestError);
    await expect(again).rejects.toMatchObject({ code: 'P2002' });
    const inTransaction = db.$transaction(async (tx) => {
      await tx.user.create({ data: newUser() });
      await tx.user.create({ data: { ...newUser(), usernameKey: user.usernameKey } });
    });
    await expect(inTransaction).rejects.toMatchObject({ code: 'P2002' });
  });

  it('reports an update of a missing row as P2025 (isRecordGone)', async () => {
    await expect(db.session.update({ where: { id: randomUUID() }, data: { revokedAt: new Date() } })).rejects.toMatchObject({ code: 'P2025' });
  });
});

// The refresh rotation's compare-and-set, exactly as src/auth/rotation-commits.ts sends it through Prisma
// ($queryRaw with Prisma.sql, not its SQLite prepared-statement path). Copied rather than imported while the
// store change moves that code; the store's PostgreSQL implementation must keep this statement's behaviour.
type RotationClaim = { sessionId: string; counter: number };
async function compareAndSet(client: Pick<PostgresDatabase, '$queryRaw'>, now: Date, idleTimeoutMs: number, claims: RotationClaim[]) {
  const idleCutoff = new Date(now.getTime() - idleTimeoutMs);
  const pairs = Prisma.join(claims.map((claim) => Prisma.sql`(${claim.sessionId}, CAST(${claim.counter} AS INTEGER))`));
  return client.$queryRaw<{ id: string; refreshCounter: number }[]>`
    UPDATE "Session" SET "refreshCounter" = "refreshCounter" + 1, "rotatedAt" = ${now}, "lastUsedAt" = ${now}
    WHERE "revokedAt" IS NULL AND "expiresAt" > ${now} AND "lastUsedAt" > ${idleCutoff}
      AND ("id", "refreshCounter") IN (VALUES ${pairs})
    RETURNING "id", "refreshCounter"`;
}

describe('the rotation statement on PostgreSQL', () => {
  const IDLE = 24 * HOUR;

  it('decides each claim of a batch on its own row', async () => {
    const user = await db.user.create({ data: newUser() });
    const now = new Date();
    const current = await newSession(user.id);
    const stale = await newSession(user.id, { refreshCounter: 3 });
    const revoked = await newSession(user.id, { revokedAt: now });
    const expired = await newSession(user.id, { expiresAt: new Date(now.getTime() - 1) });
    const idle = await newSession(user.id, { lastUsedAt: new Date(now.getTime() - IDLE - 1) });
    const twice = await newSession(user.id, { refreshCounter: 7 });

    const rows = await compareAndSet(db, now, IDLE, [
      { sessionId: current.id, counter: 0 }, // current generation: wins
      { sessionId: stale.id, counter: 2 }, // an older generation: loses
      { sessionId: revoked.id, counter: 0 },
      { sessionId: expired.id, counter: 0 },
      { sessionId: idle.id, counter: 0 },
      { sessionId: twice.id, counter: 7 }, // two claims on one row: only the current generation matches
      { sessionId: twice.id, counter: 8 },
      { sessionId: randomUUID(), counter: 0 }, // no such session
    ]);

    expect(rows.sort((a, b) => a.id.localeCompare(b.id))).toEqual(
      [
        { id: current.id, refreshCounter: 1 },
        { id: twice.id, refreshCounter: 8 },
      ].sort((a, b) => a.id.localeCompare(b.id)),
    );
    const after = await db.session.findMany({ where: { userId: user.id }, select: { id: true, refreshCounter: true, rotatedAt: true } });
    const byId = new Map(after.map((row) => [row.id, row]));
    expect(byId.get(current.id)).toMatchObject({ refreshCounter: 1, rotatedAt: now });
    expect(byId.get(twice.id)).toMatchObject({ refreshCounter: 8, rotatedAt: now });
    for (const loser of [stale, revoked, expired, idle]) {
      expect(byId.get(loser.id)).toMatchObject({ refreshCounter: loser.refreshCounter, rotatedAt: loser.rotatedAt });
    }
  });

  it('racing batches on separate connections: one claim of a generation wins', async () => {
    const user = await db.user.create({ data: newUser() });
    const session = await newSession(user.id);
    const other = await openPostgres(database.url, { poolSize: 2 });
    try {
      // Each batch also rotates a session of its own, so a loser's batch still commits its other claim.
      const own = await Promise.all([newSession(user.id), newSession(user.id)]);
      const now = new Date();
      const results = await Promise.all([
        compareAndSet(db, now, IDLE, [
          { sessionId: session.id, counter: 0 },
          { sessionId: own[0]!.id, counter: 0 },
        ]),
        compareAndSet(other, now, IDLE, [
          { sessionId: session.id, counter: 0 },
          { sessionId: own[1]!.id, counter: 0 },
        ]),
      ]);
      const winners = results.filter((rows) => rows.some((row) => row.id === session.id));
      expect(winners).toHaveLength(1);
      expect(results.map((rows) => rows.length).sort()).toEqual([1, 2]);
      expect(await db.session.findUnique({ where: { id: session.id }, select: { refreshCounter: true } })).toEqual({ refreshCounter: 1 });
    } finally {
      await closePostgres(other);
    }
  });

  it('the pool really is closed by closePostgres', async () => {
    const extra = await openPostgres(database.url, { applicationName: 'gatehouse-close-test' });
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      const connections = async () =>
        (await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'gatehouse-close-test'")).rows[0]!.n;
      await extra.$queryRaw`SELECT 1`;
      expect(await connections()).toBeGreaterThanOrEqual(1);
      await closePostgres(extra);
      // A backend may take a moment to go after its client hung up.
      let count = await connections();
      for (let i = 0; i < 50 && count !== 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        count = await connections();
      }
      expect(count).toBe(0);
    } finally {
      await admin.end();
    }
  });
});
