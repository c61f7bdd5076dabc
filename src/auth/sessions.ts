import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { type Database, preparedStatementsOf, type SessionRecord, type UserRecord } from '../db/client.js';
import type { Clock } from './clock.js';
import { InvalidRefreshTokenError } from './errors.js';
import { RotationCommitter } from './rotation-commits.js';
import type { UserCache } from './user-cache.js';

export interface SessionSettings {
  readonly idleTimeoutMs: number;
  readonly absoluteLifetimeMs: number;
  readonly reuseGraceMs: number;
}

export interface ClientMeta {
  readonly userAgent: string | null;
  readonly ip: string | null;
  /** What the lockout counts the client as: the address, or for IPv6 its network (rate-limit.ts clientNetwork). */
  readonly network: string | null;
}

export interface IssuedSession {
  readonly sessionId: string;
  readonly refreshToken: string;
}

/** A rotation's result, with the session's owner as checked for it (active, not disabled). */
export interface RotatedSession extends IssuedSession {
  readonly user: UserRecord;
}

export type SessionStatus = 'active' | 'ended';

/**
 * What the per-request check and the usual rotation need, kept in memory so that a valid access token
 * costs no database read and a refresh only its write. A stale copy (another process rotated or revoked
 * the session) cannot make a rotation succeed: the compare-and-set in the database decides.
 */
interface SessionState {
  readonly userId: string;
  readonly ended: boolean;
  readonly expiresAt: number;
  readonly idleDeadline: number;
  /** The current refresh generation as this process last saw it. */
  readonly counter: number;
}

// Cached in place of a session ended by this process. Ending is final, so nothing may overwrite it:
// a status() that read the row just before the revocation must not cache it as still active.
const ENDED: SessionState = { userId: '', ended: true, expiresAt: 0, idleDeadline: 0, counter: -1 };

const TOKEN_PREFIX = 'grt_';
const MAX_REFRESH_TOKEN_LENGTH = 128;
// One spelling per token: no leading zeros in the generation, and the MAC compared as text (#parse).
const REFRESH_TOKEN_PATTERN = /^grt_([0-9a-f-]{36})\.(0|[1-9]\d{0,8})\.([A-Za-z0-9_-]{43})$/;
const MAX_USER_AGENT_LENGTH = 512;

/**
 * Sessions and their refresh tokens.
 *
 * A refresh token is `grt_<session id>.<generation>.<HMAC-SHA256(server key, session id . generation)>`.
 * The database keeps only the session's current generation, never the token or a hash of it: without
 * the server key nothing stored can be turned into a token. Because the server can recompute the
 * current token, a client racing another tab with the previous token inside the grace window is given
 * the current token instead of a fork, and anything older is detectable reuse.
 */
export class SessionService {
  readonly #refreshKey: Buffer;
  // Bounded, and short-lived so that changes made by another process (the admin CLI) are seen soon.
  readonly #states: LRUCache<string, SessionState>;
  readonly #rotations: RotationCommitter;

  constructor(
    private readonly db: Database,
    private readonly settings: SessionSettings,
    refreshKey: Buffer,
    private readonly clock: Clock,
    private readonly users: UserCache,
    cache: { maxEntries: number; ttlMs: number } = { maxEntries: 50_000, ttlMs: 30_000 },
  ) {
    this.#refreshKey = refreshKey;
    // Lifetime in monotonic time: setting the wall clock back must not keep a revoked session cached.
    this.#states = new LRUCache({ max: cache.maxEntries, ttl: cache.ttlMs, ttlAutopurge: false, perf: { now: () => clock.monotonicMs() } });
    this.#rotations = new RotationCommitter(db, clock, settings.idleTimeoutMs, preparedStatementsOf(db));
  }

