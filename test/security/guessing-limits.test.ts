import { describe, expect, it } from 'vitest';
import { clientNetwork } from '../../src/auth/rate-limit.js';
import { loadConfig } from '../../src/config.js';
import { bearer, createTestApp, REGISTER, registerUser, uniqueName, type TestApp } from '../support/app.js';
import { errorCode } from '../support/accounts.js';

// What an attacker does to learn which addresses and names are registered, or to multiply their budget
// of guesses: probe through every answer that says "taken", from many accounts, from many addresses of
// one IPv6 network.

const from = (ip: string) => ({ 'x-forwarded-for': ip });

const UPDATE_PROFILE = /* GraphQL */ `
  mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { __typename ... on Error { code } } }
`;

async function updateProfile(app: TestApp, accessToken: string, ip: string, input: Record<string, unknown>) {
  const response = await app.gql(UPDATE_PROFILE, { input }, { ...bearer(accessToken), ...from(ip) });
  return errorCode(response) ?? response.data?.updateProfile?.code ?? response.data?.updateProfile?.__typename;
}

async function registerFrom(app: TestApp, ip: string) {
  const username = uniqueName();
  const response = await app.gql(REGISTER, { input: { username, password: 'a long enough password' } }, from(ip));
  return errorCode(response) ?? response.data?.register?.__typename;
}

// With email on, updateProfile changes no address (requestEmailChange does, and never says "taken"), so
// EMAIL_TAKEN comes from updateProfile only with email off.
describe("updateProfile's EMAIL_TAKEN answer is rate limited", () => {
  it('per client address, across accounts', async () => {
    const app = await createTestApp({ TRUST_PROXY: 'true', RATE_LIMIT_AVAILABILITY_PROBE: '3/1h', EMAIL_ENABLED: 'false' });
    const victim = await registerUser(app, { email: 'victim@example.com' });
    expect(victim.user).toBeDefined();
    const [first, second] = [await registerUser(app), await registerUser(app)];

    const probes = [];
    for (const email of ['victim@example.com', 'free-1@example.com', 'free-2@example.com', 'victim@example.com']) {
      probes.push(await updateProfile(app, first.accessToken, '203.0.113.7', { email }));
    }
    // The fourth probe is refused before the address is looked up: it says nothing about the victim.
    expect(probes).toEqual(['EMAIL_TAKEN', 'User', 'User', 'RATE_LIMITED']);
    // Another account from the same address shares the budget...
    expect(await updateProfile(app, second.accessToken, '203.0.113.7', { email: 'victim@example.com' })).toBe('RATE_LIMITED');
    // ...another address has its own, and a display-name change reveals nothing, so it is not counted.
    expect(await updateProfile(app, second.accessToken, '203.0.113.8', { email: 'victim@example.com' })).toBe('EMAIL_TAKEN');
    expect(await updateProfile(app, first.accessToken, '203.0.113.7', { fullname: 'Still Allowed' })).toBe('User');
  });

  it('per account, across client addresses', async () => {
    const app = await createTestApp({ TRUST_PROXY: 'true', RATE_LIMIT_AVAILABILITY_PROBE_ACCOUNT: '3/1h', EMAIL_ENABLED: 'false' });
    await registerUser(app, { email: 'victim@example.com' });
    const [prober, other] = [await registerUser(app), await registerUser(app)];
    const answers = [];
    for (let i = 1; i <= 4; i++) answers.push(await updateProfile(app, prober.accessToken, `198.51.100.${i}`, { email: 'victim@example.com' }));
    expect(answers).toEqual(['EMAIL_TAKEN', 'EMAIL_TAKEN', 'EMAIL_TAKEN', 'RATE_LIMITED']);
    expect(await updateProfile(app, other.accessToken, '198.51.100.4', { email: 'victim@example.com' })).toBe('EMAIL_TAKEN');
  });

  it('is configurable like every other rule', () => {
    const config = loadConfig({ RATE_LIMIT_AVAILABILITY_PROBE: '7/10m', RATE_LIMIT_AVAILABILITY_PROBE_ACCOUNT: '2/1d' });
    expect(config.rateLimits.rules.availabilityProbe).toEqual({ max: 7, windowMs: 600_000 });
    expect(config.rateLimits.rules.availabilityProbeAccount).toEqual({ max: 2, windowMs: 86_400_000 });
    expect(() => loadConfig({ RATE_LIMIT_AVAILABILITY_PROBE: 'lots' })).toThrow(/RATE_LIMIT_AVAILABILITY_PROBE/);
  });
});

