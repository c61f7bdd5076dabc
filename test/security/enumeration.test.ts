import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { createTestApp, LOGIN, registerUser } from '../support/app.js';

// Whether an account exists must not show in login's answer nor in its timing. The production argon2
// parameters (no cheap ARGON2_* override) make the hash dominate, as it does in production; the rate
// limits and the lockout are raised so that every try reaches the password check.

const app = await createTestApp({
  ARGON2_MEMORY_KIB: undefined,
  ARGON2_TIME_COST: undefined,
  RATE_LIMIT_LOGIN: '100000/1m',
  RATE_LIMIT_LOGIN_ACCOUNT: '100000/1m',
  LOCKOUT_THRESHOLD: '100000',
});

const TRIES = 30;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 ? sorted[Math.floor(middle)]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function timedLogin(username: string, password: string) {
  const started = performance.now();
  const answer = await app.gql(LOGIN, { input: { username, password } });
  return { ms: performance.now() - started, answer };
}

describe('login does not tell an unknown user from a wrong password', { timeout: 120_000 }, () => {
  it('runs with the production argon2 parameters', () => {
    expect(app.services.config.argon2).toMatchObject({ memoryKiB: 19456, timeCost: 2, parallelism: 1 });
  });

  // A timing check on a shared 2-core machine: other test files load it in bursts. Each try measures one
  // login of each kind back to back, and the test compares the median of those paired differences, so a
  // burst hits both sides of a pair alike. A real leak (a skipped hash) shows in every run; a noisy run
  // gets another chance.
  it('gives identical answers, and times whose paired median difference is under 25% of a login', { retry: 2 }, async () => {
    const { username } = await registerUser(app);
    const unknown = (i: number) => `nobody_${i}_${Math.random().toString(36).slice(2, 8)}`;

    const expected = {
      status: 200,
      data: { login: { __typename: 'InvalidCredentialsError', code: 'INVALID_CREDENTIALS', message: 'Invalid username or password.' } },
    };
    // Warm-up, not measured: the first unknown-user login computes the dummy hash once.
    for (let i = 0; i < 3; i++) {
      await timedLogin(unknown(i), 'wrong password here');
      await timedLogin(username, 'wrong password here');
    }

    const times = { unknown: [] as number[], wrongPassword: [] as number[] };
    const differences: number[] = [];
    for (let i = 0; i < TRIES; i++) {
      // Interleaved, alternating which goes first, so drift in machine load hits both kinds alike.
      const order = i % 2 === 0 ? (['unknown', 'wrongPassword'] as const) : (['wrongPassword', 'unknown'] as const);
      for (const kind of order) {
        const { ms, answer } = kind === 'unknown' ? await timedLogin(unknown(i), `wrong password ${i}`) : await timedLogin(username, `wrong password ${i}`);
        // Same shape and content to the byte, and never LOGIN_LOCKED / RATE_LIMITED.
        expect(answer).toEqual(expected);
        times[kind].push(ms);
      }
      differences.push(times.wrongPassword[i]! - times.unknown[i]!);
    }

    const unknownMedian = median(times.unknown);
    const wrongMedian = median(times.wrongPassword);
    const medianDifference = median(differences);
    console.log(
      `login medians over ${TRIES} tries: unknown user ${unknownMedian.toFixed(1)} ms, wrong password ${wrongMedian.toFixed(1)} ms, paired difference ${medianDifference.toFixed(1)} ms`,
    );
    expect(Math.abs(medianDifference) / Math.min(unknownMedian, wrongMedian)).toBeLessThan(0.25);
  });
});
