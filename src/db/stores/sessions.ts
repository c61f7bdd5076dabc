import { NO_STORE_OBSERVER, type StoreObserver } from '../observer.js';
import { LRUCache } from 'lru-cache';
import type { Change } from '../change-feed/changes.js';
import type { ChangeFeed, MirroredCache } from '../change-feed/feed.js';
import type { StoreClock } from '../clock.js';
import { type PreparedStatements, sqliteTimestamp } from '../prepared-statements.js';
import { cannotBeStored, type SessionRecord } from '../records.js';
import type { StoreClient } from '../store-client.js';
import { prismaIn, type RunInTransaction, type Transaction } from '../transaction.js';
import { SessionRotations } from './session-rotation.js';

/**
 * What the per-request check and the usual rotation need, mirrored in memory so that a valid access
 * token costs no database read and a refresh only its write. A stale copy (another process rotated or
 * revoked the session) cannot make a rotation succeed: the compare-and-set in the database decides.
 */
export interface SessionSnapshot {
  readonly userId: string;
  readonly ended: boolean;
  /** Wall-clock ms, as stored. */
  readonly expiresAt: number;
  readonly lastUsedAt: number;
  /** The current refresh generation as this process last saw it. */
  readonly refreshCounter: number;
}

// Cached in place of a session ended by this process. Ending is final, so nothing may overwrite it:
// a read that saw the row just before the revocation must not cache it as still active.
const ENDED: SessionSnapshot = { userId: '', ended: true, expiresAt: 0, lastUsedAt: 0, refreshCounter: -1 };

export interface NewSession {
  readonly id: string;
  readonly userId: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly userAgent: string | null;
  readonly ip: string | null;
}

/** What a rotation claims: the generation `refreshCounter` of a session as the caller knows it. */
export interface SessionClaim {
  readonly sessionId: string;
  readonly userId: string;
  readonly expiresAt: number;
  readonly refreshCounter: number;
}

export interface SessionStoreOptions {
  /** A session unused for this long can no longer be rotated, listed or kept. */
  readonly idleTimeoutMs: number;
  readonly cache?: { readonly maxEntries: number; readonly ttlMs: number };
  /** The database's transactions (Database.transaction), for the login's insert without `prepared`. */
  readonly transaction: RunInTransaction;
  readonly observer?: StoreObserver;
  /**
   * The SQLite prepared-statement path for the rotation and the login's insert; without it both go
   * through Prisma.
   */
  readonly prepared?: PreparedStatements;
}

/** Why a login's session was not inserted: the account is disabled, or its credentials are no longer those checked. */
export type SessionRefusal = 'disabled' | 'credentials_changed';

/**
 * Sessions: every query, and the in-memory mirror of their state, which every write here keeps right.
 * Ends are announced on the change feed, which drops the mirrored state in every other process; while
 * the feed is not live the mirror is not used (only this process's own ENDED marks, which are final).
 */
export class SessionStore implements MirroredCache {
  // Bounded and short-lived: a safety net under the change feed.
  readonly #snapshots: LRUCache<string, SessionSnapshot>;
  /** Moves on with every dropped entry: a read that began before must not mirror its (possibly older) row. */
  #generation = 0;
  readonly #rotations: SessionRotations;
  readonly #idleTimeoutMs: number;
  readonly #transaction: RunInTransaction;
  readonly #prepared: PreparedStatements | undefined;
  readonly #observer: StoreObserver;

  constructor(
    private readonly prisma: StoreClient,
    private readonly clock: StoreClock,
    private readonly feed: ChangeFeed,
    { idleTimeoutMs, transaction, cache = { maxEntries: 50_000, ttlMs: 30_000 }, prepared, observer = NO_STORE_OBSERVER }: SessionStoreOptions,
  ) {
    this.#observer = observer;
    feed.register(this);
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#transaction = transaction;
    this.#prepared = prepared;
    // Lifetime in monotonic time: setting the wall clock back must not keep a revoked session cached.
    this.#snapshots = new LRUCache({ max: cache.maxEntries, ttl: cache.ttlMs, ttlAutopurge: false, perf: { now: () => clock.monotonicMs() } });
    this.#rotations = new SessionRotations(prisma, () => clock.now(), idleTimeoutMs, { prepared, observer });
  }

  /** The mirrored state, if this process has it and may use it; never reads the database. */
  cached(sessionId: string): SessionSnapshot | undefined {
    const cached = this.#snapshots.get(sessionId);
    // An ENDED mark of this process is final, so it is used even while the feed is not live.
    const usable = cached?.ended || this.feed.trusted ? cached : undefined;
    this.#observer.cacheLookup('sessions', usable ? 'hit' : this.feed.trusted ? 'miss' : 'bypass');
    return usable;
  }

