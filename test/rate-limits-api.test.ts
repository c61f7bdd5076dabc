import { describe, expect, it } from 'vitest';
import { createTestApp, LOGIN, REGISTER, uniqueName } from './support/app.js';

const app = await createTestApp({
  TRUST_PROXY: 'true',
  RATE_LIMIT_LOGIN: '6/1m',
  RATE_LIMIT_LOGIN_ACCOUNT: '3/1m',
  RATE_LIMIT_REGISTER: '2/1h',
  RATE_LIMIT_USER_EXISTS: '4/1m',
  RATE_LIMIT_REFRESH: '3/1m',
});

const from = (ip: string) => ({ 'x-forwarded-for': `198.51.100.200, ${ip}` });
const loginAs = (username: string, ip: string) => app.gql(LOGIN, { input: { username, password: 'whatever-pass' } }, from(ip));

function expectRateLimited(response: { errors?: { extensions?: Record<string, unknown> }[] }, windowSeconds = 60) {
  expect(response.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
  const retryAfter = response.errors?.[0]?.extensions?.retryAfter as number;
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(windowSeconds);
}

describe('rate limits', () => {
  it('limits login per address and account, then per address', async () => {
    const ip = '192.0.2.1';
    for (let i = 0; i < 3; i++) expect((await loginAs('victim', ip)).data.login.__typename).toBe('InvalidCredentialsError');
    expectRateLimited(await loginAs('VICTIM', ip));
    // Other accounts from the same address still get through, up to the per-address limit.
    expect((await loginAs('someone-else', ip)).data.login.__typename).toBe('InvalidCredentialsError');
    expect((await loginAs('third', ip)).data.login.__typename).toBe('InvalidCredentialsError');
    expectRateLimited(await loginAs('fourth', ip));
    // Another address is unaffected.
    expect((await loginAs('victim', '192.0.2.2')).data.login.__typename).toBe('InvalidCredentialsError');
  });

  it('limits registration per address', async () => {
    const register = () => app.gql(REGISTER, { input: { username: uniqueName(), password: 'password123' } }, from('192.0.2.10'));
    expect((await register()).data.register.__typename).toBe('AuthPayload');
    expect((await register()).data.register.__typename).toBe('AuthPayload');
    const refused = await register();
    expectRateLimited(refused, 3600);
    expect(refused.errors![0]!.extensions!.retryAfter).toBeGreaterThan(3000);
  });

  it('limits userExists and refresh per address', async () => {
    const exists = () => app.gql('{ userExists(username: "abc") }', {}, from('192.0.2.20'));
    for (let i = 0; i < 4; i++) expect((await exists()).data.userExists).toBe(false);
    expectRateLimited(await exists());

    const refresh = () => app.gql('mutation { refresh(refreshToken: "x") { __typename } }', {}, from('192.0.2.20'));
    for (let i = 0; i < 3; i++) expect((await refresh()).data.refresh.__typename).toBe('InvalidRefreshTokenError');
    expectRateLimited(await refresh());
  });

  it('admits exactly max of a parallel burst', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => loginAs(uniqueName(), '192.0.2.30')));
    expect(results.filter((result) => result.data?.login).length).toBe(6);
    expect(results.filter((result) => result.errors?.[0]?.extensions?.code === 'RATE_LIMITED').length).toBe(14);
  });

  it('ignores X-Forwarded-For unless TRUST_PROXY is set', async () => {
    const direct = await createTestApp({ RATE_LIMIT_USER_EXISTS: '2/1m' });
    const exists = (ip: string) => direct.gql('{ userExists(username: "abc") }', {}, from(ip));
    expect((await exists('192.0.2.40')).data.userExists).toBe(false);
    expect((await exists('192.0.2.41')).data.userExists).toBe(false);
    expectRateLimited(await exists('192.0.2.42'));
  });
});
