import { LRUCache } from 'lru-cache';
import type { Clock } from './clock.js';
import { InvalidCredentialsError } from './errors.js';

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
  /** Password checks begun and not yet finished: each may still turn out a failure. */
  inFlight: number;
  locks: number;
  /** On the clock's monotonic reading: a wall-clock jump must neither extend nor end a lock. */
  lockedUntil: number;
  readonly sources: Set<string>;
}

export const MAX_SOURCES_TRACKED = 32;

// What a check refused only because others are still running is told to wait: they end within a hash.
export const IN_FLIGHT_RETRY_MS = 1000;

/** How long lockout state outlives the last failure (LOCKOUT_MAX_SECONDS is capped to fit in it). */
export const LOCKOUT_STATE_TTL_MS = 3_600_000;

/** A password check let through by beginAttempt; finishAttempt must be called with its outcome. */
export interface LockoutAttempt {
  readonly name: string;
  readonly source: string;
}

export type AttemptOutcome = 'success' | 'failure' | 'abandoned';

/**
 * What AccountService asks before and after every password check. Two implementations with the same
 * rules: MemoryLoginLockout (one process) and SharedLoginLockout (lockout-shared.ts, all instances
 * through Redis).
 */
export interface LoginLockout {
  /**
   * Lets one password check for `name` from `source` begin, or refuses it: `{ retryAfterMs }` while the
   * name is locked, or while the checks already running could bring it to the threshold.
   */
  beginAttempt(name: string, source: string): Promise<LockoutAttempt | { readonly retryAfterMs: number }>;
  /**
   * Ends a check begun with beginAttempt. A failure counts (and may lock); a success clears the name; an
   * abandoned check (the hash itself failed) counts for nothing.
   */
  finishAttempt(attempt: LockoutAttempt, outcome: AttemptOutcome): Promise<void>;
}

/**
 * Brute-force lockout on top of the rate limits, keyed by the login name as typed (username or email,
 * case-folded) whether or not such an account exists, so a lock tells a guesser nothing about existence.
 * (AccountService passes the account id once the name is found, so username and email share a count.)
 *
 * Two levels, so one address cannot lock a victim out:
 * - (name, address): after `threshold` failures from one address, that address is locked out of that
 *   name, with a delay doubling per lock up to `maxDelayMs`. The victim elsewhere is unaffected.
 * - name: after `threshold` failures that came from at least `minSources` addresses, the name is locked
 *   for every address (a distributed guess). The per-address rate limits bound how fast any one address
 *   contributes.
 *
 * Checks still running count against the threshold as if they had failed: otherwise every guess of a
 * parallel burst passed the lock check before any of them was counted, and a burst of any size got
 * through. A check beyond the threshold while others run is refused with a short retry, not a lock, so
 * a burst of correct logins does not lock anyone out. A success clears both levels. State is in this
 * process's memory, bounded (LRU), and forgotten an hour after the last failure. Every duration here is
 * monotonic time (the clock's `monotonicMs`), so setting the wall clock back neither extends a lock nor
 * keeps a counter alive longer. SharedLoginLockout (lockout-shared.ts) keeps the same rules in Redis.
 */
export class MemoryLoginLockout implements LoginLockout {
  readonly #counters: LRUCache<string, Counter>;

  constructor(
    private readonly settings: LockoutSettings,
    private readonly clock: Clock,
  ) {
    this.#counters = new LRUCache({ max: settings.maxEntries, ttl: LOCKOUT_STATE_TTL_MS, perf: { now: () => clock.monotonicMs() } });
  }