  /** The state from memory, or read once and mirrored; null when no such session exists. */
  async snapshot(sessionId: string): Promise<SessionSnapshot | null> {
    const cached = this.cached(sessionId);
    if (cached) return cached;
    const generation = this.#generation;
    const session = await this.find(sessionId);
    if (!session) return null;
    const snapshot = snapshotOf(session);
    return this.feed.trusted && generation === this.#generation ? this.#keep(sessionId, snapshot) : snapshot;
  }

  /** For the change feed: another process ended a session, or changed its owner. */
  forget(change: Change): void {
    if (change.kind !== 'session' && change.kind !== 'userAccess') return;
    this.#generation++;
    if (change.kind === 'session') {
      this.#snapshots.delete(change.id);
      return;
    }
    // A rare event (every session of the user ended; limited by the password checks and admin rights that
    // lead to it): a walk over the mirror beats keeping an index per user.
    for (const [sessionId, snapshot] of this.#snapshots.entries()) if (snapshot.userId === change.id) this.#snapshots.delete(sessionId);
  }

  forgetAll(): void {
    this.#generation++;
    this.#snapshots.clear();
  }

  /** The row as the database has it now (not from memory). */
  async find(sessionId: string): Promise<SessionRecord | null> {
    if (cannotBeStored(sessionId)) return null;
    return this.prisma.session.findUnique({ where: { id: sessionId } });
  }

  /** The row as `tx` sees it. */
  async findIn(tx: Transaction, sessionId: string): Promise<SessionRecord | null> {
    if (cannotBeStored(sessionId)) return null;
    return prismaIn(tx).session.findUnique({ where: { id: sessionId } });
  }

  /** Inserts a session at generation 0. */
  async create(tx: Transaction, session: NewSession): Promise<SessionRecord> {
    const created = await prismaIn(tx).session.create({
      data: { ...session, lastUsedAt: session.createdAt, rotatedAt: session.createdAt, refreshCounter: 0 },
    });
    this.#keep(created.id, snapshotOf(created));
    return created;
  }

  /**
   * Inserts a session at generation 0 for a login whose password was checked against `credentialsVersion`
   * of the user's credentials, only if that is still the version and the account is not disabled; the
   * check and the insert are one commit, so a change committed in between refuses the session (its
   * reason is returned) and a change committed after it ends the session with the others.
   *
   * On SQLite (`prepared`) that commit is ONE statement, `INSERT … SELECT … FROM "User" WHERE "id" = ? AND
   * "credentialsVersion" = ? AND "disabledAt" IS NULL`: a statement is atomic and runs at the gate like
   * any other (serialized-adapter.ts), and it is acknowledged once durable. Prisma's interactive
   * transaction (BEGIN IMMEDIATE, read, insert, COMMIT, each through the query engine) cost the login
   * most of its main-thread time beyond the hash. Elsewhere it is that transaction (SERIALIZABLE on
   * PostgreSQL, Database.transaction).
   */
  async createIfCredentialsCurrent(session: NewSession, credentialsVersion: number): Promise<SessionRecord | SessionRefusal> {
    if (this.#prepared?.available) return this.#preparedCreateIfCurrent(this.#prepared, session, credentialsVersion);
    return this.#transaction(async (tx) => {
      const account = await prismaIn(tx).user.findUnique({ where: { id: session.userId }, select: { disabledAt: true, credentialsVersion: true } });
      if (account?.disabledAt) return 'disabled';
      if (!account || account.credentialsVersion !== credentialsVersion) return 'credentials_changed';
      return this.create(tx, session);
    });
  }

