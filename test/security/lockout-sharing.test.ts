import { describe, expect, it } from 'vitest';
import { bearer, createTestApp, LOGIN, registerUser, type TestApp } from '../support/app.js';
import { rawDb } from '../support/raw-db.js';

// Guessing a password gets the same budget whichever door it knocks on. The lockout (LOCKOUT_THRESHOLD=10
// failures per address, by default) counts failures per ACCOUNT once the typed name is found: logging in
// by username and by email add up, and the password checks of changePassword and deleteAccount count too
// (a stolen access token must not be a fresh set of guesses). A locked account refuses re-authentication
// with the same typed LOGIN_LOCKED answer as login.

const app = await createTestApp({ TRUST_PROXY: 'true' });
const fromIp = (ip: string) => ({ 'x-forwarded-for': ip });

const CHANGE_PASSWORD = /* GraphQL */ `
  mutation ($current: String!, $next: String!) {
    changePassword(currentPassword: $current, newPassword: $next) {
      __typename ... on Error { code } ... on InvalidCredentialsError { retryAfter }
    }
  }
`;
const DELETE_ACCOUNT = /* GraphQL */ `
  mutation ($password: String!) {
    deleteAccount(password: $password) { __typename ... on Error { code } ... on InvalidCredentialsError { retryAfter } }
  }
`;

async function login(target: TestApp, username: string, password: string, ip: string) {
  const answer = await target.gql(LOGIN, { input: { username, password } }, fromIp(ip));
  expect(answer.errors).toBeUndefined();
  return answer.data.login as { __typename: string; code?: string };
}

async function changePassword(token: string, current: string, ip: string) {
  const answer = await app.gql(CHANGE_PASSWORD, { current, next: 'a brand new password' }, { ...bearer(token), ...fromIp(ip) });
  expect(answer.errors).toBeUndefined();
  return answer.data.changePassword as { __typename: string; code?: string; retryAfter?: number | null };
}

async function deleteAccount(token: string, password: string, ip: string) {
  const answer = await app.gql(DELETE_ACCOUNT, { password }, { ...bearer(token), ...fromIp(ip) });
  expect(answer.errors).toBeUndefined();
  return answer.data.deleteAccount as { __typename: string; code?: string; retryAfter?: number | null };
}

const LOCKED = { __typename: 'InvalidCredentialsError', code: 'LOGIN_LOCKED' };
const WRONG = { __typename: 'InvalidCredentialsError', code: 'INVALID_CREDENTIALS' };

describe('re-authentication counts toward the login lockout', () => {
  it('ten wrong current passwords in changePassword lock the account for login and for changePassword', async () => {
    const { username, password, accessToken, user } = await registerUser(app);
    for (let i = 0; i < 10; i++) expect(await changePassword(accessToken, `wrong guess ${i}`, '10.1.0.1')).toMatchObject(WRONG);

    const locked = await changePassword(accessToken, password, '10.1.0.1');
    expect(locked).toMatchObject(LOCKED);
    expect(locked.retryAfter).toBeGreaterThan(0);
    expect(await login(app, username, password, '10.1.0.1')).toMatchObject(LOCKED);
    // Nothing changed: the stored hash still takes the old password (checked from another address).
    const hash = (await rawDb(app.services).user.findUniqueOrThrow({ where: { id: user.id } })).passwordHash;
    expect(await login(app, username, password, '10.1.0.2')).toMatchObject({ __typename: 'AuthPayload' });
    expect((await rawDb(app.services).user.findUniqueOrThrow({ where: { id: user.id } })).passwordHash).toBe(hash);
  });

  it('wrong passwords in deleteAccount and in login add up; a locked account cannot be deleted', async () => {
    const { username, password, accessToken, user } = await registerUser(app);
    for (let i = 0; i < 5; i++) expect(await login(app, username, `wrong login ${i}`, '10.1.1.1')).toMatchObject(WRONG);
    for (let i = 0; i < 5; i++) expect(await deleteAccount(accessToken, `wrong delete ${i}`, '10.1.1.1')).toMatchObject(WRONG);

    expect(await deleteAccount(accessToken, password, '10.1.1.1')).toMatchObject(LOCKED);
    expect(await rawDb(app.services).user.findUnique({ where: { id: user.id } })).not.toBeNull();
    expect(await login(app, username, password, '10.1.1.1')).toMatchObject(LOCKED);
  });

  it('failed logins lock changePassword too', async () => {
    const { username, password, accessToken } = await registerUser(app);
    for (let i = 0; i < 10; i++) expect(await login(app, username, `wrong login ${i}`, '10.1.2.1')).toMatchObject(WRONG);
    expect(await changePassword(accessToken, password, '10.1.2.1')).toMatchObject(LOCKED);
  });
});

describe('an account has one lockout counter, whichever name is typed', () => {
  it('failures by username and by email add up to one lock, which then holds for both', async () => {
    const email = `shared${Date.now()}@example.com`;
    const { username, password } = await registerUser(app, { email });
    for (let i = 0; i < 5; i++) expect(await login(app, username, `wrong ${i}`, '10.2.0.1')).toMatchObject(WRONG);
    for (let i = 0; i < 5; i++) expect(await login(app, email.toUpperCase(), `wrong ${i}`, '10.2.0.1')).toMatchObject(WRONG);

    expect(await login(app, username, password, '10.2.0.1')).toMatchObject(LOCKED);
    expect(await login(app, email, password, '10.2.0.1')).toMatchObject(LOCKED);
    // Another address is not locked (one address cannot lock the owner out).
    expect(await login(app, email, password, '10.2.0.2')).toMatchObject({ __typename: 'AuthPayload' });
  });

  it('a name no account has is still locked by the name, and answers exactly like an existing account', async () => {
    const existing = await registerUser(app, { email: `known${Date.now()}@example.com` });
    const ghost = `ghost${Date.now()}@example.com`;
    for (let i = 0; i < 10; i++) {
      expect(await login(app, existing.username, `wrong ${i}`, '10.2.1.1')).toMatchObject(WRONG);
      expect(await login(app, ghost, `wrong ${i}`, '10.2.1.1')).toMatchObject(WRONG);
    }
    const forExisting = await app.gql(LOGIN, { input: { username: existing.username, password: existing.password } }, fromIp('10.2.1.1'));
    const forGhost = await app.gql(LOGIN, { input: { username: ghost, password: existing.password } }, fromIp('10.2.1.1'));
    expect(forGhost).toEqual(forExisting);
    expect(forExisting.data.login).toMatchObject(LOCKED);
  });
});