  /** Creates a session for a user who just proved who they are. Pass `db` to join a transaction. */
  async start(userId: string, meta: ClientMeta, db: Pick<Database, 'session'> = this.db): Promise<IssuedSession> {
    const now = this.clock.now();
    const session = await db.session.create({
      data: {
        id: randomUUID(),
        userId,
        createdAt: new Date(now),
        lastUsedAt: new Date(now),
        rotatedAt: new Date(now),
        expiresAt: new Date(now + this.settings.absoluteLifetimeMs),
        refreshCounter: 0,
        userAgent: meta.userAgent?.slice(0, MAX_USER_AGENT_LENGTH) ?? null,
        ip: meta.ip,
      },
    });
    this.#remember(session);
    return { sessionId: session.id, refreshToken: this.#tokenFor(session.id, 0) };
  }

  /**
   * Starts a session for a login whose password was checked against `verifiedVersion` of the user's
   * credentials, in one transaction that first re-reads the account: if a password change, disable,
   * deletion or logout-everywhere committed after the check, no session is inserted and the reason is
   * returned instead. Transactions are serialized (db/serialized-adapter.ts), so a change either
   * committed before this one (and the version moved) or commits after it (and ends this session).
   */
  async startIfCurrent(userId: string, meta: ClientMeta, verifiedVersion: number): Promise<IssuedSession | 'disabled' | 'credentials_changed'> {
    return this.db.$transaction(async (tx) => {
      const account = await tx.user.findUnique({ where: { id: userId }, select: { credentialsVersion: true, disabledAt: true } });
      if (account?.disabledAt) return 'disabled';
      if (!account || account.credentialsVersion !== verifiedVersion) return 'credentials_changed';
      return this.start(userId, meta, tx);
    });
  }

  /**
   * Exchanges a refresh token for the session's next one. Throws InvalidRefreshTokenError with the reason.
   * The previous token inside the grace window gets the current token back; any other old token is
   * reuse, and ends the session.
   */
  async rotate(refreshToken: string): Promise<RotatedSession> {
    const presented = this.#parse(refreshToken);
    if (!presented) throw new InvalidRefreshTokenError('REFRESH_TOKEN_INVALID');
    const { sessionId, counter } = presented;

    // The usual case, from memory: the current token of a live session. Anything else (or a lost
    // compare-and-set) reads the row and applies the rules below.
    const known = this.#states.get(sessionId);
    if (known && known.counter === counter && this.#isLive(known, this.clock.now())) {
      const owner = await this.#activeOwner(known.userId);
      const won = owner ? await this.#rotations.claim(sessionId, counter) : null;
      if (owner && won) return this.#rotated(sessionId, owner, known.expiresAt, counter, won.rotatedAt);
    }

    let session = await this.#load(sessionId);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (!session) throw new InvalidRefreshTokenError('REFRESH_TOKEN_INVALID');
      const now = this.clock.now();
      if (session.revokedAt) throw new InvalidRefreshTokenError('REFRESH_TOKEN_REVOKED');
      const owner = await this.#activeOwner(session.userId);
      if (!owner) {
        await this.revoke(session.id, 'user_disabled');
        throw new InvalidRefreshTokenError('REFRESH_TOKEN_REVOKED');
      }
      if (!this.#isLive(this.#stateOf(session), now)) throw new InvalidRefreshTokenError('REFRESH_TOKEN_EXPIRED');

      if (counter === session.refreshCounter) {
        // Compare-and-set on the generation: of parallel rotations of the same token exactly one wins.
        const won = await this.#rotations.claim(session.id, counter);
        if (won) return this.#rotated(session.id, owner, session.expiresAt.getTime(), counter, won.rotatedAt);
        session = await this.#load(session.id);
        continue;
      }

      // rotatedAt is a stored wall-clock time (another process may have written it), so this is a wall
      // clock difference. Negative means the clock went back since the rotation: nothing says the grace
      // is still running, so it is not (reuse, the safe side; a racing tab at worst logs in again).
      const isPrevious = counter === session.refreshCounter - 1;
      const sinceRotation = now - session.rotatedAt.getTime();
      if (isPrevious && sinceRotation >= 0 && sinceRotation < this.settings.reuseGraceMs) {
        return { sessionId: session.id, user: owner, refreshToken: this.#tokenFor(session.id, session.refreshCounter) };
      }
      if (counter < session.refreshCounter) {
        // A token that was already exchanged came back: it was copied. End the session for everyone.
        await this.revoke(session.id, 'refresh_token_reused');
        throw new InvalidRefreshTokenError('REFRESH_TOKEN_REUSED');
      }
      // A generation from the future cannot be produced without our key (or the database went back in time).
      throw new InvalidRefreshTokenError('REFRESH_TOKEN_INVALID');
    }
    throw new InvalidRefreshTokenError('REFRESH_TOKEN_INVALID');
  }

  #rotated(sessionId: string, owner: UserRecord, expiresAt: number, counter: number, rotatedAt: Date): RotatedSession {
    // A revocation that landed while the claim was being written wins: #keep leaves ENDED in place.
    this.#keep(sessionId, { userId: owner.id, ended: false, expiresAt, idleDeadline: rotatedAt.getTime() + this.settings.idleTimeoutMs, counter: counter + 1 });
    return { sessionId, user: owner, refreshToken: this.#tokenFor(sessionId, counter + 1) };
  }

  #isLive(state: SessionState, now: number): boolean {
    return !state.ended && now < state.expiresAt && now < state.idleDeadline;
  }

  /** The session's owner if they may still use it: the account exists and is not disabled. */
  async #activeOwner(userId: string): Promise<UserRecord | null> {
    const owner = await this.users.get(userId);
    return owner && !owner.disabledAt ? owner : null;
  }