  async #preparedCreateIfCurrent(prepared: PreparedStatements, session: NewSession, credentialsVersion: number): Promise<SessionRecord | SessionRefusal> {
    const createdAt = sqliteTimestamp(session.createdAt);
    const inserted = await prepared.writeReturning<{ id: string }>(
      `INSERT INTO "Session" ("id", "userId", "createdAt", "lastUsedAt", "expiresAt", "refreshCounter", "rotatedAt", "userAgent", "ip")
        SELECT ?, "id", ?, ?, ?, 0, ?, ?, ? FROM "User" WHERE "id" = ? AND "credentialsVersion" = ? AND "disabledAt" IS NULL
        RETURNING "id"`,
      [session.id, createdAt, createdAt, sqliteTimestamp(session.expiresAt), createdAt, session.userAgent, session.ip, session.userId, credentialsVersion],
    );
    if (inserted.length === 0) {
      // Refused: only the answer depends on why, read after the fact (a disable also moves the version).
      const [account] = await prepared.read<{ disabledAt: unknown }>('SELECT "disabledAt" FROM "User" WHERE "id" = ?', [session.userId]);
      return account && account.disabledAt !== null ? 'disabled' : 'credentials_changed';
    }
    const created: SessionRecord = {
      ...session,
      lastUsedAt: session.createdAt,
      rotatedAt: session.createdAt,
      refreshCounter: 0,
      revokedAt: null,
      revokedReason: null,
    };
    this.#keep(created.id, snapshotOf(created));
    return created;
  }

  /**
   * Moves the session from generation `claim.refreshCounter` to the next one if it is still current and
   * the session live (compare-and-set, group-committed). Returns when the winner was written, or null
   * when the claim lost.
   */
  async claimRotation(claim: SessionClaim): Promise<Date | null> {
    const won = await this.#rotations.claim(claim.sessionId, claim.refreshCounter);
    if (!won) return null;
    // A revocation that landed while the claim was being written wins: #keep leaves ENDED in place.
    this.#keep(claim.sessionId, {
      userId: claim.userId,
      ended: false,
      expiresAt: claim.expiresAt,
      lastUsedAt: won.rotatedAt.getTime(),
      refreshCounter: claim.refreshCounter + 1,
    });
    return won.rotatedAt;
  }

  /** Ends one session (of `userId`, if given); false if it did not exist or was already ended. */
  async revoke(sessionId: string, reason: string, userId?: string): Promise<boolean> {
    if (cannotBeStored(sessionId)) return false;
    const { count } = await this.feed.write(
      this.prisma,
      (client) =>
        client.session.updateMany({
          where: { id: sessionId, revokedAt: null, ...(userId === undefined ? {} : { userId }) },
          data: { revokedAt: new Date(this.clock.now()), revokedReason: reason },
        }),
      (ended) => (ended.count === 1 ? { kind: 'session', id: sessionId } : null),
    );
    if (count !== 1) return false;
    this.#snapshots.set(sessionId, ENDED);
    return true;
  }

  /** Ends every session of a user but `exceptSessionId`; returns how many. */
  async revokeAllForUser(tx: Transaction, userId: string, reason: string, exceptSessionId?: string): Promise<number> {
    const prisma = prismaIn(tx);
    const sessions = await prisma.session.findMany({
      where: { userId, revokedAt: null, ...(exceptSessionId ? { id: { not: exceptSessionId } } : {}) },
      select: { id: true },
    });
    if (sessions.length === 0) return 0;
    const ids = sessions.map((session) => session.id);
    // Marked ended before the commit: this holds even if the transaction rolls back later, the safe direction.
    for (const id of ids) this.#snapshots.set(id, ENDED);
    const { count } = await prisma.session.updateMany({
      where: { id: { in: ids }, revokedAt: null },
      data: { revokedAt: new Date(this.clock.now()), revokedReason: reason },
    });
    await this.feed.announceIn(tx, { kind: 'userAccess', id: userId });
    return count;
  }

  /** The user's sessions that can still be refreshed, newest first. */
  listActive(userId: string): Promise<SessionRecord[]> {
    const now = this.clock.now();
    return this.prisma.session.findMany({
      where: { userId, revokedAt: null, expiresAt: { gt: new Date(now) }, lastUsedAt: { gt: new Date(now - this.#idleTimeoutMs) } },
      orderBy: { createdAt: 'desc' },
    });
  }

  /** Deletes sessions that can never be used again (revoked, expired or idle too long); returns how many. */
  async purgeEnded(): Promise<number> {
    const now = this.clock.now();
    const { count } = await this.prisma.session.deleteMany({
      where: {
        OR: [{ revokedAt: { not: null } }, { expiresAt: { lte: new Date(now) } }, { lastUsedAt: { lte: new Date(now - this.#idleTimeoutMs) } }],
      },
    });
    return count;
  }

  count(): Promise<number> {
    return this.prisma.session.count();
  }

  /** Mirrors a session's state unless this process already ended it: ENDED is final. Returns what is mirrored. */
  #keep(sessionId: string, snapshot: SessionSnapshot): SessionSnapshot {
    const cached = this.#snapshots.peek(sessionId);
    if (cached?.ended) return cached;
    this.#snapshots.set(sessionId, snapshot);
    return snapshot;
  }
}

function snapshotOf(session: SessionRecord): SessionSnapshot {
  return {
    userId: session.userId,
    ended: session.revokedAt !== null,
    expiresAt: session.expiresAt.getTime(),
    lastUsedAt: session.lastUsedAt.getTime(),
    refreshCounter: session.refreshCounter,
  };
}
