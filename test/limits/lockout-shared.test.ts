import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/auth/clock.js';
import { type LockoutSettings, type LoginLockout, MemoryLoginLockout } from '../../src/auth/lockout.js';
import { SharedLoginLockout } from '../../src/auth/lockout-shared.js';
import { SharedStoreStatus } from '../../src/auth/shared-store.js';
import { connect, OwnRedis, SHARED_REDIS_URL, uniquePrefix, whenReady } from '../support/redis.js';

// The login lockout shared through Redis: two SharedLoginLockout objects on two connections with one key
// prefix are two instances of the server. (test/hardening/lockout.test.ts has the rules through the API.)

const SETTINGS: LockoutSettings = { threshold: 10, baseDelayMs: 30_000, maxDelayMs: 900_000, minSources: 3, maxEntries: 1000 };

function recordingLog() {
  const lines: { level: 'warn' | 'info'; outcome: unknown }[] = [];
  return {
    lines,
    warn: (fields: Record<string, unknown>) => lines.push({ level: 'warn', outcome: fields.outcome }),
    info: (fields: Record<string, unknown>) => lines.push({ level: 'info', outcome: fields.outcome }),
  };
}

async function instance(url: string, keyPrefix: string, settings = SETTINGS, log = recordingLog()) {
  const status = new SharedStoreStatus(connect(url), log);
  await whenReady(status.redis);
  const lockout = new SharedLoginLockout(settings, new MemoryLoginLockout(settings, systemClock), status, keyPrefix);
  return { lockout, status, log };
}

/** One password check through `lockout` that turns out `outcome`; the refusal's wait when refused. */
async function check(lockout: LoginLockout, name: string, source: string, outcome: 'failure' | 'success' = 'failure', hashMs = 0) {
  const attempt = await lockout.beginAttempt(name, source);
  if ('retryAfterMs' in attempt) return attempt.retryAfterMs;
  if (hashMs > 0) await new Promise((resolve) => setTimeout(resolve, hashMs));
  await lockout.finishAttempt(attempt, outcome);
  return 0;
}

async function fail(lockout: LoginLockout, name: string, source: string, times: number) {
  for (let i = 0; i < times; i += 1) expect(await check(lockout, name, source)).toBe(0);
}

