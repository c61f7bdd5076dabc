/**
 * The one source of time for the auth services; tests substitute a controllable one.
 *
 * Two readings, because they answer different questions:
 * - `now()` is the wall clock (ms since the epoch). Use it for timestamps that are stored or that are
 *   compared with stored ones or with another machine's (session expiry, `rotatedAt`, JWT `iat`/`exp`).
 *   It can jump in either direction (NTP step, an operator fixing the date, a VM resumed).
 * - `monotonicMs()` never goes back and does not follow such jumps. Use it for every duration measured
 *   inside this process: lockouts, cache lifetimes, throttles. A rule built on the wall clock would be
 *   extended (or cut short) by a jump; its origin is arbitrary, so it never leaves the process.
 */
export interface Clock {
  now(): number;
  monotonicMs(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  // performance.now() counts from process start on a monotonic source; never 0 in practice, and
  // lru-cache treats a start time of 0 as "no TTL", so it is offset to stay clear of that.
  monotonicMs: () => MONOTONIC_ORIGIN + performance.now(),
};

const MONOTONIC_ORIGIN = 1_000_000;
