import { afterAll, describe, expect, it } from 'vitest';
import type { Change } from '../../src/db/change-feed/changes.js';
import { ChangeFeed, type MirroredCache } from '../../src/db/change-feed/feed.js';
import { RedisPubSubTransport } from '../../src/db/change-feed/redis-transport.js';

// The Redis transport on its own, against the real Redis at 127.0.0.1:6379 (a key prefix of this run:
// the shared Redis is never flushed): what one process announces, another receives; its own it skips.

class RecordingCache implements MirroredCache {
  readonly forgotten: Change[] = [];
  flushes = 0;
  forget(change: Change): void {
    this.forgotten.push(change);
  }
  forgetAll(): void {
    this.flushes += 1;
  }
}

describe('Redis pub/sub transport', () => {
  const settings = { url: 'redis://127.0.0.1:6379', keyPrefix: `gh-test-${process.pid}-${Date.now()}:` };
  const [sender, receiver] = [new ChangeFeed([new RedisPubSubTransport(settings)]), new ChangeFeed([new RedisPubSubTransport(settings)])];
  const [senderCache, receiverCache] = [new RecordingCache(), new RecordingCache()];
  sender.register(senderCache);
  receiver.register(receiverCache);
  afterAll(() => Promise.all([sender.close(), receiver.close()]));

  it('delivers an announced change to the other process only, and is live once subscribed', async () => {
    sender.listen();
    receiver.listen();
    expect(await receiver.whenLive(10_000)).toBe(true);
    expect(await sender.whenLive(10_000)).toBe(true);
    // Becoming live drops everything once (changes may have been missed before).
    expect(receiverCache.flushes).toBe(1);

    await sender.announce({ kind: 'session', id: 'a-session-id' });
    await expect.poll(() => receiverCache.forgotten, { timeout: 1_000, interval: 5 }).toEqual([{ kind: 'session', id: 'a-session-id' }]);
    expect(senderCache.forgotten).toEqual([]);
  });

  it('drops everything on a message it cannot read', async () => {
    const { Redis } = await import('ioredis');
    const raw = new Redis(settings.url);
    try {
      const before = receiverCache.flushes;
      await raw.publish(`${settings.keyPrefix}changes`, 'not a change');
      await expect.poll(() => receiverCache.flushes, { timeout: 1_000, interval: 5 }).toBe(before + 1);
    } finally {
      raw.disconnect();
    }
  });
});
