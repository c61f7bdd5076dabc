import { describe, expect, it } from 'vitest';
import { bearer, createTestApp, REFRESH, registerUser, uniqueName } from './support/app.js';
import { createApiToken, errorCode, login, me, readTable, USER_FIELDS } from './support/accounts.js';
import { rawDb } from './support/raw-db.js';

// Email off: the address is plain profile data here. With email on it changes only through requestEmailChange
// (test/email/token-rules.test.ts).
const app = await createTestApp({ EMAIL_ENABLED: 'false' });

const PUBLIC_USER = 'query ($id: ID!) { user(id: $id) { __typename id username fullname } }';
const UPDATE_PROFILE = /* GraphQL */ `
  mutation ($input: UpdateProfileInput!) {
    updateProfile(input: $input) {
      __typename
      ... on User { ${USER_FIELDS} }
      ... on Error { code message }
      ... on ValidationError { fieldErrors { field message } }
    }
  }
`;
const CHANGE_PASSWORD = /* GraphQL */ `
  mutation ($current: String!, $next: String!) {
    changePassword(currentPassword: $current, newPassword: $next) {
      __typename
      ... on PasswordChanged { endedSessions }
      ... on Error { code message }
      ... on ValidationError { fieldErrors { field message } }
    }
  }
`;
const DELETE_ACCOUNT = /* GraphQL */ `
  mutation ($password: String!) {
    deleteAccount(password: $password) {
      __typename
      ... on AccountDeleted { id }
      ... on Error { code message }
    }
  }
`;

async function updateProfile(token: string, input: Record<string, unknown>) {
  const response = await app.gql(UPDATE_PROFILE, { input }, bearer(token));
  expect(response.errors).toBeUndefined();
  return response.data.updateProfile;
}

async function refresh(token: string) {
  const response = await app.gql(REFRESH, { token });
  expect(response.errors).toBeUndefined();
  return response.data.refresh;
}

describe('user(id): public profile', () => {
  it('shows id, username and full name to anyone, including anonymous callers', async () => {
    const { user, accessToken } = await registerUser(app, { email: `${uniqueName('pub')}@example.com` });
    expect((await updateProfile(accessToken, { fullname: 'Public Person' })).__typename).toBe('User');

    const anonymous = await app.gql(PUBLIC_USER, { id: user.id });
    expect(anonymous.errors).toBeUndefined();
    expect(anonymous.data.user).toEqual({ __typename: 'PublicUser', id: user.id, username: user.username, fullname: 'Public Person' });

    const other = await registerUser(app);
    const asOther = await app.gql(PUBLIC_USER, { id: user.id }, bearer(other.accessToken));
    expect(asOther.data.user).toEqual(anonymous.data.user);
  });

  it('exposes nothing beyond id, username and fullname', async () => {
    const { user } = await registerUser(app, { email: `${uniqueName('priv')}@example.com` });
    const introspection = await app.gql('{ __type(name: "PublicUser") { fields { name } } }');
    expect(introspection.data.__type.fields.map((field: { name: string }) => field.name).sort()).toEqual(['fullname', 'id', 'username']);
    for (const field of ['email', 'role', 'createdAt']) {
      const response = await app.gql(`query ($id: ID!) { user(id: $id) { id ${field} } }`, { id: user.id });
      expect(response.data).toBeUndefined();
      expect(response.errors?.[0]?.message).toContain(field);
    }
  });

  it('answers null for an unknown id', async () => {
    for (const id of [crypto.randomUUID(), 'nonsense', 'x'.repeat(500)]) {
      const response = await app.gql(PUBLIC_USER, { id });
      expect(response.errors).toBeUndefined();
      expect(response.data.user).toBeNull();
    }
  });
});

