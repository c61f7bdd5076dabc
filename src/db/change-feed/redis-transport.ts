import type { Redis } from 'ioredis';
import { openRedis, type RedisSettings } from '../../redis.js';
import type { ChangeTransport, TransportListener } from './feed.js';
import { HEARTBEAT_MS, HEARTBEAT_TIMEOUT_MS } from './postgres-transport.js';

/**
 * Changes through Redis pub/sub on `<prefix>changes`. Published after the commit, so a process that dies
 * between its commit and the publish leaves the others unaware (the database change stands; see
 * README "Running several instances" for why PostgreSQL's NOTIFY runs alongside). The subscriber counts
 * as live only while subscribed and answering a PING every HEARTBEAT_MS (postgres-transport.ts).
 */
export class RedisPubSubTransport implements ChangeTransport {
  readonly name = 'redis';
  readonly #channel: string;
  readonly #publisher: Redis;
  #subscriber: Redis | undefined;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly settings: RedisSettings) {
    this.#channel = `${settings.keyPrefix}changes`;
    this.#publisher = openRedis(settings, 'gatehouse-change-feed-publish');
    // ioredis emits 'error' on every failed reconnect; without a listener that would crash the process.
    this.#publisher.on('error', () => {});
  }

  async announce(text: string): Promise<void> {
    await this.#publisher.publish(this.#channel, text);
  }

  listen(listener: TransportListener): void {
    const subscriber = openRedis(this.settings, 'gatehouse-change-feed-listen');
    this.#subscriber = subscriber;
    subscriber.on('error', () => {});
    subscriber.on('close', () => listener.live(false, 'connection lost'));
    subscriber.on('message', (channel: string, text: string) => {
      if (channel === this.#channel) listener.message(text);
    });
    subscriber.on('ready', () => {
      subscriber.subscribe(this.#channel).then(
        () => listener.live(true),
        (error: Error) => {
          listener.live(false, `cannot subscribe (${error.message})`);
          // Connects again, and so subscribes again, rather than staying untrusted on a live connection.
          subscriber.disconnect(true);
        },
      );
    });
    this.#heartbeat = setInterval(() => {
      if (subscriber.status !== 'ready') return;
      const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer')), HEARTBEAT_TIMEOUT_MS).unref());
      Promise.race([subscriber.ping(), timeout]).catch((error: Error) => {
        listener.live(false, `heartbeat failed (${error.message})`);
        // Reconnects (and so subscribes again) rather than trusting a connection that stopped answering.
        subscriber.disconnect(true);
      });
    }, HEARTBEAT_MS).unref();
  }

  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    this.#subscriber?.disconnect();
    this.#publisher.disconnect();
  }
}
