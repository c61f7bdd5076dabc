import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Database, SessionRecord, Transaction, UserRecord } from '../db/database.js';
import type { NewSession, SessionSnapshot } from '../db/stores/sessions.js';
import type { Clock } from './clock.js';
import { InvalidRefreshTokenError } from './errors.js';

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
  /** Seconds the refresh token can be used, unless exchanged or ended sooner: to the idle timeout or the absolute end, whichever comes first. */
  readonly refreshTokenExpiresIn: number;
}

/**
 * What a logout by refresh token did. `reused`: the token was an exchanged one (not the previous one
 * inside the grace window); its session was ended as refresh's reuse detection ends it.
 */
export type RefreshLogout =
  | { readonly outcome: 'ended' | 'ended_all' | 'reused'; readonly userId: string }
  | { readonly outcome: 'not_active'; readonly userId: null };

/** A rotation's result, with the session's owner as checked for it (active, not disabled). */
export interface RotatedSession extends IssuedSession {
  readonly user: UserRecord;
}

export type SessionStatus = 'active' | 'ended';

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

  constructor(
    private readonly db: Database,
    private readonly settings: SessionSettings,
    refreshKey: Buffer,
    private readonly clock: Clock,
  ) {
    this.#refreshKey = refreshKey;
  }

  /** Creates a session, inside `tx`, for a user who just proved who they are. */
  async start(tx: Transaction, userId: string, meta: ClientMeta): Promise<IssuedSession> {
    const session = await this.db.sessions.create(tx, this.#newSession(userId, meta));
    return this.#issued(session.id, session.expiresAt.getTime());
  }

  /**
   * Starts a session for a login whose password was checked against `verifiedVersion` of the user's
   * credentials, in one commit that first re-checks the account: if a password change, disable,
   * deletion or logout-everywhere committed after the check, no session is inserted and the reason is
   * returned instead. Transactions behave as if run one at a time (Database.transaction), and the store
   * makes the check and the insert one commit (SessionStore.createIfCredentialsCurrent), so a change
   * either committed before it (and the version moved) or commits after it (and ends this session).
   */
  async startIfCurrent(userId: string, meta: ClientMeta, verifiedVersion: number): Promise<IssuedSession | 'disabled' | 'credentials_changed'> {
    const created = await this.db.sessions.createIfCredentialsCurrent(this.#newSession(userId, meta), verifiedVersion);
    return typeof created === 'string' ? created : this.#issued(created.id, created.expiresAt.getTime());
  }

  #newSession(userId: string, meta: ClientMeta): NewSession {
    const now = this.clock.now();
    return {
      id: randomUUID(),
      userId,
      createdAt: new Date(now),
      expiresAt: new Date(now + this.settings.absoluteLifetimeMs),
      userAgent: meta.userAgent?.slice(0, MAX_USER_AGENT_LENGTH) ?? null,
      ip: meta.ip,
    };
  }

  #issued(sessionId: string, expiresAt: number): IssuedSession {
    const now = this.clock.now();
    return { sessionId, refreshToken: this.#tokenFor(sessionId, 0), refreshTokenExpiresIn: this.#secondsLeft(expiresAt, now, now) };
  }

  /** Seconds a token of a session last used at `lastUsedAt` can still be used (idle timeout, absolute end). */
  #secondsLeft(expiresAt: number, lastUsedAt: number, now: number): number {
    return Math.max(0, Math.floor((Math.min(expiresAt, lastUsedAt + this.settings.idleTimeoutMs) - now) / 1000));
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

    // The usual case, from memory: the current token of a live session, or a newer generation than this
    // process saw (another instance rotated it last), tried as it is: the compare-and-set in the database
    // decides either way, so a stale memory cannot make a rotation win. Anything else (or a lost
    // compare-and-set) reads the row and applies the rules below.
    const known = this.db.sessions.cached(sessionId);
    if (known && counter >= known.refreshCounter && this.#isLive(known, this.clock.now())) {
      const owner = await this.#activeOwner(known.userId);
      const won = owner ? await this.db.sessions.claimRotation({ sessionId, userId: known.userId, expiresAt: known.expiresAt, refreshCounter: counter }) : null;
      if (owner && won) return this.#rotated(sessionId, owner, counter, known.expiresAt);
    }

    let session = await this.db.sessions.find(sessionId);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (!session) throw new InvalidRefreshTokenError('REFRESH_TOKEN_INVALID');
      const now = this.clock.now();
      if (session.revokedAt) throw new InvalidRefreshTokenError('REFRESH_TOKEN_REVOKED');
      const owner = await this.#activeOwner(session.userId);
      if (!owner) {
        await this.revoke(session.id, 'user_disabled');
        throw new InvalidRefreshTokenError('REFRESH_TOKEN_REVOKED');
      }
      if (!this.#isLive({ ended: false, expiresAt: session.expiresAt.getTime(), lastUsedAt: session.lastUsedAt.getTime() }, now))
        throw new InvalidRefreshTokenError('REFRESH_TOKEN_EXPIRED');

      if (counter === session.refreshCounter) {
        // Compare-and-set on the generation: of parallel rotations of the same token exactly one wins.
        const won = await this.db.sessions.claimRotation({
          sessionId: session.id,
          userId: session.userId,
          expiresAt: session.expiresAt.getTime(),
          refreshCounter: counter,
        });
        if (won) return this.#rotated(session.id, owner, counter, session.expiresAt.getTime());
        session = await this.db.sessions.find(session.id);
        continue;
      }

      // rotatedAt is a stored wall-clock time (another process may have written it), so this is a wall
      // clock difference. Negative means the clock went back since the rotation: nothing says the grace
      // is still running, so it is not (reuse, the safe side; a racing tab at worst logs in again).
      const isPrevious = counter === session.refreshCounter - 1;
      const sinceRotation = now - session.rotatedAt.getTime();
      if (isPrevious && sinceRotation >= 0 && sinceRotation < this.settings.reuseGraceMs) {
        return {
          sessionId: session.id,
          user: owner,
          refreshToken: this.#tokenFor(session.id, session.refreshCounter),
          // The current token's life started at its rotation.
          refreshTokenExpiresIn: this.#secondsLeft(session.expiresAt.getTime(), session.lastUsedAt.getTime(), now),
        };
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

  #rotated(sessionId: string, owner: UserRecord, counter: number, expiresAt: number): RotatedSession {
    const now = this.clock.now();
    return { sessionId, user: owner, refreshToken: this.#tokenFor(sessionId, counter + 1), refreshTokenExpiresIn: this.#secondsLeft(expiresAt, now, now) };
  }

  /**
   * Logout by refresh token (e.g. from an httpOnly cookie, after the access token expired): ends the
   * token's session, or with `everywhere` every session of its user. Never rotates: the token stays what
   * it was, so reuse detection is unchanged.
   *
   * The current token, or the previous one inside the grace window (a tab that lost a refresh race), ends
   * the session as asked. An older, exchanged token is what refresh treats as reuse: its session ends
   * (reason refresh_token_reused), but never every session of the user, so a copied old token gains no
   * more at logout than at refresh. Unknown, forged, expired or already ended: nothing to end.
   */
  async endByRefreshToken(refreshToken: string, everywhere: boolean): Promise<RefreshLogout> {
    const nothing = { outcome: 'not_active', userId: null } as const;
    const presented = this.#parse(refreshToken);
    if (!presented) return nothing;
    const session = await this.db.sessions.find(presented.sessionId);
    const now = this.clock.now();
    if (!session || session.revokedAt) return nothing;
    if (!this.#isLive({ ended: false, expiresAt: session.expiresAt.getTime(), lastUsedAt: session.lastUsedAt.getTime() }, now)) return nothing;
    const { counter } = presented;
    const sinceRotation = now - session.rotatedAt.getTime();
    const inGrace = counter === session.refreshCounter - 1 && sinceRotation >= 0 && sinceRotation < this.settings.reuseGraceMs;
    if (counter === session.refreshCounter || inGrace) {
      if (everywhere) {
        await this.endAllForUser(session.userId, 'logout_all');
        return { outcome: 'ended_all', userId: session.userId };
      }
      return (await this.revoke(session.id, 'logout')) ? { outcome: 'ended', userId: session.userId } : nothing;
    }
    if (counter < session.refreshCounter) {
      return (await this.revoke(session.id, 'refresh_token_reused')) ? { outcome: 'reused', userId: session.userId } : nothing;
    }
    // A generation from the future: not one we issued (see rotate).
    return nothing;
  }

  #isLive(state: Pick<SessionSnapshot, 'ended' | 'expiresAt' | 'lastUsedAt'>, now: number): boolean {
    return !state.ended && now < state.expiresAt && now < state.lastUsedAt + this.settings.idleTimeoutMs;
  }

  /** The session's owner if they may still use it: the account exists and is not disabled. */
  async #activeOwner(userId: string): Promise<UserRecord | null> {
    const owner = await this.db.users.findCached(userId);
    return owner && !owner.disabledAt ? owner : null;
  }

  /** Whether an access token of this session may still be honoured. No database read when cached. */
  async status(sessionId: string, userId: string): Promise<SessionStatus> {
    const state = await this.db.sessions.snapshot(sessionId);
    if (!state || state.userId !== userId || !this.#isLive(state, this.clock.now())) return 'ended';
    return 'active';
  }

  /** Ends one session (of `userId`, if given); returns false if it did not exist or was already ended. */
  revoke(sessionId: string, reason: string, userId?: string): Promise<boolean> {
    return this.db.sessions.revoke(sessionId, reason, userId);
  }

  /**
   * The end of every session born from the user's current credentials: bumps `credentialsVersion` (so a
   * login checked against the old credentials cannot insert a session afterwards, see startIfCurrent) and
   * revokes the user's sessions but `exceptSessionId`. Runs in the caller's transaction, which also makes
   * the change itself (new password, disable, ...): the change and the end of the sessions are one
   * commit. Returns how many sessions were ended.
   */
  async endForCredentialChange(tx: Transaction, userId: string, reason: string, exceptSessionId?: string): Promise<number> {
    await this.db.users.bumpCredentialsVersion(tx, userId);
    return this.db.sessions.revokeAllForUser(tx, userId, reason, exceptSessionId);
  }

  /** Logout everywhere: ends every session of the user, and any login racing it, in one commit. */
  async endAllForUser(userId: string, reason: string): Promise<number> {
    return this.db.transaction((tx) => this.endForCredentialChange(tx, userId, reason));
  }

  /** Whether a session of the user is still in force (not revoked, not expired) as `tx` sees it. */
  async isInForce(tx: Transaction, sessionId: string, userId: string): Promise<boolean> {
    const session = await this.db.sessions.findIn(tx, sessionId);
    return session !== null && session.userId === userId && session.revokedAt === null && session.expiresAt.getTime() > this.clock.now();
  }

  /** The user's sessions that can still be refreshed, newest first. */
  listActive(userId: string): Promise<SessionRecord[]> {
    return this.db.sessions.listActive(userId);
  }

  /** Deletes sessions that can never be used again (revoked, expired or idle too long). */
  purgeEnded(): Promise<number> {
    return this.db.sessions.purgeEnded();
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