describe('login lockout shared by two instances', () => {
  it('counts failures made through both instances together', async () => {
    const prefix = uniquePrefix('lockout');
    const [a, b] = [await instance(SHARED_REDIS_URL, prefix), await instance(SHARED_REDIS_URL, prefix)];
    await fail(a.lockout, 'alice', '10.0.0.1', 5);
    await fail(b.lockout, 'alice', '10.0.0.1', 5);
    // Ten failures from one address: that pair is locked on both, for the base delay.
    for (const { lockout } of [a, b]) {
      const wait = await check(lockout, 'alice', '10.0.0.1', 'success');
      expect(wait).toBeGreaterThan(25_000);
      expect(wait).toBeLessThanOrEqual(30_000);
    }
    // Another address is not locked out by one address.
    expect(await check(b.lockout, 'alice', '10.0.0.2', 'success')).toBe(0);
    expect(a.status.available() && b.status.available()).toBe(true);
  });

  it('lets a parallel burst spread over both instances run no more checks than the threshold', async () => {
    const prefix = uniquePrefix('lockout-burst');
    const [a, b] = [await instance(SHARED_REDIS_URL, prefix), await instance(SHARED_REDIS_URL, prefix)];
    const waits = await Promise.all(Array.from({ length: 40 }, (_, i) => check(i % 2 ? a.lockout : b.lockout, 'bob', '10.0.1.1', 'failure', 30)));
    expect(waits.filter((wait) => wait === 0).length).toBe(10);
    // And it is locked now, on both.
    expect(await check(a.lockout, 'bob', '10.0.1.1')).toBeGreaterThan(25_000);
    expect(await check(b.lockout, 'bob', '10.0.1.1')).toBeGreaterThan(25_000);
  });

  it('lets a burst from four addresses over both instances run barely more checks than the threshold', async () => {
    const prefix = uniquePrefix('lockout-spread');
    const [a, b] = [await instance(SHARED_REDIS_URL, prefix), await instance(SHARED_REDIS_URL, prefix)];
    const waits = await Promise.all(Array.from({ length: 40 }, (_, i) => check(i % 2 ? a.lockout : b.lockout, 'bert', `10.0.7.${(i % 4) + 1}`, 'failure', 30)));
    // The account-wide limit applies once three addresses are seen: one check past the threshold at most.
    const checked = waits.filter((wait) => wait === 0).length;
    expect(checked).toBeGreaterThanOrEqual(10);
    expect(checked).toBeLessThanOrEqual(11);
  });

  it('locks the name for everybody only after failures from minSources addresses, across instances', async () => {
    const prefix = uniquePrefix('lockout-sources');
    const [a, b] = [await instance(SHARED_REDIS_URL, prefix), await instance(SHARED_REDIS_URL, prefix)];
    await fail(a.lockout, 'carol', '10.0.2.1', 9);
    await fail(b.lockout, 'carol', '10.0.2.2', 1);
    // Ten failures from two addresses: the owner elsewhere still gets in.
    expect(await check(a.lockout, 'carol', '10.0.2.9', 'success')).toBe(0);
    await fail(a.lockout, 'dave', '10.0.3.1', 8);
    await fail(b.lockout, 'dave', '10.0.3.2', 1);
    await fail(a.lockout, 'dave', '10.0.3.3', 1);
    // From three addresses, two of them seen only by one instance each: locked for everybody on both.
    expect(await check(b.lockout, 'dave', '10.0.3.9', 'success')).toBeGreaterThan(25_000);
    expect(await check(a.lockout, 'dave', '10.0.3.8', 'success')).toBeGreaterThan(25_000);
  });

  it('clears on a success through either instance', async () => {
    const prefix = uniquePrefix('lockout-clear');
    const [a, b] = [await instance(SHARED_REDIS_URL, prefix), await instance(SHARED_REDIS_URL, prefix)];
    await fail(a.lockout, 'erin', '10.0.4.1', 9);
    expect(await check(b.lockout, 'erin', '10.0.4.1', 'success')).toBe(0);
    await fail(b.lockout, 'erin', '10.0.4.1', 9);
    expect(await check(b.lockout, 'erin', '10.0.4.1', 'success')).toBe(0);
  });

  it('doubles the delay per lock up to the maximum', async () => {
    const settings = { ...SETTINGS, threshold: 2, baseDelayMs: 1_000, maxDelayMs: 2_000 };
    const prefix = uniquePrefix('lockout-delays');
    const [a, b] = [await instance(SHARED_REDIS_URL, prefix, settings), await instance(SHARED_REDIS_URL, prefix, settings)];
    await fail(a.lockout, 'frank', '10.0.5.1', 1);
    await fail(b.lockout, 'frank', '10.0.5.1', 1);
    const delays: number[] = [];
    for (let lock = 0; lock < 3; lock += 1) {
      const wait = await check(a.lockout, 'frank', '10.0.5.1');
      expect(wait).toBeGreaterThan(0);
      delays.push(Math.ceil(wait / 1000));
      // Wait it out (polling, on a loaded machine), then one more wrong guess locks again, for longer.
      const deadline = Date.now() + 15_000;
      let outcome = wait;
      while (outcome > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(outcome, 200)));
        outcome = await check(lock % 2 ? a.lockout : b.lockout, 'frank', '10.0.5.1');
      }
      expect(outcome).toBe(0);
    }
    expect(delays).toEqual([1, 2, 2]);
    // That last guess locked again; once it ran out, a success resets the count and the delay, on both.
    await expect.poll(() => check(b.lockout, 'frank', '10.0.5.1', 'success'), { timeout: 15_000, interval: 200 }).toBe(0);
    await fail(a.lockout, 'frank', '10.0.5.1', 1);
    await fail(b.lockout, 'frank', '10.0.5.1', 1);
    expect(Math.ceil((await check(a.lockout, 'frank', '10.0.5.1')) / 1000)).toBe(1);
  });
});

// Started here, not in the test: afterAll (which stops it) only counts at file or describe level.
const own = await OwnRedis.start();

describe('login lockout while Redis is down', () => {
  it('keeps locking per account on each instance, logs the outage once, and shares again when Redis is back', async () => {
    const prefix = uniquePrefix('lockout-outage');
    const [a, b] = [await instance(own.url, prefix), await instance(own.url, prefix)];
    await fail(a.lockout, 'grace', '10.0.6.1', 5);
    await own.stop();
    // The in-process lockout counted those five too: five more on A lock the pair on A.
    await fail(a.lockout, 'grace', '10.0.6.1', 5);
    expect(await check(a.lockout, 'grace', '10.0.6.1', 'success')).toBeGreaterThan(25_000);
    // A parallel burst on one instance still gets no more than the threshold through.
    const waits = await Promise.all(Array.from({ length: 30 }, () => check(a.lockout, 'heidi', '10.0.6.2', 'failure', 20)));
    expect(waits.filter((wait) => wait === 0).length).toBe(10);
    // B saw none of those failures and cannot ask Redis: it counts alone until Redis is back.
    expect(await check(b.lockout, 'heidi', '10.0.6.2', 'failure')).toBe(0);
    expect(a.status.available()).toBe(false);
    expect(a.log.lines.filter((line) => line.outcome === 'redis_unavailable')).toHaveLength(1);

    await own.start();
    await expect.poll(() => a.status.available() && b.status.available(), { timeout: 15_000 }).toBe(true);
    expect(a.log.lines.map((line) => line.outcome)).toEqual(['redis_unavailable', 'redis_available']);
    // Shared again: failures through A and B add up (this Redis kept nothing, it has no persistence).
    await fail(a.lockout, 'ivan', '10.0.6.3', 5);
    await fail(b.lockout, 'ivan', '10.0.6.3', 5);
    expect(await check(b.lockout, 'ivan', '10.0.6.3', 'success')).toBeGreaterThan(25_000);
  });
});
