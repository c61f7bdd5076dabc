import type { Identity, Store } from 'graphql-rate-limit';
import { LRUCache } from 'lru-cache';

/**
 * In-process store for graphql-rate-limit that fixes the bundled InMemoryStore's three problems:
 * - it copied its whole state on every call; this is an LRU map, O(1) per call;
 * - it never forgot anyone; this holds at most `maxIdentities` (least recently used go first) and an
 *   entry expires with the window of its newest call;
 * - its get→set pair was not atomic, so a parallel burst all read "0 calls so far"; here a get holds
 *   the identity until the matching set, and other calls for the same identity wait their turn.
 *
 * The lock relies on graphql-rate-limit always following getForIdentity with setForIdentity, which it
 * does unless a rule is `readOnly` — RateLimiter never uses that option.
 */
export class BoundedMemoryStore implements Store {
  private readonly logs: LRUCache<string, readonly number[]>;
  /** Identities whose get→set is in progress, each with the calls queued behind it. */
  private readonly inFlight = new Map<string, Array<() => void>>();

  constructor(options: { maxIdentities: number }) {
    // Expired entries are dropped lazily on access or by LRU eviction: no timer per entry.
    this.logs = new LRUCache({ max: options.maxIdentities, ttlAutopurge: false });
  }

  get size(): number {
    return this.logs.size;
  }

  async getForIdentity(identity: Identity): Promise<readonly number[]> {
    const key = keyOf(identity);
    const queue = this.inFlight.get(key);
    if (queue) await new Promise<void>((resolve) => queue.push(resolve));
    else this.inFlight.set(key, []);
    const log = this.logs.get(key) ?? [];
    // graphql-rate-limit stamps calls with the wall clock. After it went back, a call stamped "in the
    // future" would count for the window plus the jump: counted from now instead, it ends a window from now.
    const now = Date.now();
    return log.some((time) => time > now) ? log.map((time) => Math.min(time, now)) : log;
  }

  setForIdentity(identity: Identity, timestamps: readonly number[], windowMs?: number): void {
    const key = keyOf(identity);
    if (timestamps.length === 0) this.logs.delete(key);
    else {
      // The entry is useless once its newest call has left the window.
      const ttl = windowMs === undefined ? undefined : Math.max(1, Math.max(...timestamps) + windowMs - Date.now());
      this.logs.set(key, timestamps, { ttl });
    }
    this.handOver(key);
  }

  /** Milliseconds until the oldest call in the window expires and a new one would be admitted. */
  msUntilSlotFrees(identity: Identity, windowMs: number): number {
    const oldest = this.logs.peek(keyOf(identity))?.[0];
    return oldest === undefined ? 0 : Math.max(0, oldest + windowMs - Date.now());
  }

  private handOver(key: string): void {
    const queue = this.inFlight.get(key);
    if (!queue) return;
    const next = queue.shift();
    if (next) next();
    else this.inFlight.delete(key);
  }
}

function keyOf(identity: Identity): string {
  return `${identity.fieldIdentity}\u0000${identity.contextIdentity}`;
}
