import type { ChainableCommander } from 'ioredis';
import {
  type AttemptOutcome,
  IN_FLIGHT_RETRY_MS,
  LOCKOUT_STATE_TTL_MS,
  type LockoutAttempt,
  type LockoutSettings,
  type LoginLockout,
  MAX_SOURCES_TRACKED,
  type MemoryLoginLockout,
} from './lockout.js';
import type { SharedStoreStatus } from './shared-store.js';

/**
 * How long a check counts as running once begun. A check ends within one hash; this only returns the
 * slots of an instance that died in the middle of one (or lost Redis before it could say so).
 */
const IN_FLIGHT_TTL_MS = 60_000;

interface SharedAttempt extends LockoutAttempt {
  /** The in-process lockout's own attempt (it counts every check too). */
  readonly local: LockoutAttempt;
  /** Whether Redis counted this check as running, so finishing it must be told to Redis. */
  readonly shared: boolean;
}

/**
 * The login lockout of lockout.ts (same two levels, threshold, doubling delay, distinct sources and
 * running checks counted) with its state in Redis, so every instance counts the same failures and a
 * burst spread over instances gets no more than `threshold` checks through.
 *
 * Each level (the (name, address) pair and the name) has in Redis: failures, checks running, locks so
 * far (for the doubling) and the lock itself as a key that expires after the lock's length (Redis's TTL:
 * no clock of ours crosses processes). The name also has its set of distinct addresses. A check is
 * counted as running in the same MULTI that reads the failures and the locks, and given back at once
 * when that reading refuses it; a failure sets the lock before it gives back its running slot, so no
 * check can slip between "threshold reached" and "locked". Plain commands in MULTI blocks, no script.
 *
 * The in-process MemoryLoginLockout counts every check as well, but only decides while Redis does not
 * answer (SharedStoreStatus logs that once): then the lockout per account and address keeps working on
 * each instance from what that instance saw, instead of starting from nothing. While Redis answers, its
 * counts alone decide, so a success on one instance clears the name for all of them.
 */
export class SharedLoginLockout implements LoginLockout {
  readonly #prefix: string;

  constructor(
    private readonly settings: LockoutSettings,
    private readonly local: MemoryLoginLockout,
    private readonly status: SharedStoreStatus,
    keyPrefix: string,
  ) {
    this.#prefix = `${keyPrefix}lockout:`;
  }

  async beginAttempt(name: string, source: string): Promise<LockoutAttempt | { readonly retryAfterMs: number }> {
    const pair = this.#keys(pairLevel(name, source));
    const whole = this.#keys(nameLevel(name));
    const sources = this.#sourcesKey(name);
    let reply: unknown[];
    try {
      reply = await exec(
        this.status.redis
          .multi()
          .incr(pair.running)
          .pexpire(pair.running, IN_FLIGHT_TTL_MS)
          .incr(whole.running)
          .pexpire(whole.running, IN_FLIGHT_TTL_MS)
          .get(pair.failures)
          .get(whole.failures)
          .pttl(pair.lock)
          .pttl(whole.lock)
          // Added in the same step as the check: parallel checks from new addresses each see the others.
          .sadd(sources, source)
          .scard(sources)
          .pexpire(sources, LOCKOUT_STATE_TTL_MS),
      );
      this.status.noteSuccess();
    } catch (error) {
      // Redis does not answer: this instance's own counts decide.
      this.status.noteFailure(error);
      const local = this.local.beginAttemptNow(name, source);
      if ('retryAfterMs' in local) return local;
      const localOnly: SharedAttempt = { name, source, local, shared: false };
      return localOnly;
    }
    const [pairRunning, , wholeRunning, , pairFailures, wholeFailures, pairLockMs, wholeLockMs, sourceAdded, wholeSources] = reply.map(Number) as number[];
    const { threshold, minSources } = this.settings;
    // As many checks may run at once as failures are left before a lock; after a lock ran out, one.
    const room = (running: number, failures: number) => running <= Math.max(1, threshold - failures);
    const lockedMs = Math.max(pairLockMs!, wholeLockMs!, 0);
    const refusal =
      lockedMs > 0
        ? lockedMs
        : !room(pairRunning!, pairFailures!) || (wholeSources! >= minSources && !room(wholeRunning!, wholeFailures!))
          ? IN_FLIGHT_RETRY_MS
          : 0;
    // A refused check adds no address (as in memory), and the set keeps at most MAX_SOURCES_TRACKED.
    const dropSource = sourceAdded === 1 && (refusal > 0 || wholeSources! > MAX_SOURCES_TRACKED);
    if (refusal > 0) {
      await this.#release(dropSource ? this.status.redis.multi().srem(sources, source) : this.status.redis.multi(), pair.running, whole.running);
      return { retryAfterMs: refusal };
    }
    if (dropSource) await this.#ignoreOutage(this.status.redis.multi().srem(sources, source));
    // Counted in process too (not enforced while Redis answers), for the next outage.
    const counted: SharedAttempt = { name, source, local: this.local.countAttempt(name, source), shared: true };
    return counted;
  }

