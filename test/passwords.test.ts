import { describe, expect, it, vi } from 'vitest';
import { PasswordHasher } from '../src/auth/passwords.js';

// Hashes share libuv's thread pool with every commit's fsync and the token signatures: never all of it.

const calls = vi.hoisted(() => ({ running: 0, most: 0 }));
vi.mock('@node-rs/argon2', async (importOriginal) => {
  const real = await importOriginal<typeof import('@node-rs/argon2')>();
  const counted =
    <A extends unknown[], R>(run: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      calls.running++;
      calls.most = Math.max(calls.most, calls.running);
      try {
        return await run(...args);
      } finally {
        calls.running--;
      }
    };
  return { ...real, hash: counted(real.hash), verify: counted(real.verify) };
});

const cheap = { memoryKiB: 1024, timeCost: 1, parallelism: 1 };

async function mostAtOnce(concurrency: number): Promise<boolean[]> {
  const hasher = new PasswordHasher({ ...cheap, concurrency });
  const stored = await hasher.hash('correct horse');
  calls.most = 0;
  const results = await Promise.all(
    Array.from({ length: 8 }, (_, i) => (i % 4 === 3 ? hasher.verifyAgainstDummy('anything') : hasher.verify(stored, i % 2 ? 'correct horse' : 'wrong horse'))),
  );
  return results;
}

describe('PasswordHasher', () => {
  it('runs at most `concurrency` hashes at once, and every queued one still gets its answer', async () => {
    const results = await mostAtOnce(2);
    expect(calls.most).toBe(2);
    expect(results).toEqual([false, true, false, false, false, true, false, false]);
  });

  it('runs them side by side up to the limit', async () => {
    await mostAtOnce(8);
    expect(calls.most).toBeGreaterThan(2);
  });
});
