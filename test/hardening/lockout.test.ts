import { describe, expect, it } from 'vitest';
import type { Environment } from '../../src/config.js';
import { createTestApp, ManualClock, registerUser, uniqueName, type TestApp } from '../support/app.js';
import { fromIp } from './operations.js';

// Brute-force lockout per login name, on top of the per-address rate limits.
// Defaults: LOCKOUT_THRESHOLD=10, LOCKOUT_BASE_SECONDS=30 (doubling per lock), LOCKOUT_MAX_SECONDS=900,
// LOCKOUT_MIN_SOURCES=3. Addresses are simulated with X-Forwarded-For behind TRUST_PROXY.

// With TEST_REDIS_URL the lockout is shared through Redis, whose locks end with Redis's own TTLs, not with
// the test's ManualClock: the tests that let a lock run out by advancing that clock run in memory only.
// test/limits/lockout-shared.test.ts checks the same rules on Redis in real time.
const withManualClockLocks = it.skipIf(Boolean(process.env.TEST_REDIS_URL));

const SECOND = 1000;
const LOGIN = /* GraphQL */ `
  mutation Login($input: LoginInput!) {
    login(input: $input) {
      __typename
      ... on AuthPayload { accessToken user { id } }
      ... on Error { code message }
      ... on InvalidCredentialsError { retryAfter }
    }
  }
`;

const clock = new ManualClock();
const app = await createTestApp({ TRUST_PROXY: 'true' }, { clock });

async function login(target: TestApp, username: string, password: string, ip: string) {
  const response = await target.gql(LOGIN, { input: { username, password } }, fromIp(ip));
  expect(response.errors).toBeUndefined();
  return response.data.login as { __typename: string; code?: string; message?: string; retryAfter?: number | null; accessToken?: string };
}

async function fail(target: TestApp, username: string, times: number, ip: string) {
  for (let i = 0; i < times; i += 1) {
    const answer = await login(target, username, `wrong password ${i}`, ip);
    expect(answer).toMatchObject({ __typename: 'InvalidCredentialsError', code: 'INVALID_CREDENTIALS', retryAfter: null });
  }
}

const expectLocked = (answer: Awaited<ReturnType<typeof login>>, retryAfter: number) =>
  expect(answer).toEqual({
    __typename: 'InvalidCredentialsError',
    code: 'LOGIN_LOCKED',
    message: `Too many failed attempts; try again in ${retryAfter} s.`,
    retryAfter,
  });

