import DataLoader from 'dataloader';
import type { Database } from '../db/client.js';
import type { Clock } from './clock.js';

export interface RotationClaim {
  readonly sessionId: string;
  /** The generation the presented token carries; the rotation succeeds only if it is still current. */
  readonly counter: number;
}

/** When the winning rotation was written; null when the claim lost (already rotated, revoked or expired). */
export type RotationOutcome = { readonly rotatedAt: Date } | null;

// SQLite allows 32,766 bound parameters per statement; each claim uses two. Far below, and a batch this
// size is already one fsync shared by hundreds of clients.
const MAX_BATCH = 500;
// How many event-loop turns a batch may keep gathering claims while more keep arriving.
const MAX_GATHER_TURNS = 4;

/**
 * Group commit for refresh-token rotations.
 *
 * Every rotation is a compare-and-set on the session's generation, and each used to be its own
 * statement, its own commit and (with SQLITE_SYNCHRONOUS=FULL) its own fsync, all on the event loop.
 * Claims are gathered for as long as more keep arriving, one event-loop turn at a time (setImmediate:
 * each turn's poll phase reads the requests that came in meanwhile), at most MAX_GATHER_TURNS turns, and
 * written as ONE statement:
 *
 *   UPDATE Session SET refreshCounter = refreshCounter + 1, … WHERE revokedAt IS NULL AND expiresAt > now
 *     AND ((id = ? AND refreshCounter = ?) OR …) RETURNING id
 *
 * One statement is one atomic commit, so a claim is acknowledged only once it is durable, exactly as
 * before; the compare-and-set still decides each claim on its own row. Two claims for the same session
 * in one batch would both see their row in RETURNING, so only the first is put in the statement and
 * the others lose (the caller then re-reads the session and applies the grace/reuse rules).
 */
export class RotationCommitter {
  readonly #loader: DataLoader<RotationClaim, RotationOutcome>;
  /** Claims made since the current batch began gathering. */
  #gathered = 0;

  constructor(
    private readonly db: Pick<Database, 'session'>,
    private readonly clock: Clock,
  ) {
    this.#loader = new DataLoader((claims) => this.#commit(claims), {
      cache: false,
      maxBatchSize: MAX_BATCH,
      batchScheduleFn: (run) => this.#gather(run),
    });
  }

  /** Claims the next generation of a session; resolves once the outcome is committed. */
  claim(sessionId: string, counter: number): Promise<RotationOutcome> {
    this.#gathered++;
    return this.#loader.load({ sessionId, counter });
  }

  /**
   * Waiting a turn costs microseconds when the server is idle (nothing to poll) and gathers the requests
   * already queued when it is busy: the busier the server, the larger the batch, the fewer the commits.
   */
  #gather(run: () => void): void {
    let seen = 0;
    let turns = 0;
    const check = () => {
      if (this.#gathered === seen || ++turns >= MAX_GATHER_TURNS) {
        this.#gathered = 0;
        run();
        return;
      }
      seen = this.#gathered;
      setImmediate(check);
    };
    setImmediate(check);
  }

  async #commit(claims: readonly RotationClaim[]): Promise<RotationOutcome[]> {
    const firstClaimOf = new Map<string, RotationClaim>();
    for (const claim of claims) if (!firstClaimOf.has(claim.sessionId)) firstClaimOf.set(claim.sessionId, claim);
    const now = new Date(this.clock.now());
    const rotated = await this.db.session.updateManyAndReturn({
      where: {
        revokedAt: null,
        expiresAt: { gt: now },
        OR: [...firstClaimOf.values()].map((claim) => ({ id: claim.sessionId, refreshCounter: claim.counter })),
      },
      data: { refreshCounter: { increment: 1 }, rotatedAt: now, lastUsedAt: now },
      select: { id: true },
    });
    const won = new Set(rotated.map((row) => row.id));
    const outcome = { rotatedAt: now };
    return claims.map((claim) => (won.has(claim.sessionId) && firstClaimOf.get(claim.sessionId) === claim ? outcome : null));
  }
}
