/**
 * The time the stores need, shaped like the auth services' Clock (src/auth/clock.ts) so the same clock
 * is passed in: `now()` stamps stored times, `monotonicMs()` measures cache lifetimes (never the wall
 * clock, so setting it back cannot keep a revoked row cached).
 */
export interface StoreClock {
  now(): number;
  monotonicMs(): number;
}
