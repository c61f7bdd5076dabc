import { describe, expect, it, vi } from 'vitest';
import { PasswordHasher } from '../src/auth/passwords.js';
import { bearer, createTestApp, LOGIN, ME, registerUser, uniqueName } from './support/app.js';
import { rawDb } from './support/raw-db.js';

const app = await createTestApp({ TRUST_PROXY: 'true' });

async function login(username: string, password: string, headers: Record<string, string> = {}) {
  const response = await app.gql(LOGIN, { input: { username, password } }, headers);
  expect(response.errors).toBeUndefined();
  return response.data.login;
}

describe('login', () => {
  it('logs in by username in any case and by email in any case', async () => {
    const email = `${uniqueName('mail')}@example.com`;
    const { username, password, user } = await registerUser(app, { email });
    for (const identifier of [username, username.toUpperCase(), email, email.toUpperCase()]) {
      const result = await login(identifier, password);
      expect(result.__typename).toBe('AuthPayload');
      expect(result.user.id).toBe(user.id);
      const me = await app.gql(ME, {}, bearer(result.accessToken));
      expect(me.data.me).toMatchObject({ id: user.id, username });
    }
  });

  it('creates a session per login with the user agent and client address', async () => {
    const { username, password, user } = await registerUser(app);
    await login(username, password, { 'user-agent': 'TestBrowser/1.0', 'x-forwarded-for': '203.0.113.9' });
    const sessions = await rawDb(app.services).session.findMany({ where: { userId: user.id }, orderBy: { createdAt: 'asc' } });
    expect(sessions).toHaveLength(2);
    expect(sessions[1]).toMatchObject({ userAgent: 'TestBrowser/1.0', ip: '203.0.113.9', revokedAt: null, refreshCounter: 0 });
    expect(sessions[1]!.expiresAt.getTime()).toBeGreaterThan(Date.now() + 89 * 86_400_000);
  });

  it('answers an unknown user and a wrong password identically, after the same password work', async () => {
    const { username } = await registerUser(app);
    const verify = vi.spyOn(PasswordHasher.prototype, 'verify');
    const wrongPassword = await login(username, 'not the password');
    const unknownUser = await login(uniqueName('ghost'), 'not the password');
    expect(wrongPassword).toEqual(unknownUser);
    expect(wrongPassword).toEqual({ __typename: 'InvalidCredentialsError', code: 'INVALID_CREDENTIALS', message: 'Invalid username or password.' });
    // One real argon2 verification each: the unknown user is checked against a dummy hash.
    expect(verify).toHaveBeenCalledTimes(2);
    verify.mockRestore();
  });

  it('does not create a session for a failed login', async () => {
    const { username, user } = await registerUser(app);
    await login(username, 'wrong password!');
    expect(await rawDb(app.services).session.count({ where: { userId: user.id } })).toBe(1);
  });

  it('refuses a disabled user, and says so only to someone who knows the password', async () => {
    const { username, password, user } = await registerUser(app);
    await rawDb(app.services).user.update({ where: { id: user.id }, data: { disabledAt: new Date() } });
    expect((await login(username, 'wrong password!')).__typename).toBe('InvalidCredentialsError');
    expect(await login(username, password)).toMatchObject({ __typename: 'AccountDisabledError', code: 'ACCOUNT_DISABLED' });
    expect(await rawDb(app.services).session.count({ where: { userId: user.id } })).toBe(1);
  });

  it('refuses oversized input with a ValidationError before any hashing', async () => {
    const verify = vi.spyOn(PasswordHasher.prototype, 'verify');
    const result = await login('someone', 'x'.repeat(257));
    expect(result).toMatchObject({ __typename: 'ValidationError', code: 'VALIDATION_FAILED' });
    expect(result.fieldErrors[0].field).toBe('password');
    expect((await login('u'.repeat(300), 'password')).__typename).toBe('ValidationError');
    expect(verify).not.toHaveBeenCalled();
    verify.mockRestore();
  });
});

describe('userExists', () => {
  it('answers true for a registered name in any case and false otherwise', async () => {
    const { username } = await registerUser(app);
    const query = 'query ($u: String!) { userExists(username: $u) }';
    expect((await app.gql(query, { u: username })).data.userExists).toBe(true);
    expect((await app.gql(query, { u: username.toUpperCase() })).data.userExists).toBe(true);
    expect((await app.gql(query, { u: uniqueName('nobody') })).data.userExists).toBe(false);
    expect((await app.gql(query, { u: 'not a valid name!' })).data.userExists).toBe(false);
    expect((await app.gql(query, { u: 'x'.repeat(50_000) })).data.userExists).toBe(false);
  });
});