  async finishAttempt(attempt: LockoutAttempt, outcome: AttemptOutcome): Promise<void> {
    const { name, source, local, shared } = attempt as SharedAttempt;
    this.local.finishAttemptNow(local, outcome);
    if (!shared) return;
    const pair = this.#keys(pairLevel(name, source));
    const whole = this.#keys(nameLevel(name));
    const redis = this.status.redis;
    if (outcome === 'abandoned') return this.#release(redis.multi(), pair.running, whole.running);
    if (outcome === 'success') {
      // Cleared, but the checks still running stay counted (as in memory); the sources stay too.
      return this.#release(redis.multi().del(pair.failures, pair.locks, pair.lock, whole.failures, whole.locks, whole.lock), pair.running, whole.running);
    }
    const sources = this.#sourcesKey(name);
    let reply: unknown[];
    try {
      // The failure is counted while this check still holds its running slot: until the lock below is
      // set, the slot keeps a parallel check from seeing "one check allowed after a lock".
      reply = await exec(
        redis
          .multi()
          .incr(pair.failures)
          .get(pair.locks)
          .incr(whole.failures)
          .get(whole.locks)
          .scard(sources)
          .pexpire(pair.failures, LOCKOUT_STATE_TTL_MS)
          .pexpire(pair.locks, LOCKOUT_STATE_TTL_MS)
          .pexpire(whole.failures, LOCKOUT_STATE_TTL_MS)
          .pexpire(whole.locks, LOCKOUT_STATE_TTL_MS)
          .pexpire(sources, LOCKOUT_STATE_TTL_MS),
      );
    } catch (error) {
      // The running slots expire with IN_FLIGHT_TTL_MS; the in-process lockout counted the failure.
      this.status.noteFailure(error);
      return;
    }
    const [pairFailures, pairLocks, wholeFailures, wholeLocks, sourceCount] = reply.map(Number) as number[];
    const { threshold, minSources } = this.settings;
    const multi = redis.multi();
    if (pairFailures! >= threshold) this.#lock(multi, pair, pairLocks!);
    if (wholeFailures! >= threshold && sourceCount! >= minSources) this.#lock(multi, whole, wholeLocks!);
    await this.#release(multi, pair.running, whole.running);
  }

  #lock(multi: ChainableCommander, level: LevelKeys, locksSoFar: number): void {
    const delay = Math.min(this.settings.maxDelayMs, this.settings.baseDelayMs * 2 ** locksSoFar);
    multi.set(level.lock, '1', 'PX', delay).incr(level.locks).pexpire(level.locks, LOCKOUT_STATE_TTL_MS);
  }

  /** Runs `multi` with the two running slots given back in the same step. */
  #release(multi: ChainableCommander, ...running: string[]): Promise<void> {
    for (const key of running) multi.decr(key);
    return this.#ignoreOutage(multi);
  }

  async #ignoreOutage(multi: ChainableCommander): Promise<void> {
    try {
      await exec(multi);
      this.status.noteSuccess();
    } catch (error) {
      this.status.noteFailure(error);
    }
  }

  #keys(level: string): LevelKeys {
    const base = `${this.#prefix}${level}`;
    return { failures: `${base}:failures`, running: `${base}:running`, locks: `${base}:locks`, lock: `${base}:lock` };
  }

  #sourcesKey(name: string): string {
    return `${this.#prefix}${nameLevel(name)}:sources`;
  }
}

interface LevelKeys {
  readonly failures: string;
  readonly running: string;
  readonly locks: string;
  readonly lock: string;
}

// Lengths first, so no name and address can be read as another pair whatever characters they hold.
const nameLevel = (name: string) => `name:${name.length}:${name}`;
const pairLevel = (name: string, source: string) => `pair:${name.length}:${name}:${source}`;

/** The replies of a MULTI, or the first error among them. */
async function exec(multi: ChainableCommander): Promise<unknown[]> {
  const replies = await multi.exec();
  if (replies === null) throw new Error('Redis transaction aborted');
  return replies.map(([error, reply]) => {
    if (error) throw error;
    return reply;
  });
}
