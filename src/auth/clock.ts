/** Time source of the auth services; tests substitute a controllable one to expire tokens and sessions. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