  /** Milliseconds until `name` may be tried again from `source`; 0 when it may be tried now. */
  lockedFor(name: string, source: string): number {
    const now = this.clock.monotonicMs();
    const until = Math.max(this.#counters.get(pairKey(name, source))?.lockedUntil ?? 0, this.#counters.get(nameKey(name))?.lockedUntil ?? 0);
    return Math.max(0, until - now);
  }

  async beginAttempt(name: string, source: string): Promise<LockoutAttempt | { readonly retryAfterMs: number }> {
    return this.beginAttemptNow(name, source);
  }

  /**
   * beginAttempt without a promise. The lock test and the count are one synchronous step, so parallel
   * requests cannot all pass before any is counted.
   */
  beginAttemptNow(name: string, source: string): LockoutAttempt | { readonly retryAfterMs: number } {
    const lockedMs = this.lockedFor(name, source);
    if (lockedMs > 0) return { retryAfterMs: lockedMs };
    const pair = this.#counter(pairKey(name, source));
    const whole = this.#counter(nameKey(name));
    const { threshold, minSources } = this.settings;
    // As many checks may run at once as failures are left before a lock; after a lock ran out, one.
    const room = (counter: Counter) => counter.inFlight < Math.max(1, threshold - counter.failures);
    const wholeSources = whole.sources.size + (whole.sources.has(source) ? 0 : 1);
    if (!room(pair) || (wholeSources >= minSources && !room(whole))) return { retryAfterMs: IN_FLIGHT_RETRY_MS };
    return this.countAttempt(name, source);
  }

  /** Counts a check as running without asking whether it may run (someone else decided). */
  countAttempt(name: string, source: string): LockoutAttempt {
    for (const counter of [this.#counter(pairKey(name, source)), this.#counter(nameKey(name))]) {
      counter.inFlight += 1;
      if (counter.sources.size < MAX_SOURCES_TRACKED) counter.sources.add(source);
    }
    return { name, source };
  }

  async finishAttempt(attempt: LockoutAttempt, outcome: AttemptOutcome): Promise<void> {
    this.finishAttemptNow(attempt, outcome);
  }

  finishAttemptNow({ name, source }: LockoutAttempt, outcome: AttemptOutcome): void {
    const now = this.clock.monotonicMs();
    const pairKeyText = pairKey(name, source);
    const wholeKeyText = nameKey(name);
    const pair = this.#counter(pairKeyText);
    const whole = this.#counter(wholeKeyText);
    for (const counter of [pair, whole]) counter.inFlight = Math.max(0, counter.inFlight - 1);
    if (outcome === 'success') {
      // Cleared, but the checks still running stay counted.
      for (const counter of [pair, whole]) Object.assign(counter, { failures: 0, locks: 0, lockedUntil: 0 });
    } else if (outcome === 'failure') {
      pair.failures += 1;
      if (pair.failures >= this.settings.threshold) this.#lock(pair, now);
      whole.failures += 1;
      if (whole.failures >= this.settings.threshold && whole.sources.size >= this.settings.minSources) this.#lock(whole, now);
      // Set again: a counter is forgotten an hour after its last failure, not its first.
      this.#counters.set(pairKeyText, pair);
      this.#counters.set(wholeKeyText, whole);
    }
  }

  #counter(key: string): Counter {
    let counter = this.#counters.get(key);
    if (!counter) {
      counter = { failures: 0, inFlight: 0, locks: 0, lockedUntil: 0, sources: new Set<string>() };
      this.#counters.set(key, counter);
    }
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

/**
 * The lockout's key. Once the typed name is found, the account's id: a username and an email are two
 * spellings of one account and share one counter (and re-authentication and mailed codes, which know the
 * account, count too). A name no account has is keyed by the name as typed, so a lock says nothing about
 * existence. The prefixes keep the two kinds apart whatever is typed.
 */
export const accountLockKey = (userId: string) => `account:${userId}`;
export const nameLockKey = (typedName: string) => `name:${typedName}`;

/**
 * Runs one secret check (a password, a mailed code) under the lockout: refused with LOGIN_LOCKED while
 * `lockKey` is locked (or as many checks are already running as could lock it), otherwise counted by its
 * outcome. The client counts as its network (an IPv6 client by its prefix), else its address.
 */
export async function checkUnderLockout(
  lockout: LoginLockout,
  lockKey: string,
  client: { readonly network: string | null; readonly ip: string | null },
  check: () => Promise<boolean>,
): Promise<boolean> {
  const attempt = await lockout.beginAttempt(lockKey, client.network ?? client.ip ?? 'unknown');
  if ('retryAfterMs' in attempt) throw InvalidCredentialsError.locked(Math.ceil(attempt.retryAfterMs / 1000));
  let matches: boolean | undefined;
  try {
    matches = await check();
    return matches;
  } finally {
    await lockout.finishAttempt(attempt, matches === undefined ? 'abandoned' : matches ? 'success' : 'failure');
  }
}
