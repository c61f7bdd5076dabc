import { describe, expect, it } from 'vitest';
import { onPostgres } from '../support/db.js';
import { type Instance, useInstances } from '../support/instances.js';
import { login, register } from './operations.js';

// Issue 15: with REDIS_URL the rate limits and the login lockout are shared by all instances and atomic,
// so two instances are not twice the limit. Client addresses come from X-Forwarded-For (TRUST_PROXY, as
// behind the load balancer), a fresh one per case so the cases share no counter.
// Only on PostgreSQL (npm run test:postgres): several servers on one database; the SQLite run skips it.

const fromIp = (ip: string) => ({ 'x-forwarded-for': ip });

describe.runIf(onPostgres)('limits shared by two instances through Redis', { timeout: 120_000 }, () => {
  const cluster = useInstances({
    count: 2,
    env: { TRUST_PROXY: 'true', RATE_LIMIT_LOGIN: '5/1m', LOCKOUT_THRESHOLD: '2', LOCKOUT_BASE_SECONDS: '60' },
  });
  const codeOf = (answer: Awaited<ReturnType<typeof login>>) =>
    (answer.errors?.[0]?.extensions?.code as string | undefined) ?? (answer.data?.login?.code as string | undefined) ?? answer.data?.login?.__typename;

  it('a parallel burst of 20 logins from one address across A and B against RATE_LIMIT_LOGIN=5/1m admits exactly 5', async () => {
    const user = await register(cluster.instances[0]!);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => login(cluster.instances[i % 2]!, user.username, user.password, fromIp('10.15.0.1'))),
    );
    const codes = answers.map(codeOf);
    // Admitted: anything the limiter let through to the password check (a success, or the lockout's own
    // "others are still being checked" refusal); the rest are RATE_LIMITED.
    const limited = codes.filter((code) => code === 'RATE_LIMITED').length;
    console.log(`[multi-instance] login burst across A and B: ${20 - limited} admitted, ${limited} RATE_LIMITED (${JSON.stringify(codes)})`);
    expect(20 - limited).toBe(5);
    expect(codes.filter((code) => code === 'AuthPayload').length).toBeGreaterThanOrEqual(1);
  });

  it('the lockout counts failures made on both: one on A and one on B lock the name (LOCKOUT_THRESHOLD=2) on both', async () => {
    const [a, b] = cluster.instances;
    const user = await register(a!);
    const ip = fromIp('10.15.0.2');
    const attempt = (instance: Instance, password: string) => login(instance, user.username, password, ip).then(codeOf);
    expect(await attempt(a!, 'wrong password one')).toBe('INVALID_CREDENTIALS');
    expect(await attempt(b!, 'wrong password two')).toBe('INVALID_CREDENTIALS');
    // Even the right password is refused now, on the instance that saw one failure as on the other.
    expect(await attempt(a!, user.password)).toBe('LOGIN_LOCKED');
    expect(await attempt(b!, user.password)).toBe('LOGIN_LOCKED');
  });
});
