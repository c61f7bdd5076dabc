import { NO_STORE_OBSERVER, type StoreObserver } from '../observer.js';
import { LRUCache } from 'lru-cache';
import type { Change } from '../change-feed/changes.js';
import type { ChangeFeed, MirroredCache } from '../change-feed/feed.js';
import type { StoreClock } from '../clock.js';
import { cannotBeStored, type ApiTokenRecord } from '../records.js';
import type { StoreClient } from '../store-client.js';
import { prismaIn, type Transaction } from '../transaction.js';

export interface NewApiToken {
  readonly id: string;
  readonly userId: string;
  readonly name: string;
  readonly scopes: readonly string[];
  readonly secretHash: string;
  readonly createdAt: Date;
  readonly expiresAt: Date | null;
}

/** A token's state as mirrored in memory, found by the hash of its secret. */
export interface ApiTokenState {
  readonly id: string;
  readonly userId: string;
  readonly scopes: ReadonlySet<string>;
  readonly expiresAt: number | null;
  readonly revoked: boolean;
  /** When lastUsedAt was last written, as far as this process knows (wall-clock ms; 0 for never). */
  readonly lastUsedWrittenAt: number;
}

type MutableState = { -readonly [K in keyof ApiTokenState]: ApiTokenState[K] };

// Cached in place of a token this process revoked. Revocation is final; nothing may overwrite this entry
// with an older, still-valid reading.
const revokedState = (): MutableState => ({ id: '', userId: '', scopes: new Set(), expiresAt: null, revoked: true, lastUsedWrittenAt: 0 });

/** How the stored column spells scopes: space-separated. */
export const scopesOf = (token: Pick<ApiTokenRecord, 'scopes'>): string[] => token.scopes.split(' ').filter(Boolean);

/**
 * API tokens: every query, and the in-memory mirror of their state, which every write here keeps right.
 * Revocations are announced on the change feed, which drops the mirrored state in every other process;
 * while the feed is not live every use reads the row again.
 */
export class ApiTokenStore implements MirroredCache {
  readonly #cache: LRUCache<string, MutableState>;
  /** Moves on with every dropped entry: a read that began before must not mirror its (possibly older) row. */
  #generation = 0;
  readonly #observer: StoreObserver;

  constructor(
    private readonly prisma: StoreClient,
    private readonly clock: StoreClock,
    private readonly feed: ChangeFeed,
    {
      cache = { maxEntries: 10_000, ttlMs: 30_000 },
      observer = NO_STORE_OBSERVER,
    }: { readonly cache?: { maxEntries: number; ttlMs: number }; readonly observer?: StoreObserver } = {},
  ) {
    this.#observer = observer;
    feed.register(this);
    // Lifetime in monotonic time: setting the wall clock back must not keep a revoked token cached.
    this.#cache = new LRUCache({ max: cache.maxEntries, ttl: cache.ttlMs, ttlAutopurge: false, perf: { now: () => clock.monotonicMs() } });
  }

  async create(tx: Transaction, token: NewApiToken): Promise<ApiTokenRecord> {
    return prismaIn(tx).apiToken.create({ data: { ...token, scopes: [...new Set(token.scopes)].join(' ') } });
  }

  /** The row as `tx` sees it. */
  async findIn(tx: Transaction, id: string): Promise<ApiTokenRecord | null> {
    if (cannotBeStored(id)) return null;
    return prismaIn(tx).apiToken.findUnique({ where: { id } });
  }

  /** How many tokens of the user are not revoked (expired ones count until purged). */
  countUnrevoked(tx: Transaction, userId: string): Promise<number> {
    return prismaIn(tx).apiToken.count({ where: { userId, revokedAt: null } });
  }