  /** Whether an access token of this session may still be honoured. No database read when cached. */
  async status(sessionId: string, userId: string): Promise<SessionStatus> {
    let state = this.#states.get(sessionId);
    if (!state) {
      const session = await this.#load(sessionId);
      if (!session) return 'ended';
      state = this.#remember(session);
    }
    const now = this.clock.now();
    if (state.userId !== userId || state.ended || now >= state.expiresAt || now >= state.idleDeadline) return 'ended';
    return 'active';
  }

  /** Ends one session; returns false if it did not exist or was already ended. */
  async revoke(sessionId: string, reason: string, userId?: string): Promise<boolean> {
    const { count } = await this.db.session.updateMany({
      where: { id: sessionId, revokedAt: null, ...(userId === undefined ? {} : { userId }) },
      data: { revokedAt: new Date(this.clock.now()), revokedReason: reason },
    });
    if (count === 1) this.#states.set(sessionId, ENDED);
    return count === 1;
  }

  /** Ends every session of a user (optionally but one), e.g. logout everywhere or a password change. */
  async revokeAllForUser(userId: string, reason: string, exceptSessionId?: string, db: Pick<Database, 'session'> = this.db): Promise<number> {
    const sessions = await db.session.findMany({
      where: { userId, revokedAt: null, ...(exceptSessionId ? { id: { not: exceptSessionId } } : {}) },
      select: { id: true },
    });
    if (sessions.length === 0) return 0;
    const ids = sessions.map((session) => session.id);
    // Marked ended first: inside a transaction this holds even if it rolls back later, the safe direction.
    for (const id of ids) this.#states.set(id, ENDED);
    const { count } = await db.session.updateMany({
      where: { id: { in: ids }, revokedAt: null },
      data: { revokedAt: new Date(this.clock.now()), revokedReason: reason },
    });
    return count;
  }

  /**
   * The end of every session born from the user's current credentials: bumps `credentialsVersion` (so a
   * login checked against the old credentials cannot insert a session afterwards, see startIfCurrent) and
   * revokes the user's sessions but `exceptSessionId`. Runs in the caller's transaction, which also makes
   * the change itself (new password, disable, ...): the change and the end of the sessions are one
   * commit. Returns how many sessions were ended.
   */
  async endForCredentialChange(tx: Pick<Database, 'user' | 'session'>, userId: string, reason: string, exceptSessionId?: string): Promise<number> {
    // updateMany: a user deleted meanwhile is not an error here; there is nothing left to protect.
    await tx.user.updateMany({ where: { id: userId }, data: { credentialsVersion: { increment: 1 } } });
    return this.revokeAllForUser(userId, reason, exceptSessionId, tx);
  }

