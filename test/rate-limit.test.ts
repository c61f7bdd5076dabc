import { InMemoryStore } from 'graphql-rate-limit';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BoundedMemoryStore } from '../src/auth/rate-limit-store.js';
import { parseRateLimit, RateLimiter, RateLimitExceededError, type RateLimitRule } from '../src/auth/rate-limit.js';

const rules = (login: RateLimitRule) => ({
  register: login,
  login,
  loginAccount: login,
  userExists: login,
  availabilityProbe: login,
  availabilityProbeAccount: login,
  refresh: login,
});

async function outcomes(limiter: RateLimiter, calls: number, key = 'ip') {
  const results = await Promise.allSettled(Array.from({ length: calls }, () => limiter.consume('login', key)));
  return {
    admitted: results.filter((r) => r.status === 'fulfilled').length,
    refused: results.filter((r) => r.status === 'rejected' && r.reason instanceof RateLimitExceededError).length,
  };
}

afterEach(() => vi.useRealTimers());

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

describe('RateLimiter over BoundedMemoryStore', () => {
  it('admits exactly max calls of a parallel burst', async () => {
    const limiter = new RateLimiter(rules({ max: 5, windowMs: 60_000 }), new BoundedMemoryStore({ maxIdentities: 100 }));
    expect(await outcomes(limiter, 50)).toEqual({ admitted: 5, refused: 45 });
  });

  it('shows why the store matters: the bundled store lets a burst through', async () => {
    // Same algorithm, the library's own store: its get→set race admits far more than max.
    const limiter = new RateLimiter(rules({ max: 5, windowMs: 60_000 }), new InMemoryStore() as unknown as BoundedMemoryStore);
    const { admitted } = await outcomes(limiter, 50);
    expect(admitted).toBeGreaterThan(5);
  });

  it('keeps identities and rules apart', async () => {
    const limiter = new RateLimiter(rules({ max: 2, windowMs: 60_000 }), new BoundedMemoryStore({ maxIdentities: 100 }));
    expect(await outcomes(limiter, 3, 'a')).toEqual({ admitted: 2, refused: 1 });
    expect(await outcomes(limiter, 3, 'b')).toEqual({ admitted: 2, refused: 1 });
    await expect(limiter.consume('register', 'a')).resolves.toBeUndefined();
  });

  it('slides the window and reports when the next call is admitted', async () => {
    vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z'), toFake: ['Date'] });
    const limiter = new RateLimiter(rules({ max: 2, windowMs: 60_000 }), new BoundedMemoryStore({ maxIdentities: 100 }));
    await limiter.consume('login', 'ip');
    vi.advanceTimersByTime(20_000);
    await limiter.consume('login', 'ip');
    vi.advanceTimersByTime(10_000);
    const refusal = await limiter.consume('login', 'ip').catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(RateLimitExceededError);
    // The first call was 30 s ago in a 60 s window.
    expect((refusal as RateLimitExceededError).retryAfterSeconds).toBe(30);
    expect((refusal as RateLimitExceededError).rule).toBe('login');

    vi.advanceTimersByTime(30_000);
    await expect(limiter.consume('login', 'ip')).resolves.toBeUndefined();
    // The second call (t=20 s) is still inside the window, so one slot only.
    await expect(limiter.consume('login', 'ip')).rejects.toBeInstanceOf(RateLimitExceededError);
  });

  it('does not let refused calls extend the ban', async () => {
    vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z'), toFake: ['Date'] });
    const limiter = new RateLimiter(rules({ max: 1, windowMs: 10_000 }), new BoundedMemoryStore({ maxIdentities: 100 }));
    await limiter.consume('login', 'ip');
    for (let i = 0; i < 9; i += 1) {
      vi.advanceTimersByTime(1_000);
      await expect(limiter.consume('login', 'ip')).rejects.toBeInstanceOf(RateLimitExceededError);
    }
    vi.advanceTimersByTime(1_000);
    await expect(limiter.consume('login', 'ip')).resolves.toBeUndefined();
  });
});

describe('BoundedMemoryStore', () => {
  it('evicts the least recently used identity beyond its bound', async () => {
    const store = new BoundedMemoryStore({ maxIdentities: 3 });
    const limiter = new RateLimiter(rules({ max: 1, windowMs: 60_000 }), store);
    for (const key of ['a', 'b', 'c', 'd']) await limiter.consume('login', key);
    expect(store.size).toBe(3);
    // "a" was evicted, so it is admitted again; "d" is remembered.
    await expect(limiter.consume('login', 'a')).resolves.toBeUndefined();
    await expect(limiter.consume('login', 'd')).rejects.toBeInstanceOf(RateLimitExceededError);
  });

  it('forgets an identity once its window is over', async () => {
    const store = new BoundedMemoryStore({ maxIdentities: 10 });
    const limiter = new RateLimiter(rules({ max: 1, windowMs: 50 }), store);
    await limiter.consume('login', 'x');
    await expect(limiter.consume('login', 'x')).rejects.toBeInstanceOf(RateLimitExceededError);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(store.msUntilSlotFrees({ contextIdentity: 'x', fieldIdentity: 'login' }, 50)).toBe(0);
    await expect(limiter.consume('login', 'x')).resolves.toBeUndefined();
  });
});