describe('client addresses are limited per IPv6 network', () => {
  it('normalizes an address to its network: IPv6 to the configured prefix, IPv4 (also mapped) as is', () => {
    expect(clientNetwork('203.0.113.9', 64)).toBe('203.0.113.9');
    expect(clientNetwork('::ffff:203.0.113.9', 64)).toBe('203.0.113.9');
    expect(clientNetwork('::ffff:cb00:7109', 64)).toBe('203.0.113.9');
    expect(clientNetwork('2001:db8:1:2:aaaa:bbbb:cccc:dddd', 64)).toBe('2001:db8:1:2::/64');
    expect(clientNetwork('2001:DB8:1:2::1', 64)).toBe('2001:db8:1:2::/64');
    expect(clientNetwork('2001:db8:1:2::1', 56)).toBe('2001:db8:1::/56');
    expect(clientNetwork('2001:db8:1:ff::1', 57)).toBe('2001:db8:1:80::/57');
    expect(clientNetwork('2001:db8:1:2::1', 128)).toBe('2001:db8:1:2::1/128');
    expect(clientNetwork('fe80::1%eth0', 64)).toBe('fe80::/64');
    expect(clientNetwork('not an address', 64)).toBe('not an address');
  });

  it('counts every address of one /64 against one budget, and keeps the full address in the session', async () => {
    const app = await createTestApp({ TRUST_PROXY: 'true', RATE_LIMIT_REGISTER: '2/1h' });
    expect(await registerFrom(app, '2001:db8:1:2::1')).toBe('AuthPayload');
    expect(await registerFrom(app, '2001:db8:1:2:ffff:ffff:ffff:fffe')).toBe('AuthPayload');
    expect(await registerFrom(app, '2001:db8:1:2::abcd')).toBe('RATE_LIMITED');
    // The next /64 is another client.
    expect(await registerFrom(app, '2001:db8:1:3::1')).toBe('AuthPayload');

    const { username, password } = await registerUser(app, {});
    const session = await app.gql(
      'mutation ($input: LoginInput!) { login(input: $input) { ... on AuthPayload { accessToken } } }',
      { input: { username, password } },
      from('2001:db8:1:3::beef'),
    );
    const sessions = await app.gql('query { mySessions { ip current } }', {}, bearer(session.data.login.accessToken));
    expect(sessions.data.mySessions.find((entry: { current: boolean }) => entry.current).ip).toBe('2001:db8:1:3::beef');
  });

  it('counts an IPv4-mapped address as the IPv4 address', async () => {
    const app = await createTestApp({ TRUST_PROXY: 'true', RATE_LIMIT_REGISTER: '2/1h' });
    expect(await registerFrom(app, '192.0.2.10')).toBe('AuthPayload');
    expect(await registerFrom(app, '::ffff:192.0.2.10')).toBe('AuthPayload');
    expect(await registerFrom(app, '192.0.2.10')).toBe('RATE_LIMITED');
    expect(await registerFrom(app, '192.0.2.11')).toBe('AuthPayload');
  });

  it('uses RATE_LIMIT_IPV6_PREFIX (0..128)', async () => {
    const app = await createTestApp({ TRUST_PROXY: 'true', RATE_LIMIT_REGISTER: '1/1h', RATE_LIMIT_IPV6_PREFIX: '48' });
    expect(await registerFrom(app, '2001:db8:1:2::1')).toBe('AuthPayload');
    expect(await registerFrom(app, '2001:db8:1:9999::1')).toBe('RATE_LIMITED');
    expect(await registerFrom(app, '2001:db8:2::1')).toBe('AuthPayload');
    for (const bad of ['-1', '129', '64.5']) expect(() => loadConfig({ RATE_LIMIT_IPV6_PREFIX: bad })).toThrow(/RATE_LIMIT_IPV6_PREFIX/);
  });

  it('applies to the per-account login limit too', async () => {
    const app = await createTestApp({ TRUST_PROXY: 'true', RATE_LIMIT_LOGIN_ACCOUNT: '2/1h' });
    const { username } = await registerUser(app);
    const attempt = async (ip: string) => {
      const response = await app.gql(
        'mutation ($input: LoginInput!) { login(input: $input) { __typename ... on Error { code } } }',
        { input: { username, password: 'not the password' } },
        from(ip),
      );
      return errorCode(response) ?? response.data.login.code;
    };
    expect(await attempt('2001:db8:aa:1::1')).toBe('INVALID_CREDENTIALS');
    expect(await attempt('2001:db8:aa:1::2')).toBe('INVALID_CREDENTIALS');
    expect(await attempt('2001:db8:aa:1::3')).toBe('RATE_LIMITED');
  });
});
