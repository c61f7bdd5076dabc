import { describe, expect, it, vi } from 'vitest';
import { PasswordHasher } from '../src/auth/passwords.js';
import { createTestApp, REGISTER, registerUser, uniqueName } from './support/app.js';
import { rawDb } from './support/raw-db.js';

const app = await createTestApp();

async function register(input: Record<string, unknown>) {
  const response = await app.gql(REGISTER, { input });
  expect(response.errors).toBeUndefined();
  return response.data.register;
}

async function userCount() {
  return rawDb(app.services).user.count();
}

describe('register', () => {
  it('creates the user and a session, and returns tokens', async () => {
    const username = uniqueName('Alice');
    const result = await register({ username, password: 'correct horse battery', email: `${username}@Example.com`, fullname: 'Alice A.' });

    expect(result.__typename).toBe('AuthPayload');
    expect(result.tokenType).toBe('Bearer');
    expect(result.expiresIn).toBe(900);
    expect(result.accessToken.split('.')).toHaveLength(3);
    expect(result.refreshToken).toMatch(/^grt_/);
    expect(result.user).toMatchObject({ username, email: `${username}@Example.com`, fullname: 'Alice A.', role: 'USER' });
    expect(new Date(result.user.createdAt).getTime()).toBeGreaterThan(Date.now() - 60_000);

    const sessions = await rawDb(app.services).session.findMany({ where: { userId: result.user.id } });
    expect(sessions).toHaveLength(1);
    const stored = await rawDb(app.services).user.findUniqueOrThrow({ where: { id: result.user.id } });
    expect(stored.passwordHash).toMatch(/^\$argon2id\$/);
    expect(stored.passwordHash).not.toContain('correct horse battery');
  });

  it('refuses a username taken in any letter case, and changes nothing', async () => {
    const { username } = await registerUser(app);
    const before = await userCount();
    for (const variant of [username, username.toUpperCase(), username.toLowerCase()]) {
      const result = await register({ username: variant, password: 'another good password' });
      expect(result).toMatchObject({ __typename: 'UsernameTakenError', code: 'USERNAME_TAKEN' });
      expect(result.message).toBeTruthy();
    }
    expect(await userCount()).toBe(before);
  });

  it('refuses an email taken in any letter case', async () => {
    const email = `${uniqueName('mail')}@example.com`;
    await registerUser(app, { email });
    const result = await register({ username: uniqueName(), password: 'another good password', email: email.toUpperCase() });
    expect(result).toMatchObject({ __typename: 'EmailTakenError', code: 'EMAIL_TAKEN' });
  });

  it.each([
    ['too short username', { username: 'ab' }, 'username'],
    ['too long username', { username: 'a'.repeat(33) }, 'username'],
    ['username with @', { username: 'bob@home' }, 'username'],
    ['username with a space', { username: 'bob smith' }, 'username'],
    ['unicode username', { username: 'bøb_x' }, 'username'],
    ['too short password', { password: '1234567' }, 'password'],
    ['too long password', { password: 'x'.repeat(257) }, 'password'],
    ['password equal to the username', { username: 'SameName', password: 'samename' }, 'password'],
    ['invalid email', { email: 'not-an-email' }, 'email'],
    ['overlong fullname', { fullname: 'x'.repeat(101) }, 'fullname'],
    ['blank fullname', { fullname: '   ' }, 'fullname'],
  ])('refuses a %s with a ValidationError on that field', async (_name, override, field) => {
    const before = await userCount();
    const result = await register({ username: uniqueName(), password: 'a fine password', ...override });
    expect(result.__typename).toBe('ValidationError');
    expect(result.code).toBe('VALIDATION_FAILED');
    expect(result.fieldErrors.map((error: { field: string }) => error.field)).toContain(field);
    expect(await userCount()).toBe(before);
  });

  it('accepts the bounds exactly', async () => {
    const shortName = `a${Math.random().toString(36).slice(2, 4)}`;
    expect((await register({ username: shortName, password: 'x'.repeat(8) })).__typename).toBe('AuthPayload');
    const longName = `${uniqueName()}${'b'.repeat(32)}`.slice(0, 32);
    expect((await register({ username: longName, password: 'y'.repeat(256) })).__typename).toBe('AuthPayload');
  });

  it('reports every invalid field at once', async () => {
    const result = await register({ username: 'x', password: 'short', email: 'nope' });
    expect(result.fieldErrors.map((error: { field: string }) => error.field).sort()).toEqual(['email', 'password', 'username']);
  });

  it('refuses a megabyte password before reading it all, and a long one before hashing it', async () => {
    const hash = vi.spyOn(PasswordHasher.prototype, 'hash');
    try {
      const before = await userCount();
      const huge = await app.gql(REGISTER, { input: { username: uniqueName(), password: 'p'.repeat(1_000_000) } });
      expect(huge.status).toBe(413);
      const long = await register({ username: uniqueName(), password: 'p'.repeat(10_000) });
      expect(long.__typename).toBe('ValidationError');
      expect(hash).not.toHaveBeenCalled();
      expect(await userCount()).toBe(before);
    } finally {
      hash.mockRestore();
    }
  });

  it('lets exactly one of many parallel registrations of the same name (any case) win', async () => {
    const base = uniqueName('race');
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => register({ username: i % 2 ? base.toUpperCase() : base, password: 'parallel password' })),
    );
    expect(results.filter((result) => result.__typename === 'AuthPayload')).toHaveLength(1);
    expect(results.filter((result) => result.__typename === 'UsernameTakenError')).toHaveLength(11);
    expect(await rawDb(app.services).user.count({ where: { usernameKey: base.toLowerCase() } })).toBe(1);
  });
});