describe('per-account lockout', () => {
  it('after 10 failures from an address, even the correct password fails with LOGIN_LOCKED and retryAfter', async () => {
    const { username, password } = await registerUser(app);
    await fail(app, username, 10, '10.0.0.1');
    expectLocked(await login(app, username, password, '10.0.0.1'), 30);
    // Another spelling of the same name is the same lock (names are case-folded).
    expectLocked(await login(app, username.toUpperCase(), password, '10.0.0.1'), 30);
  });

  it('nine failures do not lock', async () => {
    const { username, password } = await registerUser(app);
    await fail(app, username, 9, '10.0.1.1');
    expect((await login(app, username, password, '10.0.1.1')).__typename).toBe('AuthPayload');
  });

  it('a parallel burst gets no more password checks than one guess after another', async () => {
    const { username } = await registerUser(app);
    const codes = async (ips: string[]) => {
      const answers = await Promise.all(ips.map((ip, i) => login(app, username, `parallel guess ${i}`, ip)));
      const count = (code: string) => answers.filter((answer) => answer.code === code).length;
      return { checked: count('INVALID_CREDENTIALS'), locked: count('LOGIN_LOCKED') };
    };
    // 30 at once from one address: exactly the threshold is checked, the rest are locked out unhashed.
    expect(await codes(Array.from({ length: 30 }, () => '10.0.9.1'))).toEqual({ checked: 10, locked: 20 });

    // 40 at once from four addresses against a fresh account: the account-wide lock needs 3 sources, so
    // one check past the threshold at most, never ten per address.
    const spread = await registerUser(app);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => login(app, spread.username, `spread guess ${i}`, `10.0.10.${(i % 4) + 1}`)));
    const checked = answers.filter((answer) => answer.code === 'INVALID_CREDENTIALS').length;
    expect(checked).toBeGreaterThanOrEqual(10);
    expect(checked).toBeLessThanOrEqual(11);
  });

  it('answers a name that does not exist exactly like an existing account', async () => {
    const existing = await registerUser(app);
    const missing = uniqueName('ghost');
    await fail(app, existing.username, 10, '10.0.2.1');
    await fail(app, missing, 10, '10.0.2.1');
    const forExisting = await login(app, existing.username, existing.password, '10.0.2.1');
    const forMissing = await login(app, missing, existing.password, '10.0.2.1');
    expectLocked(forExisting, 30);
    expect(forMissing).toEqual(forExisting);
  });

  withManualClockLocks('does not extend the lock while it lasts, and lets the owner in once it is over', async () => {
    const { username, password } = await registerUser(app);
    await fail(app, username, 10, '10.0.3.1');
    clock.advance(10 * SECOND);
    // Hammering during the lock is answered without counting.
    for (let i = 0; i < 20; i += 1) expectLocked(await login(app, username, 'still guessing', '10.0.3.1'), 20);
    clock.advance(20 * SECOND);
    expect((await login(app, username, password, '10.0.3.1')).__typename).toBe('AuthPayload');
  });

  withManualClockLocks('locks again for twice as long on the next failure after a lock, up to the 15-minute cap', async () => {
    const { username, password } = await registerUser(app);
    await fail(app, username, 10, '10.0.4.1');
    const delays = [];
    for (let lock = 0; lock < 8; lock += 1) {
      const locked = await login(app, username, password, '10.0.4.1');
      expect(locked.code).toBe('LOGIN_LOCKED');
      delays.push(locked.retryAfter);
      clock.advance(locked.retryAfter! * SECOND);
      // One more wrong guess after the lock ran out: locked again at once, for longer.
      expect((await login(app, username, 'one more guess', '10.0.4.1')).code).toBe('INVALID_CREDENTIALS');
    }
    expect(delays).toEqual([30, 60, 120, 240, 480, 900, 900, 900]);
  });

  withManualClockLocks('a successful login resets the counter and the delay', async () => {
    const { username, password } = await registerUser(app);
    await fail(app, username, 10, '10.0.5.1');
    expectLocked(await login(app, username, password, '10.0.5.1'), 30);
    clock.advance(30 * SECOND);
    await fail(app, username, 1, '10.0.5.1');
    expectLocked(await login(app, username, password, '10.0.5.1'), 60);
    clock.advance(60 * SECOND);
    expect((await login(app, username, password, '10.0.5.1')).__typename).toBe('AuthPayload');
    // Counting starts over: nine failures are tolerated again, and the next lock is the base delay.
    await fail(app, username, 9, '10.0.5.1');
    expect((await login(app, username, password, '10.0.5.1')).__typename).toBe('AuthPayload');
    await fail(app, username, 10, '10.0.5.1');
    expectLocked(await login(app, username, password, '10.0.5.1'), 30);
  });
});

