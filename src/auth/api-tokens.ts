import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import type { Database } from '../db/client.js';
import type { ApiTokenRecord } from '../db/client.js';
import type { Clock } from './clock.js';
import { AuthenticationError, ValidationError } from './errors.js';
import { API_SCOPES, isApiScope, type ApiScope } from './scopes.js';
import { displayTextSchema, validate } from './validation.js';

export const API_TOKEN_PREFIX = 'gat_';
// gat_ + 43 base64url characters (32 random bytes).
const API_TOKEN_PATTERN = /^gat_[A-Za-z0-9_-]{43}$/;
const LAST_USED_WRITE_INTERVAL_MS = 60_000;
const MAX_TOKENS_PER_USER = 100;

export interface CreateApiTokenInput {
  readonly name: string;
  readonly scopes: readonly ApiScope[];
  readonly expiresInDays?: number | null;
}

export interface AuthenticatedApiToken {
  readonly id: string;
  readonly userId: string;
  readonly scopes: ReadonlySet<ApiScope>;
}

interface CachedToken extends AuthenticatedApiToken {
  readonly expiresAt: number | null;
  readonly revoked: boolean;
  lastUsedWrittenAt: number;
}

const createSchema = z.object({
  // Shown in token lists, where a bidi override could make "ci\u202Eexe.txt" read as another name.
  name: displayTextSchema(64),
  scopes: z.array(z.enum(API_SCOPES)).min(1, 'needs at least one scope').max(API_SCOPES.length),
  expiresInDays: z.number().int().min(1, 'must be at least 1').max(3650, 'must be at most 3650').nullish(),
});

