import { NO_STORE_OBSERVER, type StoreObserver } from '../observer.js';
import { Prisma } from '../generated/sqlite/client.js';
import type { StoreClient } from '../store-client.js';
import { GroupCommit } from '../group-commit.js';
import { type PreparedStatements, type SqlArgument, sqliteTimestamp } from '../prepared-statements.js';

export interface RotationClaim {
  readonly sessionId: string;
  /** The generation the presented token carries; the rotation succeeds only if it is still current. */
  readonly counter: number;
}

/** When the winning rotation was written; null when the claim lost (already rotated, revoked or expired). */
export type RotationOutcome = { readonly rotatedAt: Date } | null;

// Bounds one statement's size: two parameters per claim, far below SQLite's and PostgreSQL's parameter
// limits. A batch this size already shares one commit among hundreds of clients.
const MAX_BATCH = 500;

type RotatedRow = { id: string; refreshCounter: number };

/**
 * Refresh-token rotations, written in groups (group-commit.ts). Every rotation is a compare-and-set on
 * the session's generation, and a whole batch is ONE statement:
 *
 *   UPDATE Session SET refreshCounter = refreshCounter + 1, … WHERE revokedAt IS NULL AND expiresAt > now
 *     AND lastUsedAt > now - idle timeout
 *     AND (id, refreshCounter) IN (VALUES (?, ?), …) RETURNING id, refreshCounter
 *
 * One statement is one atomic commit, and its claims are acknowledged once it is durable (the adapter
 * waits for the WAL fsync, db/wal-sync.ts). The compare-and-set still decides each claim on its own
 * row. Of several claims for the same generation only the first can win; the others lose, and the
 * caller then re-reads the session and applies the grace/reuse rules.
 */
export class SessionRotations {
  readonly #batches: GroupCommit<RotationClaim, RotationOutcome>;
  readonly #prepared: PreparedStatements | undefined;
  readonly #observer: StoreObserver;

  constructor(
    private readonly prisma: Pick<StoreClient, '$queryRaw'>,
    private readonly now: () => number,
    private readonly idleTimeoutMs: number,
    { prepared, observer = NO_STORE_OBSERVER }: { readonly prepared?: PreparedStatements | undefined; readonly observer?: StoreObserver } = {},
  ) {
    this.#prepared = prepared;
    this.#observer = observer;
    this.#batches = new GroupCommit((claims) => this.#commit(claims), MAX_BATCH);
  }

  /** Claims the next generation of a session; resolves once the outcome is committed. */
  claim(sessionId: string, counter: number): Promise<RotationOutcome> {
    return this.#batches.submit({ sessionId, counter });
  }

  async #commit(claims: readonly RotationClaim[]): Promise<RotationOutcome[]> {
    this.#observer.rotationBatch(claims.length);
    // At most one generation per session can match; the same claim twice goes in once.
    const key = (sessionId: string, counter: number) => `${sessionId}.${counter}`;
    const firstClaimOf = new Map<string, RotationClaim>();
    for (const claim of claims) {
      const claimKey = key(claim.sessionId, claim.counter);
      if (!firstClaimOf.has(claimKey)) firstClaimOf.set(claimKey, claim);
    }
    const now = new Date(this.now());
    const rotated = await this.#compareAndSet(now, [...firstClaimOf.values()]);
    // The winner of a row is the claim that named the generation it had before the increment.
    const winners = new Set(rotated.map((row) => firstClaimOf.get(key(row.id, row.refreshCounter - 1))));
    const outcome = { rotatedAt: now };
    return claims.map((claim) => (winners.has(claim) ? outcome : null));
  }

  /**
   * Written as SQL rather than `updateManyAndReturn`: Prisma's query builder costs noticeably more CPU
   * per batch, all of it on the event loop. Parameters are bound, never interpolated.
   */
  async #compareAndSet(now: Date, claims: readonly RotationClaim[]): Promise<RotatedRow[]> {
    const idleCutoff = new Date(now.getTime() - this.idleTimeoutMs);
    type Row = { id: string; refreshCounter: number | bigint };
    let rows: Row[];
    if (this.#prepared?.available) {
      // The same statement as below, as a prepared statement cached per batch size (prepared-statements.ts).
      const sql = `UPDATE "Session" SET "refreshCounter" = "refreshCounter" + 1, "rotatedAt" = ?, "lastUsedAt" = ?
        WHERE "revokedAt" IS NULL AND "expiresAt" > ? AND "lastUsedAt" > ?
          AND ("id", "refreshCounter") IN (VALUES ${claims.map(() => '(?, ?)').join(', ')})
        RETURNING "id", "refreshCounter"`;
      const stamp = sqliteTimestamp(now);
      const args: SqlArgument[] = [stamp, stamp, stamp, sqliteTimestamp(idleCutoff)];
      for (const claim of claims) args.push(claim.sessionId, claim.counter);
      rows = await this.#prepared.writeReturning<Row>(sql, args);
    } else {
      // The CAST types the VALUES column for PostgreSQL, which would read an untyped parameter there as text.
      const pairs = Prisma.join(claims.map((claim) => Prisma.sql`(${claim.sessionId}, CAST(${claim.counter} AS INTEGER))`));
      rows = await this.prisma.$queryRaw<Row[]>`
        UPDATE "Session" SET "refreshCounter" = "refreshCounter" + 1, "rotatedAt" = ${now}, "lastUsedAt" = ${now}
        WHERE "revokedAt" IS NULL AND "expiresAt" > ${now} AND "lastUsedAt" > ${idleCutoff}
          AND ("id", "refreshCounter") IN (VALUES ${pairs})
        RETURNING "id", "refreshCounter"`;
    }
    return rows.map((row) => ({ id: row.id, refreshCounter: Number(row.refreshCounter) }));
  }
}
