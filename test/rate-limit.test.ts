import { describe, expect, it } from 'vitest';
import { MemoryRateWindows } from '../src/auth/rate-limit-memory.js';
import { parseRateLimit, RateLimiter, RateLimitExceededError, type RateLimitRule } from '../src/auth/rate-limit.js';
import { SharedStoreStatus } from '../src/auth/shared-store.js';
import { connect, SHARED_REDIS_URL, uniquePrefix, whenReady } from './support/redis.js';
import { ManualClock } from './support/app.js';

// The same rules on both engines: in process (MemoryRateWindows) and shared through Redis
// (rate-limiter-flexible's RateLimiterRedis, each test on its own key prefix). Windows are fixed: the
// first call opens one, and at most `max` calls are admitted until it ends.

const rules = (login: RateLimitRule) => ({
  register: login,
  login,
  loginAccount: login,
  userExists: login,
  availabilityProbe: login,
  emailRecipient: login,
  emailClient: login,
  availabilityProbeAccount: login,
  refresh: login,
});

const quietLog = { warn: () => {}, info: () => {} };

async function outcomes(limiters: RateLimiter[], calls: number, key = 'ip') {
  const results = await Promise.allSettled(Array.from({ length: calls }, (_, i) => limiters[i % limiters.length]!.consume('login', key)));
  const unexpected = results.find((r) => r.status === 'rejected' && !(r.reason instanceof RateLimitExceededError));
  if (unexpected) throw (unexpected as PromiseRejectedResult).reason;
  return {
    admitted: results.filter((r) => r.status === 'fulfilled').length,
    refused: results.filter((r) => r.status === 'rejected').length,
  };
}

const refusalOf = (promise: Promise<void>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error as RateLimitExceededError,
  );

describe('parseRateLimit', () => {
  it('reads max and window', () => {
    expect(parseRateLimit('10/1m')).toEqual({ max: 10, windowMs: 60_000 });
    expect(parseRateLimit('5/30s')).toEqual({ max: 5, windowMs: 30_000 });
    expect(parseRateLimit('100/h')).toEqual({ max: 100, windowMs: 3_600_000 });
    expect(parseRateLimit('3/2d')).toEqual({ max: 3, windowMs: 172_800_000 });
  });

  it.each(['', '10', '10/', '10/1y', 'ten/1m', '0/1m', '5/0s', '-1/1m', '1.5/1m'])('refuses %j with a clear message', (spec) => {
    expect(() => parseRateLimit(spec)).toThrow(/rate limit|at least one call/);
  });
});

const engines = {
  memory: async (rule: RateLimitRule, clock = new ManualClock()) => new RateLimiter(rules(rule), new MemoryRateWindows(100, clock)),
  redis: async (rule: RateLimitRule, clock = new ManualClock()) => {
    const status = new SharedStoreStatus(connect(SHARED_REDIS_URL), quietLog);
    await whenReady(status.redis);
    return new RateLimiter(rules(rule), new MemoryRateWindows(100, clock), { status, keyPrefix: uniquePrefix('rate') });
  },
};

describe.each(Object.entries(engines))('RateLimiter (%s)', (_engine, create) => {
  it('admits exactly max calls of a parallel burst', async () => {
    const limiter = await create({ max: 5, windowMs: 60_000 });
    expect(await outcomes([limiter], 50)).toEqual({ admitted: 5, refused: 45 });
  });

  it('keeps identities and rules apart', async () => {
    const limiter = await create({ max: 2, windowMs: 60_000 });
    expect(await outcomes([limiter], 3, 'a')).toEqual({ admitted: 2, refused: 1 });
    expect(await outcomes([limiter], 3, 'b')).toEqual({ admitted: 2, refused: 1 });
    await expect(limiter.consume('register', 'a')).resolves.toBeUndefined();
  });

  it('refuses with RATE_LIMITED details: the rule and the seconds until the window ends', async () => {
    const limiter = await create({ max: 2, windowMs: 60_000 });
    await limiter.consume('login', 'ip');
    await limiter.consume('login', 'ip');
    const refusal = await refusalOf(limiter.consume('login', 'ip'));
    expect(refusal).toBeInstanceOf(RateLimitExceededError);
    expect(refusal!.rule).toBe('login');
    expect(refusal!.retryAfterSeconds).toBeGreaterThanOrEqual(58);
    expect(refusal!.retryAfterSeconds).toBeLessThanOrEqual(60);
  });
});

