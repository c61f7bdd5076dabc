/** The in-memory copies the stores keep of rows read on every request. */
export type CacheName = 'users' | 'sessions' | 'api_tokens';

/**
 * How a cached read went: `hit` (answered from memory), `miss` (read from the database, then kept), or
 * `bypass` (the change feed is not live, so memory could be stale and the database was read).
 */
export type CacheOutcome = 'hit' | 'miss' | 'bypass';

/**
 * What the stores report for metrics (src/metrics.ts implements it; the stores know this interface only).
 * Calls are synchronous counter increments on hot paths: implementations must not do I/O.
 */
export interface StoreObserver {
  cacheLookup(cache: CacheName, outcome: CacheOutcome): void;
  /** One group commit of refresh-token rotations (session-rotation.ts): how many claims it carried. */
  rotationBatch(claims: number): void;
}

export const NO_STORE_OBSERVER: StoreObserver = { cacheLookup: () => {}, rotationBatch: () => {} };