describe('one address cannot lock the owner out', () => {
  withManualClockLocks('failures from ONE address lock only that address; the owner elsewhere logs in', async () => {
    const { username, password } = await registerUser(app);
    await fail(app, username, 10, '203.0.113.66');
    // The attacker keeps going after each lock runs out.
    for (let round = 0; round < 3; round += 1) {
      const locked = await login(app, username, 'guess', '203.0.113.66');
      expect(locked.code).toBe('LOGIN_LOCKED');
      clock.advance(locked.retryAfter! * SECOND);
      await fail(app, username, 1, '203.0.113.66');
    }
    expect((await login(app, username, password, '198.51.100.7')).__typename).toBe('AuthPayload');
    // The owner's success does not unlock the attacker's address.
    expect((await login(app, username, password, '203.0.113.66')).code).toBe('LOGIN_LOCKED');
  });

  it('counts an IPv6 /64 as one address: rotating through it neither escapes the lock nor locks the owner out', async () => {
    const { username, password } = await registerUser(app);
    // Ten failures from ten addresses of one /64: one source, so that network is locked out of the name…
    for (let i = 1; i <= 10; i += 1) await fail(app, username, 1, `2001:db8:77:1::${i.toString(16)}`);
    expect((await login(app, username, password, '2001:db8:77:1::ffff')).code).toBe('LOGIN_LOCKED');
    // …and ten sources were not reached, so the owner on another network still logs in.
    expect((await login(app, username, password, '2001:db8:77:2::1')).__typename).toBe('AuthPayload');
  });

  it('failures from two addresses (below LOCKOUT_MIN_SOURCES=3) still leave the owner in', async () => {
    const { username, password } = await registerUser(app);
    await fail(app, username, 10, '203.0.113.1');
    await fail(app, username, 10, '203.0.113.2');
    expect((await login(app, username, password, '198.51.100.8')).__typename).toBe('AuthPayload');
  });

  withManualClockLocks('failures from three addresses lock the name for everybody, existing or not', async () => {
    const { username, password } = await registerUser(app);
    const missing = uniqueName('ghost');
    for (const name of [username, missing]) {
      await fail(app, name, 8, '203.0.113.11');
      await fail(app, name, 1, '203.0.113.12');
      await fail(app, name, 1, '203.0.113.13');
    }
    const owner = await login(app, username, password, '198.51.100.9');
    expectLocked(owner, 30);
    expect(await login(app, missing, password, '198.51.100.9')).toEqual(owner);
    clock.advance(30 * SECOND);
    expect((await login(app, username, password, '198.51.100.9')).__typename).toBe('AuthPayload');
  });

  withManualClockLocks('follows LOCKOUT_THRESHOLD, LOCKOUT_MIN_SOURCES, LOCKOUT_BASE_SECONDS and LOCKOUT_MAX_SECONDS', async () => {
    const ownClock = new ManualClock();
    const custom = await createTestApp(
      { TRUST_PROXY: 'true', LOCKOUT_THRESHOLD: '3', LOCKOUT_MIN_SOURCES: '2', LOCKOUT_BASE_SECONDS: '10', LOCKOUT_MAX_SECONDS: '25' },
      { clock: ownClock },
    );
    const { username, password } = await registerUser(custom);
    await fail(custom, username, 2, '10.1.0.1');
    expect((await login(custom, username, password, '10.1.0.1')).__typename).toBe('AuthPayload');
    await fail(custom, username, 2, '10.1.0.1');
    await fail(custom, username, 1, '10.1.0.2');
    // Three failures from two addresses: locked everywhere.
    expectLocked(await login(custom, username, password, '10.1.0.3'), 10);
    const delays = [];
    for (let lock = 0; lock < 4; lock += 1) {
      const locked = await login(custom, username, password, '10.1.0.3');
      delays.push(locked.retryAfter);
      ownClock.advance(locked.retryAfter! * SECOND);
      await fail(custom, username, 1, '10.1.0.1');
    }
    expect(delays).toEqual([10, 20, 25, 25]);
  });
});

describe('combined with the per-address rate limits', () => {
  // The production rate limits (createTestApp raises them): login 30/5m per address, 10/5m per address
  // and name. One address can spend at most 10 guesses per name per 5 minutes and 30 overall; it locks
  // itself out of a name after 10; and it can never lock the name for others alone (3 addresses needed).
  const RATE_LIMITED: Environment = { TRUST_PROXY: 'true', RATE_LIMIT_LOGIN: '30/5m', RATE_LIMIT_LOGIN_ACCOUNT: '10/5m' };

  it('one address spraying many names is rate limited, and the owners of those names are unaffected', async () => {
    const limited = await createTestApp(RATE_LIMITED, { clock: new ManualClock() });
    const victims = [await registerUser(limited), await registerUser(limited), await registerUser(limited), await registerUser(limited)];
    const codes: unknown[] = [];
    for (const victim of victims) {
      for (let i = 0; i < 10; i += 1) {
        const response = await limited.gql(LOGIN, { input: { username: victim.username, password: `guess ${i}` } }, fromIp('203.0.113.99'));
        codes.push(response.errors?.[0]?.extensions?.code ?? response.data.login.code);
      }
    }
    // 30 guesses answered, then RATE_LIMITED: the address cannot add failures anywhere for now.
    expect(codes.slice(0, 30)).toEqual(Array(30).fill('INVALID_CREDENTIALS'));
    expect(codes.slice(30)).toEqual(Array(10).fill('RATE_LIMITED'));
    for (const victim of victims) {
      expect((await login(limited, victim.username, victim.password, '198.51.100.1')).__typename).toBe('AuthPayload');
    }
  });
});