describe('fixed windows in process', () => {
  it('admits max calls again once the window that the first call opened is over, and says when', async () => {
    const clock = new ManualClock();
    const limiter = await engines.memory({ max: 2, windowMs: 60_000 }, clock);
    await limiter.consume('login', 'ip');
    clock.advance(20_000);
    await limiter.consume('login', 'ip');
    clock.advance(10_000);
    // The window opened 30 s ago: 30 s left, whenever the second call came.
    expect((await refusalOf(limiter.consume('login', 'ip')))!.retryAfterSeconds).toBe(30);
    clock.advance(30_000);
    // A fresh window: both calls again (a sliding window would admit one, the t=20 s call still counting).
    await expect(limiter.consume('login', 'ip')).resolves.toBeUndefined();
    await expect(limiter.consume('login', 'ip')).resolves.toBeUndefined();
    await expect(limiter.consume('login', 'ip')).rejects.toBeInstanceOf(RateLimitExceededError);
  });

  it('does not let refused calls extend the ban', async () => {
    const clock = new ManualClock();
    const limiter = await engines.memory({ max: 1, windowMs: 10_000 }, clock);
    await limiter.consume('login', 'ip');
    for (let i = 0; i < 9; i += 1) {
      clock.advance(1_000);
      await expect(limiter.consume('login', 'ip')).rejects.toBeInstanceOf(RateLimitExceededError);
    }
    clock.advance(1_000);
    await expect(limiter.consume('login', 'ip')).resolves.toBeUndefined();
  });

  it('holds at most maxKeys windows, forgetting the least recently used first', async () => {
    const windows = new MemoryRateWindows(3, new ManualClock());
    const limiter = new RateLimiter(rules({ max: 1, windowMs: 60_000 }), windows);
    for (const key of ['a', 'b', 'c', 'd']) await limiter.consume('login', key);
    expect(windows.size).toBe(3);
    // "a" was evicted, so it is admitted again; "d" is remembered.
    await expect(limiter.consume('login', 'a')).resolves.toBeUndefined();
    await expect(limiter.consume('login', 'd')).rejects.toBeInstanceOf(RateLimitExceededError);
  });
});

describe('fixed windows in Redis', () => {
  it('does not let refused calls extend the ban, and admits again once the window is over', async () => {
    const limiter = await engines.redis({ max: 1, windowMs: 1_000 });
    await limiter.consume('login', 'ip');
    const started = Date.now();
    await expect(limiter.consume('login', 'ip')).rejects.toBeInstanceOf(RateLimitExceededError);
    // Hammering while refused: admitted again about a second after the first call, not a second after the last.
    let admittedAt: number | undefined;
    while (admittedAt === undefined && Date.now() - started < 10_000) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      if ((await refusalOf(limiter.consume('login', 'ip'))) === undefined) admittedAt = Date.now();
    }
    expect(admittedAt).toBeDefined();
    expect(admittedAt! - started).toBeLessThan(5_000);
  });
});

describe('limits shared through Redis by several instances', () => {
  it('a parallel burst spread over two instances (two connections) admits exactly max', async () => {
    const keyPrefix = uniquePrefix('rate-shared');
    const instance = async () => {
      const status = new SharedStoreStatus(connect(SHARED_REDIS_URL), quietLog);
      await whenReady(status.redis);
      return new RateLimiter(rules({ max: 7, windowMs: 60_000 }), new MemoryRateWindows(100, new ManualClock()), { status, keyPrefix });
    };
    const [a, b] = [await instance(), await instance()];
    expect(await outcomes([a, b], 60)).toEqual({ admitted: 7, refused: 53 });
    // Counted together afterwards too, whichever instance is asked.
    await expect(a.consume('login', 'ip')).rejects.toBeInstanceOf(RateLimitExceededError);
    await expect(b.consume('login', 'ip')).rejects.toBeInstanceOf(RateLimitExceededError);
    // Without Redis, each instance counts alone: the same burst gets max per instance.
    const alone = [await engines.memory({ max: 7, windowMs: 60_000 }), await engines.memory({ max: 7, windowMs: 60_000 })];
    expect(await outcomes(alone, 60)).toEqual({ admitted: 14, refused: 46 });
  });
});