  /** Logout everywhere: ends every session of the user, and any login racing it, in one commit. */
  async endAllForUser(userId: string, reason: string): Promise<number> {
    return this.db.$transaction((tx) => this.endForCredentialChange(tx, userId, reason));
  }

  /** Whether a session of the user is still in force (not revoked) as `db` sees it, e.g. inside a transaction. */
  async isInForce(sessionId: string, userId: string, db: Pick<Database, 'session'> = this.db): Promise<boolean> {
    const session = await db.session.findUnique({ where: { id: sessionId }, select: { userId: true, revokedAt: true, expiresAt: true } });
    return session !== null && session.userId === userId && session.revokedAt === null && session.expiresAt.getTime() > this.clock.now();
  }

  /** The user's sessions that can still be refreshed, newest first. */
  async listActive(userId: string): Promise<SessionRecord[]> {
    const now = this.clock.now();
    const sessions = await this.db.session.findMany({
      where: { userId, revokedAt: null, expiresAt: { gt: new Date(now) }, lastUsedAt: { gt: new Date(now - this.settings.idleTimeoutMs) } },
      orderBy: { createdAt: 'desc' },
    });
    return sessions;
  }

  /** Deletes sessions that can never be used again (revoked, expired or idle too long). */
  async purgeEnded(): Promise<number> {
    const now = this.clock.now();
    const { count } = await this.db.session.deleteMany({
      where: {
        OR: [
          { revokedAt: { not: null } },
          { expiresAt: { lte: new Date(now) } },
          { lastUsedAt: { lte: new Date(now - this.settings.idleTimeoutMs) } },
        ],
      },
    });
    return count;
  }

  #load(sessionId: string) {
    return this.db.session.findUnique({ where: { id: sessionId } });
  }

  #remember(session: SessionRecord): SessionState {
    return this.#keep(session.id, this.#stateOf(session));
  }

  /** Caches a session's state unless this process already ended it: ENDED is final. Returns what is cached. */
  #keep(sessionId: string, state: SessionState): SessionState {
    const cached = this.#states.peek(sessionId);
    if (cached?.ended) return cached;
    this.#states.set(sessionId, state);
    return state;
  }

  #stateOf(session: SessionRecord): SessionState {
    return {
      userId: session.userId,
      ended: session.revokedAt !== null,
      expiresAt: session.expiresAt.getTime(),
      idleDeadline: session.lastUsedAt.getTime() + this.settings.idleTimeoutMs,
      counter: session.refreshCounter,
    };
  }

  #mac(sessionId: string, counter: number): Buffer {
    return createHmac('sha256', this.#refreshKey).update(`${sessionId}.${counter}`).digest();
  }

  #tokenFor(sessionId: string, counter: number): string {
    return `${TOKEN_PREFIX}${sessionId}.${counter}.${this.#mac(sessionId, counter).toString('base64url')}`;
  }

  #parse(token: string): { sessionId: string; counter: number } | null {
    if (token.length > MAX_REFRESH_TOKEN_LENGTH) return null;
    const match = REFRESH_TOKEN_PATTERN.exec(token);
    if (!match) return null;
    const [, sessionId, counterText, macText] = match as unknown as [string, string, string, string];
    const counter = Number(counterText);
    // Compared as text, not decoded: base64 has several spellings of the same bytes (the last character's
    // spare bits), and only the one we issued is a token.
    const presentedMac = Buffer.from(macText);
    const expectedMac = Buffer.from(this.#mac(sessionId, counter).toString('base64url'));
    if (presentedMac.length !== expectedMac.length || !timingSafeEqual(presentedMac, expectedMac)) return null;
    return { sessionId, counter };
  }
}