describe('updateProfile', () => {
  it('changes full name and email of the caller', async () => {
    const { user, accessToken } = await registerUser(app);
    const email = `${uniqueName('new')}@Example.com`;
    const updated = await updateProfile(accessToken, { fullname: 'New Name', email });
    expect(updated).toMatchObject({ __typename: 'User', id: user.id, fullname: 'New Name', email });
    const stored = await rawDb(app.services).user.findUniqueOrThrow({ where: { id: user.id } });
    expect(stored).toMatchObject({ fullname: 'New Name', email, emailKey: email.toLowerCase() });
  });

  it('leaves omitted fields unchanged and clears fields set to null', async () => {
    const email = `${uniqueName('keep')}@example.com`;
    const { accessToken } = await registerUser(app, { email });
    await updateProfile(accessToken, { fullname: 'First Name' });

    expect(await updateProfile(accessToken, { fullname: 'Second Name' })).toMatchObject({ fullname: 'Second Name', email });
    expect(await updateProfile(accessToken, {})).toMatchObject({ fullname: 'Second Name', email });
    expect(await updateProfile(accessToken, { email: null })).toMatchObject({ fullname: 'Second Name', email: null });
    expect(await updateProfile(accessToken, { fullname: null })).toMatchObject({ fullname: null, email: null });
  });

  it('frees a cleared email address for others', async () => {
    const email = `${uniqueName('freed')}@example.com`;
    const first = await registerUser(app, { email });
    const second = await registerUser(app);
    expect((await updateProfile(second.accessToken, { email })).__typename).toBe('EmailTakenError');
    await updateProfile(first.accessToken, { email: null });
    expect(await updateProfile(second.accessToken, { email })).toMatchObject({ __typename: 'User', email });
  });

  it('refuses an email address another user has, in any letter case, and changes nothing', async () => {
    const email = `${uniqueName('taken')}@example.com`;
    await registerUser(app, { email });
    const { user, accessToken } = await registerUser(app);
    await updateProfile(accessToken, { fullname: 'Unchanged' });
    for (const variant of [email, email.toUpperCase(), email.replace(/^./, (c) => c.toUpperCase())]) {
      expect(await updateProfile(accessToken, { email: variant, fullname: 'Changed' })).toMatchObject({ __typename: 'EmailTakenError', code: 'EMAIL_TAKEN' });
    }
    const stored = await rawDb(app.services).user.findUniqueOrThrow({ where: { id: user.id } });
    expect(stored).toMatchObject({ email: null, fullname: 'Unchanged' });
  });

  it('lets the caller keep or re-case their own email address', async () => {
    const email = `${uniqueName('mine')}@example.com`;
    const { accessToken } = await registerUser(app, { email });
    expect(await updateProfile(accessToken, { email })).toMatchObject({ __typename: 'User', email });
    expect(await updateProfile(accessToken, { email: email.toUpperCase() })).toMatchObject({ __typename: 'User', email: email.toUpperCase() });
  });

  it.each([
    ['an invalid email', { email: 'not an email' }, 'email'],
    ['an overlong email', { email: `${'a'.repeat(250)}@example.com` }, 'email'],
    ['a blank full name', { fullname: '   ' }, 'fullname'],
    ['an overlong full name', { fullname: 'x'.repeat(101) }, 'fullname'],
    ['a full name with control characters', { fullname: 'a\u0000b' }, 'fullname'],
  ])('answers %s with ValidationError', async (_label, input, field) => {
    const { user, accessToken } = await registerUser(app);
    const result = await updateProfile(accessToken, input);
    expect(result).toMatchObject({ __typename: 'ValidationError', code: 'VALIDATION_FAILED' });
    expect(result.fieldErrors.map((error: { field: string }) => error.field)).toContain(field);
    const stored = await rawDb(app.services).user.findUniqueOrThrow({ where: { id: user.id } });
    expect(stored).toMatchObject({ email: null, fullname: null });
  });

  it('is UNAUTHENTICATED without a token', async () => {
    const response = await app.gql(UPDATE_PROFILE, { input: { fullname: 'Nobody' } });
    expect(errorCode(response)).toBe('UNAUTHENTICATED');
  });
});

