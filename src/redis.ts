import { Redis } from 'ioredis';

export interface RedisSettings {
  readonly url: string;
  /** Prefix of every key and channel, so deployments can share one Redis. */
  readonly keyPrefix: string;
}

/**
 * One Redis connection, for the shared limits (auth/) or the change feed (db/). Commands fail at once
 * while Redis is unreachable (no offline queue, one try per command) instead of queueing behind a dead
 * connection, or after a second without an answer: every caller has a documented answer for "Redis is
 * down" and must get to it quickly.
 * ioredis keeps reconnecting in the background.
 */
export function openRedis(settings: RedisSettings, connectionName: string): Redis {
  return new Redis(settings.url, {
    connectionName,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    // A Redis that stops answering without closing the connection must not stall logins behind it.
    commandTimeout: 1_000,
    // Reconnect quickly at first, then every 2 s at most.
    retryStrategy: (times) => Math.min(100 * times, 2_000),
    lazyConnect: false,
  });
}
