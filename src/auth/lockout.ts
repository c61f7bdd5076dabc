import { LRUCache } from 'lru-cache';
import type { Clock } from './clock.js';

export interface LockoutSettings {
  /** Failed logins before a lock. */
  readonly threshold: number;
  /** First lock's length; each further lock doubles it. */
  readonly baseDelayMs: number;
  /** Longest lock. */
  readonly maxDelayMs: number;
  /** Distinct client addresses whose failures it takes to lock an account for everybody. */
  readonly minSources: number;
  readonly maxEntries: number;
}

interface Counter {
  failures: number;
  locks: number;
  /** On the clock's monotonic reading: a wall-clock jump must neither extend nor end a lock. */
  lockedUntil: number;
  readonly sources: Set<string>;
}

const MAX_SOURCES_TRACKED = 32;

/**
 * Brute-force lockout on top of the rate limits, keyed by the login name as typed (username or email,
 * case-folded) whether or not such an account exists, so a lock tells a guesser nothing about existence.
 *
 * Two levels, so one address cannot lock a victim out:
 * - (name, address): after `threshold` failures from one address, that address is locked out of that
 *   name, with a delay doubling per lock up to `maxDelayMs`. The victim elsewhere is unaffected.
 * - name: after `threshold` failures that came from at least `minSources` addresses, the name is locked
 *   for every address (a distributed guess). The per-address rate limits bound how fast any one address
 *   contributes.
 * A successful login clears both. State is in memory, bounded (LRU), and forgotten an hour after the
 * last failure. Every duration here is monotonic time (the clock's `monotonicMs`), so setting the wall
 * clock back neither extends a lock nor keeps a counter alive longer.
 */
export class LoginLockout {
  readonly #counters: LRUCache<string, Counter>;

  constructor(
    private readonly settings: LockoutSettings,
    private readonly clock: Clock,
  ) {
    this.#counters = new LRUCache({ max: settings.maxEntries, ttl: 3_600_000, perf: { now: () => clock.monotonicMs() } });
  }

  /** Milliseconds until `name` may be tried again from `source`; 0 when it may be tried now. */
  lockedFor(name: string, source: string): number {
    const now = this.clock.monotonicMs();
    const until = Math.max(this.#counters.get(pairKey(name, source))?.lockedUntil ?? 0, this.#counters.get(nameKey(name))?.lockedUntil ?? 0);
    return Math.max(0, until - now);
  }

  recordFailure(name: string, source: string): void {
    const now = this.clock.monotonicMs();
    const pair = this.#count(pairKey(name, source), source);
    if (pair.failures >= this.settings.threshold) this.#lock(pair, now);
    const whole = this.#count(nameKey(name), source);
    if (whole.failures >= this.settings.threshold && whole.sources.size >= this.settings.minSources) this.#lock(whole, now);
  }

  recordSuccess(name: string, source: string): void {
    this.#counters.delete(pairKey(name, source));
    this.#counters.delete(nameKey(name));
  }

  #count(key: string, source: string): Counter {
    const counter = this.#counters.get(key) ?? { failures: 0, locks: 0, lockedUntil: 0, sources: new Set<string>() };
    counter.failures += 1;
    if (counter.sources.size < MAX_SOURCES_TRACKED) counter.sources.add(source);
    this.#counters.set(key, counter);
    return counter;
  }

  #lock(counter: Counter, now: number): void {
    const delay = Math.min(this.settings.maxDelayMs, this.settings.baseDelayMs * 2 ** counter.locks);
    counter.locks += 1;
    counter.lockedUntil = now + delay;
  }
}

const nameKey = (name: string) => `n\u0000${name}`;
const pairKey = (name: string, source: string) => `p\u0000${name}\u0000${source}`;
