import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { ApiTokenRecord, Database, Transaction } from '../db/database.js';
import type { ApiTokenState } from '../db/stores/api-tokens.js';
import type { Clock } from './clock.js';
import { AuthenticationError, ValidationError } from './errors.js';
import { API_SCOPES, isApiScope, type ApiScope } from './scopes.js';
import { displayTextSchema, validate } from './validation.js';

export const API_TOKEN_PREFIX = 'gat_';
// gat_ + 43 base64url characters (32 random bytes).
const API_TOKEN_PATTERN = /^gat_[A-Za-z0-9_-]{43}$/;
const LAST_USED_WRITE_INTERVAL_MS = 60_000;
const MAX_TOKENS_PER_USER = 100;

export interface CreateApiTokenRequest {
  readonly name: string;
  readonly scopes: readonly ApiScope[];
  readonly expiresInDays?: number | null;
}

export interface AuthenticatedApiToken {
  readonly id: string;
  readonly userId: string;
  readonly scopes: ReadonlySet<ApiScope>;
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

/** The grants this server knows; a scope it does not know (written by a newer version) grants nothing. */
function knownScopes(scopes: ReadonlySet<string>): ReadonlySet<ApiScope> {
  return [...scopes].every(isApiScope) ? (scopes as ReadonlySet<ApiScope>) : new Set([...scopes].filter(isApiScope));
}

/**
 * Long-lived API tokens (`gat_...`) for scripts. The secret is shown once and stored only as its SHA-256:
 * 256 random bits need no slow hash, and hashing lets a presented token be found by index, so no
 * comparison of secrets happens in application code at all. Token state is mirrored in memory by the
 * store (db/stores/api-tokens.ts), like session state.
 */
export class ApiTokenService {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  /**
   * Creates a token for `userId`, asked for from their session `sessionId`. Decided inside the insert's
   * transaction, so nothing that committed since the request was let in is missed: the session must still
   * be in force (a token minted by a session that a password change or logout just ended would outlive
   * it), the account enabled (a token born during a disable would come back on enable), the admin scope
   * only for a current administrator, and the per-user limit exact under parallel requests.
   */
  async create(userId: string, sessionId: string, input: CreateApiTokenRequest): Promise<{ token: string; record: ApiTokenRecord }> {
    const valid = validate(createSchema, input);
    const token = `${API_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const now = this.clock.now();
    const record = await this.db.transaction(async (tx) => {
      const session = await this.db.sessions.findIn(tx, sessionId);
      if (!session || session.userId !== userId || session.revokedAt) throw AuthenticationError.sessionEnded();
      const owner = await this.db.users.findIn(tx, userId);
      if (!owner || owner.disabledAt) throw AuthenticationError.accountUnavailable();
      if (valid.scopes.includes('admin') && owner.role !== 'ADMIN') {
        throw new ValidationError([{ field: 'scopes', message: 'admin is only for administrators' }]);
      }
      const count = await this.db.apiTokens.countUnrevoked(tx, userId);
      if (count >= MAX_TOKENS_PER_USER) {
        throw new ValidationError([{ field: 'input', message: `at most ${MAX_TOKENS_PER_USER} active tokens per user; revoke one first` }]);
      }
      return this.db.apiTokens.create(tx, {
        id: randomUUID(),
        userId,
        name: valid.name,
        scopes: valid.scopes,
        secretHash: hashSecret(token),
        createdAt: new Date(now),
        expiresAt: valid.expiresInDays ? new Date(now + valid.expiresInDays * 86_400_000) : null,
      });
    });
    return { token, record };
  }

  /** The caller's tokens that still work, newest first. Never includes a secret (none is stored). */
  list(userId: string): Promise<ApiTokenRecord[]> {
    return this.db.apiTokens.listWorking(userId);
  }

  /** Revokes one of the user's tokens; false when the user has no such working token. */
  revoke(userId: string, tokenId: string): Promise<boolean> {
    // Only a working token: an expired one answers false, like an unknown one (as `list` leaves it out).
    return this.db.apiTokens.revokeWorking(userId, tokenId);
  }

  /** Revokes every token of a user (account disabled or deleted), inside the change's transaction. */
  revokeAllForUser(tx: Transaction, userId: string): Promise<void> {
    return this.db.apiTokens.revokeAllForUser(tx, userId);
  }

  /** Deletes tokens that can never be used again (revoked or expired). */
  purgeEnded(): Promise<number> {
    return this.db.apiTokens.purgeEnded();
  }

  /** Resolves a presented token; throws AuthenticationError when it is unknown, revoked or expired. */
  async authenticate(token: string): Promise<AuthenticatedApiToken> {
    if (!API_TOKEN_PATTERN.test(token)) throw new AuthenticationError('malformed', 'The API token is malformed.');
    const found = await this.db.apiTokens.findBySecretHash(hashSecret(token));
    if (!found) throw new AuthenticationError('invalid', 'The API token is invalid.');
    const now = this.clock.now();
    if (found.revoked) throw new AuthenticationError('token_revoked', 'The API token has been revoked.');
    if (found.expiresAt !== null && now >= found.expiresAt) throw new AuthenticationError('expired', 'The API token has expired.');
    this.#recordUse(found, now);
    return { id: found.id, userId: found.userId, scopes: knownScopes(found.scopes) };
  }

  /** lastUsedAt is written at most once a minute per token: a busy script must not mean a write per request. */
  #recordUse(token: ApiTokenState, now: number): void {
    // Wall-clock times (the stored lastUsedAt seeds it): after the clock was set back the difference is
    // negative, and the write happens rather than waiting for the clock to catch up.
    const sinceWritten = now - token.lastUsedWrittenAt;
    if (sinceWritten >= 0 && sinceWritten < LAST_USED_WRITE_INTERVAL_MS) return;
    this.db.apiTokens.recordUse(token, now);
  }
}
