import type { RedisSettings } from '../../redis.js';
import { ChangeFeed, type ChangeTransport } from './feed.js';
import { PostgresNotifyTransport } from './postgres-transport.js';
import { RedisPubSubTransport } from './redis-transport.js';
import { type DataVersionReader, SqliteDataVersionTransport } from './sqlite-transport.js';

export { ChangeFeed, type FeedObserver, type FeedState, type MirroredCache } from './feed.js';
export type { Change } from './changes.js';

/**
 * SQLite: data_version only (processes sharing a file share a machine; the commit is the announcement).
 * Redis is not needed for that, and is used for the shared limits only.
 */
export function sqliteChangeFeed(readDataVersion: DataVersionReader): ChangeFeed {
  return new ChangeFeed([new SqliteDataVersionTransport(readDataVersion)]);
}

/**
 * PostgreSQL: NOTIFY always (delivered with the commit, and heard from any process writing to the
 * database, even one started without REDIS_URL), plus Redis pub/sub when REDIS_URL is set. The caches
 * are trusted only while every transport is live.
 */
export function postgresChangeFeed(url: string, notifyOutside: (channel: string, text: string) => Promise<void>, redis: RedisSettings | undefined): ChangeFeed {
  const transports: ChangeTransport[] = [new PostgresNotifyTransport(url, notifyOutside)];
  if (redis) transports.push(new RedisPubSubTransport(redis));
  return new ChangeFeed(transports);
}