  /** The user's tokens that still work, newest first. */
  listWorking(userId: string): Promise<ApiTokenRecord[]> {
    return this.prisma.apiToken.findMany({
      where: { userId, revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: new Date(this.clock.now()) } }] },
      orderBy: { createdAt: 'desc' },
    });
  }

  /** Revokes one of the user's tokens if it still works; false when the user has no such working token. */
  async revokeWorking(userId: string, tokenId: string): Promise<boolean> {
    if (cannotBeStored(tokenId)) return false;
    const now = new Date(this.clock.now());
    const token = await this.prisma.apiToken.findFirst({
      where: { id: tokenId, userId, revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] },
      select: { secretHash: true },
    });
    if (!token) return false;
    const { count } = await this.feed.write(
      this.prisma,
      (client) => client.apiToken.updateMany({ where: { id: tokenId, revokedAt: null }, data: { revokedAt: now } }),
      // Announced by the secret's hash, under which every process mirrors the token: one look-up to drop it.
      (revoked) => (revoked.count === 1 ? { kind: 'apiToken', id: token.secretHash } : null),
    );
    this.#cache.set(token.secretHash, revokedState());
    return count === 1;
  }

  /** Revokes every token of a user (account disabled or deleted). */
  async revokeAllForUser(tx: Transaction, userId: string): Promise<void> {
    const prisma = prismaIn(tx);
    const tokens = await prisma.apiToken.findMany({ where: { userId, revokedAt: null }, select: { secretHash: true } });
    // Marked revoked before the commit: this holds even if the transaction rolls back, the safe direction.
    for (const { secretHash } of tokens) this.#cache.set(secretHash, revokedState());
    await prisma.apiToken.updateMany({ where: { userId, revokedAt: null }, data: { revokedAt: new Date(this.clock.now()) } });
    await this.feed.announceIn(tx, { kind: 'userAccess', id: userId });
  }

  /** For the change feed: another process revoked a token, or changed its owner. */
  forget(change: Change): void {
    if (change.kind !== 'apiToken' && change.kind !== 'userAccess') return;
    this.#generation++;
    if (change.kind === 'apiToken') {
      if (this.#cache.peek(change.id)?.revoked === false) this.#cache.delete(change.id);
      return;
    }
    // A rare event (every token of the user ended: a disable, a delete): a walk beats an index per user.
    for (const [secretHash, state] of this.#cache.entries()) if (!state.revoked && state.userId === change.id) this.#cache.delete(secretHash);
  }

  forgetAll(): void {
    this.#generation++;
    // This process's own revocations stay: they are final.
    for (const [secretHash, state] of this.#cache.entries()) if (!state.revoked) this.#cache.delete(secretHash);
  }

  /** Deletes tokens that can never be used again (revoked or expired); returns how many. */
  async purgeEnded(): Promise<number> {
    const { count } = await this.prisma.apiToken.deleteMany({
      where: { OR: [{ revokedAt: { not: null } }, { expiresAt: { lte: new Date(this.clock.now()) } }] },
    });
    return count;
  }

  /** The token with this secret hash, from memory or read once and mirrored; null when there is none. */
  async findBySecretHash(secretHash: string): Promise<ApiTokenState | null> {
    if (cannotBeStored(secretHash)) return null;
    const cached = this.#cache.get(secretHash);
    const usable = cached && (cached.revoked || this.feed.trusted);
    this.#observer.cacheLookup('api_tokens', usable ? 'hit' : this.feed.trusted ? 'miss' : 'bypass');
    if (usable) return cached;
    const generation = this.#generation;
    const record = await this.prisma.apiToken.findUnique({ where: { secretHash } });
    if (!record) return null;
    // A parallel request read the row meanwhile and mirrored it (or this process revoked the token): that
    // entry stays, with the use it may already have recorded, or each parallel request would write lastUsedAt.
    // Without a live feed the row just read decides whether the token still works.
    const existing = this.#cache.peek(secretHash);
    if (existing) {
      if (record.revokedAt !== null) existing.revoked = true;
      return existing;
    }
    const state: MutableState = {
      id: record.id,
      userId: record.userId,
      scopes: new Set(scopesOf(record)),
      expiresAt: record.expiresAt?.getTime() ?? null,
      revoked: record.revokedAt !== null,
      lastUsedWrittenAt: record.lastUsedAt?.getTime() ?? 0,
    };
    // Kept while untrusted too (only to remember lastUsedAt writes): a read never returns it then.
    if (generation === this.#generation) this.#cache.set(secretHash, state);
    return state;
  }

  /**
   * Records that the token was used at `now` (wall-clock ms). The mirrored state knows at once, so
   * parallel requests do not write it again; the write itself is best effort and not awaited.
   */
  recordUse(token: ApiTokenState, now: number): void {
    (token as MutableState).lastUsedWrittenAt = now;
    this.prisma.apiToken.update({ where: { id: token.id }, data: { lastUsedAt: new Date(now) } }).catch(() => {
      // A lost timestamp (e.g. the token was deleted meanwhile) must not fail the request.
    });
  }
}
