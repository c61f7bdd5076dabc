import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { createTestApp, LOGIN, registerUser, type TestApp, uniqueName } from '../support/app.js';
import { OwnRedis, uniquePrefix } from '../support/redis.js';

// Two app instances sharing limits through a private redis-server, which is stopped in the middle:
// limits fall back to each instance's own counters (logged once), login stays locked out per account,
// and the limits are shared again once Redis is back.

const own = await OwnRedis.start();
const logLines: { outcome?: string }[] = [];
const logger = createLogger('info', { write: (line: string) => void logLines.push(JSON.parse(line)) });
const environment = { TRUST_PROXY: 'true', REDIS_URL: own.url, REDIS_KEY_PREFIX: uniquePrefix('outage'), RATE_LIMIT_USER_EXISTS: '5/1m' };
const a = await createTestApp(environment, { logger });
const b = await createTestApp(environment, { logger: createLogger('silent') });

const fromIp = (ip: string) => ({ 'x-forwarded-for': ip });

/** `calls` userExists queries at once, alternating between `apps`: how many were answered and refused. */
async function burst(apps: TestApp[], calls: number, ip: string) {
  const answers = await Promise.all(Array.from({ length: calls }, (_, i) => apps[i % apps.length]!.gql('{ userExists(username: "abc") }', {}, fromIp(ip))));
  return {
    answered: answers.filter((answer) => answer.data?.userExists === false).length,
    limited: answers.filter((answer) => answer.errors?.[0]?.extensions?.code === 'RATE_LIMITED').length,
  };
}

async function loginCode(app: TestApp, username: string, password: string, ip: string) {
  const answer = await app.gql(LOGIN, { input: { username, password } }, fromIp(ip));
  return answer.data?.login?.code ?? answer.data?.login?.__typename ?? answer.errors?.[0]?.extensions?.code;
}

const outcomes = () => logLines.map((line) => line.outcome).filter((outcome) => outcome?.startsWith('redis_'));

describe('shared limits and a Redis outage', () => {
  it('shares limits while Redis is up, falls back per instance while it is down, and shares again after', async () => {
    expect(a.services.limits.shared && a.services.limits.sharedStoreAvailable()).toBe(true);
    expect(await burst([a, b], 30, '192.0.2.1')).toEqual({ answered: 5, limited: 25 });
    // The lockout too: a name no account has is keyed by the name on both instances.
    const ghost = uniqueName('ghost');
    for (let i = 0; i < 5; i += 1) expect(await loginCode(a, ghost, `guess ${i}`, '192.0.2.2')).toBe('INVALID_CREDENTIALS');
    for (let i = 0; i < 5; i += 1) expect(await loginCode(b, ghost, `guess ${i}`, '192.0.2.2')).toBe('INVALID_CREDENTIALS');
    expect(await loginCode(a, ghost, 'one more', '192.0.2.2')).toBe('LOGIN_LOCKED');

    await own.stop();
    // Each instance counts alone: the limit applies per instance, so the two admit it twice.
    expect(await burst([a], 12, '192.0.2.3')).toEqual({ answered: 5, limited: 7 });
    expect(await burst([b], 12, '192.0.2.3')).toEqual({ answered: 5, limited: 7 });
    expect(a.services.limits.sharedStoreAvailable()).toBe(false);
    // Login is still locked out per account on the instance that saw the failures.
    const victim = await registerUser(a);
    for (let i = 0; i < 10; i += 1) expect(await loginCode(a, victim.username, `wrong ${i}`, '192.0.2.4')).toBe('INVALID_CREDENTIALS');
    expect(await loginCode(a, victim.username, victim.password, '192.0.2.4')).toBe('LOGIN_LOCKED');
    expect(outcomes()).toEqual(['redis_unavailable']);

    await own.start();
    await expect.poll(() => a.services.limits.sharedStoreAvailable() && b.services.limits.sharedStoreAvailable(), { timeout: 15_000 }).toBe(true);
    expect(outcomes()).toEqual(['redis_unavailable', 'redis_available']);
    expect(await burst([a, b], 30, '192.0.2.5')).toEqual({ answered: 5, limited: 25 });
    // Shutting down is not an outage.
    await a.services.limits.close();
    await new Promise((resolve) => setTimeout(resolve, 200)); // the connection's 'close' event comes after quit()
    expect(outcomes()).toEqual(['redis_unavailable', 'redis_available']);
  });
});