function hashSecret(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function parseScopes(stored: string): ReadonlySet<ApiScope> {
  return new Set(stored.split(' ').filter(isApiScope));
}

/**
 * Long-lived API tokens (`gat_...`) for scripts. The secret is shown once and stored only as its SHA-256:
 * 256 random bits need no slow hash, and hashing lets a presented token be found by index, so no
 * comparison of secrets happens in application code at all. Token state is cached like session state.
 */
export class ApiTokenService {
  readonly #cache: LRUCache<string, CachedToken>;

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    cache: { maxEntries: number; ttlMs: number } = { maxEntries: 10_000, ttlMs: 30_000 },
  ) {
    // Lifetime in monotonic time: setting the wall clock back must not keep a revoked token cached.
    this.#cache = new LRUCache({ max: cache.maxEntries, ttl: cache.ttlMs, ttlAutopurge: false, perf: { now: () => clock.monotonicMs() } });
  }

  /**
   * Creates a token for `userId`, asked for from their session `sessionId`. Decided inside the insert's
   * transaction, so nothing that committed since the request was let in is missed: the session must still
   * be in force (a token minted by a session that a password change or logout just ended would outlive
   * it), the account enabled (a token born during a disable would come back on enable), the admin scope
   * only for a current administrator, and the per-user limit exact under parallel requests.
   */
  async create(userId: string, sessionId: string, input: CreateApiTokenInput): Promise<{ token: string; record: ApiTokenRecord }> {
    const valid = validate(createSchema, input);
    const token = `${API_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const now = this.clock.now();
    const record = await this.db.$transaction(async (tx) => {
      const session = await tx.session.findUnique({ where: { id: sessionId }, select: { userId: true, revokedAt: true } });
      if (!session || session.userId !== userId || session.revokedAt) throw new AuthenticationError('session_ended', 'The session has ended; log in again.');
      const owner = await tx.user.findUnique({ where: { id: userId }, select: { role: true, disabledAt: true } });
      if (!owner || owner.disabledAt) throw new AuthenticationError('user_unavailable', 'The account is not available.');
      if (valid.scopes.includes('admin') && owner.role !== 'ADMIN') {
        throw new ValidationError([{ field: 'scopes', message: 'admin is only for administrators' }]);
      }
      const count = await tx.apiToken.count({ where: { userId, revokedAt: null } });
      if (count >= MAX_TOKENS_PER_USER) {
        throw new ValidationError([{ field: 'input', message: `at most ${MAX_TOKENS_PER_USER} active tokens per user; revoke one first` }]);
      }
      return tx.apiToken.create({
        data: {
          id: randomUUID(),
          userId,
          name: valid.name,
          scopes: [...new Set(valid.scopes)].join(' '),
          secretHash: hashSecret(token),
          createdAt: new Date(now),
          expiresAt: valid.expiresInDays ? new Date(now + valid.expiresInDays * 86_400_000) : null,
        },
      });
    });
    return { token, record };
  }

  /** The caller's tokens that still work, newest first. Never includes a secret (none is stored). */
  list(userId: string): Promise<ApiTokenRecord[]> {
    return this.db.apiToken.findMany({
      where: { userId, revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: new Date(this.clock.now()) } }] },
      orderBy: { createdAt: 'desc' },
    });
  }

  /** Revokes one of the user's tokens; false when the user has no such working token. */
  async revoke(userId: string, tokenId: string): Promise<boolean> {
    const now = new Date(this.clock.now());
    // Only a working token: an expired one answers false, like an unknown one (as `list` leaves it out).
    const token = await this.db.apiToken.findFirst({
      where: { id: tokenId, userId, revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] },
      select: { secretHash: true },
    });
    if (!token) return false;
    const { count } = await this.db.apiToken.updateMany({ where: { id: tokenId, revokedAt: null }, data: { revokedAt: now } });
    this.#markRevoked(token.secretHash);
    return count === 1;
  }

  /** Revokes every token of a user (account disabled or deleted). */
  async revokeAllForUser(userId: string, db: Pick<Database, 'apiToken'> = this.db): Promise<void> {
    const tokens = await db.apiToken.findMany({ where: { userId, revokedAt: null }, select: { secretHash: true } });
    for (const { secretHash } of tokens) this.#markRevoked(secretHash);
    await db.apiToken.updateMany({ where: { userId, revokedAt: null }, data: { revokedAt: new Date(this.clock.now()) } });
  }

  /** Deletes tokens that can never be used again (revoked or expired). */
  async purgeEnded(): Promise<number> {
    const { count } = await this.db.apiToken.deleteMany({
      where: { OR: [{ revokedAt: { not: null } }, { expiresAt: { lte: new Date(this.clock.now()) } }] },
    });
    return count;
  }

  /** Resolves a presented token; throws AuthenticationError when it is unknown, revoked or expired. */
  async authenticate(token: string): Promise<AuthenticatedApiToken> {
    if (!API_TOKEN_PATTERN.test(token)) throw new AuthenticationError('malformed', 'The API token is malformed.');
    const secretHash = hashSecret(token);
    let cached = this.#cache.get(secretHash);
    if (!cached) {
      const record = await this.db.apiToken.findUnique({ where: { secretHash } });
      if (!record) throw new AuthenticationError('invalid', 'The API token is invalid.');
      cached = this.#remember(secretHash, record);
    }
    const now = this.clock.now();
    if (cached.revoked) throw new AuthenticationError('token_revoked', 'The API token has been revoked.');
    if (cached.expiresAt !== null && now >= cached.expiresAt) throw new AuthenticationError('expired', 'The API token has expired.');
    this.#recordUse(cached, now);
    return cached;
  }

  #remember(secretHash: string, record: ApiTokenRecord): CachedToken {
    const existing = this.#cache.peek(secretHash);
    if (existing?.revoked) return existing;
    const state: CachedToken = {
      id: record.id,
      userId: record.userId,
      scopes: parseScopes(record.scopes),
      expiresAt: record.expiresAt?.getTime() ?? null,
      revoked: record.revokedAt !== null,
      // Parallel first requests each read the row before any of them cached it: keep the write time one of
      // them already recorded, or each would write lastUsedAt.
      lastUsedWrittenAt: Math.max(record.lastUsedAt?.getTime() ?? 0, existing?.lastUsedWrittenAt ?? 0),
    };
    this.#cache.set(secretHash, state);
    return state;
  }

  #markRevoked(secretHash: string): void {
    // Revocation is final; nothing may overwrite this entry with an older, still-valid reading.
    this.#cache.set(secretHash, { id: '', userId: '', scopes: new Set(), expiresAt: null, revoked: true, lastUsedWrittenAt: 0 });
  }

  /** lastUsedAt is written at most once a minute per token: a busy script must not mean a write per request. */
  #recordUse(token: CachedToken, now: number): void {
    // Wall-clock times (the stored lastUsedAt seeds it): after the clock was set back the difference is
    // negative, and the write happens rather than waiting for the clock to catch up.
    const sinceWritten = now - token.lastUsedWrittenAt;
    if (sinceWritten >= 0 && sinceWritten < LAST_USED_WRITE_INTERVAL_MS) return;
    token.lastUsedWrittenAt = now;
    this.db.apiToken.update({ where: { id: token.id }, data: { lastUsedAt: new Date(now) } }).catch(() => {
      // Best effort: a lost timestamp (e.g. the token was deleted meanwhile) must not fail the request.
    });
  }
}
