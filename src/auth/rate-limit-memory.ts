import { LRUCache } from 'lru-cache';
import type { Clock } from './clock.js';

interface Window {
  calls: number;
  /** On the clock's monotonic reading: a wall-clock jump neither extends nor ends a window. */
  readonly endsAt: number;
}

/**
 * Fixed-window counters in this process, the same algorithm as rate-limiter-flexible's Redis limiter
 * (the first call opens a window of `windowMs`; at most `max` calls are admitted until it ends).
 *
 * Not rate-limiter-flexible's RateLimiterMemory: that keeps every key in an unbounded Map with a timer
 * each and reads the wall clock, so a flood of fresh keys grows memory without limit and setting the
 * clock ends or extends windows. This map holds at most `maxKeys` windows (the least recently used go
 * first) on the monotonic clock. Check and count are one synchronous step, so a parallel burst admits
 * exactly `max`. Refused calls are not counted: they cannot lengthen the window anyway.
 */
export class MemoryRateWindows {
  readonly #windows: LRUCache<string, Window>;

  constructor(
    maxKeys: number,
    private readonly clock: Clock,
  ) {
    // Expired windows are dropped lazily (on access or by eviction): no timer per key.
    this.#windows = new LRUCache({ max: maxKeys, ttlAutopurge: false, perf: { now: () => clock.monotonicMs() } });
  }

  get size(): number {
    return this.#windows.size;
  }

  /** Counts one call; returns 0 when admitted, else the milliseconds until the window ends. */
  take(key: string, max: number, windowMs: number): number {
    const now = this.clock.monotonicMs();
    const window = this.#windows.get(key);
    if (window === undefined || window.endsAt <= now) {
      this.#windows.set(key, { calls: 1, endsAt: now + windowMs }, { ttl: windowMs });
      return 0;
    }
    if (window.calls >= max) return window.endsAt - now;
    window.calls += 1;
    return 0;
  }
}