describe('changePassword', () => {
  it('refuses a wrong current password and changes nothing', async () => {
    const { username, password, accessToken } = await registerUser(app);
    const other = await login(app, username, password);
    const response = await app.gql(CHANGE_PASSWORD, { current: 'not my password', next: 'a brand new password' }, bearer(accessToken));
    expect(response.errors).toBeUndefined();
    expect(response.data.changePassword).toMatchObject({ __typename: 'InvalidCredentialsError', code: 'INVALID_CREDENTIALS' });
    expect((await login(app, username, password)).__typename).toBe('AuthPayload');
    expect((await login(app, username, 'a brand new password')).__typename).toBe('InvalidCredentialsError');
    expect((await me(app, other.accessToken)).data.me).not.toBeNull();
  });

  it('sets the new password and ends every other session, keeping the current one', async () => {
    const { username, password, accessToken, refreshToken, user } = await registerUser(app);
    const others = [await login(app, username, password), await login(app, username, password)];
    for (const other of others) expect((await me(app, other.accessToken)).data.me.id).toBe(user.id);

    const response = await app.gql(CHANGE_PASSWORD, { current: password, next: 'a brand new password' }, bearer(accessToken));
    expect(response.errors).toBeUndefined();
    expect(response.data.changePassword).toEqual({ __typename: 'PasswordChanged', endedSessions: 2 });

    // The other sessions end at once: access tokens refused, refresh tokens revoked.
    for (const other of others) {
      expect(errorCode(await me(app, other.accessToken))).toBe('UNAUTHENTICATED');
      expect(await refresh(other.refreshToken)).toMatchObject({ __typename: 'InvalidRefreshTokenError', code: 'REFRESH_TOKEN_REVOKED' });
    }
    // The current session stays.
    expect((await me(app, accessToken)).data.me.id).toBe(user.id);
    expect((await refresh(refreshToken)).__typename).toBe('AuthPayload');

    expect((await login(app, username, 'a brand new password')).__typename).toBe('AuthPayload');
    expect(await login(app, username, password)).toMatchObject({ __typename: 'InvalidCredentialsError' });
  });

  it('answers an unacceptable new password with ValidationError', async () => {
    const { username, password, accessToken } = await registerUser(app);
    for (const next of ['short', password, username, 'x'.repeat(300)]) {
      const response = await app.gql(CHANGE_PASSWORD, { current: password, next }, bearer(accessToken));
      expect(response.data.changePassword).toMatchObject({ __typename: 'ValidationError', code: 'VALIDATION_FAILED' });
      expect(response.data.changePassword.fieldErrors.map((error: { field: string }) => error.field)).toContain('newPassword');
    }
    expect((await login(app, username, password)).__typename).toBe('AuthPayload');
  });

  it('is UNAUTHENTICATED without a token', async () => {
    const response = await app.gql(CHANGE_PASSWORD, { current: 'whatever it is', next: 'a brand new password' });
    expect(errorCode(response)).toBe('UNAUTHENTICATED');
  });
});

describe('deleteAccount', () => {
  it('refuses a wrong password and deletes nothing', async () => {
    const { user, accessToken } = await registerUser(app);
    const response = await app.gql(DELETE_ACCOUNT, { password: 'not my password' }, bearer(accessToken));
    expect(response.errors).toBeUndefined();
    expect(response.data.deleteAccount).toMatchObject({ __typename: 'InvalidCredentialsError', code: 'INVALID_CREDENTIALS' });
    expect(await rawDb(app.services).user.findUnique({ where: { id: user.id } })).not.toBeNull();
    expect((await me(app, accessToken)).data.me.id).toBe(user.id);
  });

  it('deletes the caller with every session and API token; their tokens die at once', async () => {
    const { username, password, accessToken, user } = await registerUser(app);
    const second = await login(app, username, password);
    const { token: apiToken } = await createApiToken(app, accessToken, { scopes: ['PROFILE_READ'] });
    // Warm every credential, so a stale in-memory "valid" cannot hide behind a cold cache.
    expect((await me(app, second.accessToken)).data.me.id).toBe(user.id);
    expect((await me(app, apiToken)).data.me.id).toBe(user.id);
    const bystander = await registerUser(app);

    const response = await app.gql(DELETE_ACCOUNT, { password }, bearer(accessToken));
    expect(response.errors).toBeUndefined();
    expect(response.data.deleteAccount).toEqual({ __typename: 'AccountDeleted', id: user.id });

    for (const token of [accessToken, second.accessToken, apiToken]) expect(errorCode(await me(app, token))).toBe('UNAUTHENTICATED');
    expect(await refresh(second.refreshToken)).toMatchObject({ __typename: 'InvalidRefreshTokenError' });
    expect((await login(app, username, password)).__typename).toBe('InvalidCredentialsError');
    expect((await app.gql(PUBLIC_USER, { id: user.id })).data.user).toBeNull();

    expect(await readTable(app, 'SELECT id FROM User WHERE id = ?', user.id)).toEqual([]);
    expect(await readTable(app, 'SELECT id FROM Session WHERE userId = ?', user.id)).toEqual([]);
    expect(await readTable(app, 'SELECT id FROM ApiToken WHERE userId = ?', user.id)).toEqual([]);
    // Nobody else was touched.
    expect((await me(app, bystander.accessToken)).data.me.id).toBe(bystander.user.id);
  });

  it('is UNAUTHENTICATED without a token', async () => {
    expect(errorCode(await app.gql(DELETE_ACCOUNT, { password: 'whatever it is' }))).toBe('UNAUTHENTICATED');
  });
});
