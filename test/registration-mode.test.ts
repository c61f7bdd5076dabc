import { describe, expect, it } from 'vitest';
import { bearer, createTestApp, REGISTER, uniqueName } from './support/app.js';
import { createApiToken, createLoggedInAdmin, errorCode, login, me, readTable } from './support/accounts.js';
import { rawDb } from './support/raw-db.js';

const app = await createTestApp({ REGISTRATION_MODE: 'admin' });

type RegisterInput = { username: string; password: string; email?: string; fullname?: string };
const input = (overrides: Partial<RegisterInput> = {}): RegisterInput => ({ username: uniqueName('new'), password: 'a long enough password', ...overrides });
const REGISTER_CREATED = /* GraphQL */ `
  mutation ($input: RegisterInput!) {
    register(input: $input) {
      __typename
      ... on UserCreated { user { id username email fullname role } }
      ... on AuthPayload { accessToken }
      ... on Error { code message }
      ... on ValidationError { fieldErrors { field message } }
    }
  }
`;

async function userNamed(username: string) {
  return rawDb(app.services).user.findUnique({ where: { usernameKey: username.toLowerCase() } });
}

describe('REGISTRATION_MODE', () => {
  it('defaults to open: anyone may register and is logged in', async () => {
    const open = await createTestApp();
    expect(open.services.config.registrationMode).toBe('open');
    const response = await open.gql(REGISTER, { input: input() });
    expect(response.data.register.__typename).toBe('AuthPayload');
  });
});

describe('register with REGISTRATION_MODE=admin', () => {
  it('refuses an anonymous caller with UNAUTHENTICATED and creates nothing', async () => {
    const attempt = input();
    const response = await app.gql(REGISTER_CREATED, { input: attempt });
    expect(errorCode(response)).toBe('UNAUTHENTICATED');
    expect(await userNamed(attempt.username)).toBeNull();
  });

  it('refuses a regular user with FORBIDDEN and creates nothing', async () => {
    const username = uniqueName('plain');
    await app.services.accounts.createUser({ username, password: 'a long enough password' });
    const session = await login(app, username, 'a long enough password');
    expect(session.__typename).toBe('AuthPayload');
    const attempt = input();
    expect(errorCode(await app.gql(REGISTER_CREATED, { input: attempt }, bearer(session.accessToken)))).toBe('FORBIDDEN');
    expect(await userNamed(attempt.username)).toBeNull();
  });

  it('lets an administrator create a user: UserCreated, no session for it, the admin stays logged in', async () => {
    const admin = await createLoggedInAdmin(app);
    const sessionsBefore = await readTable(app, 'SELECT id FROM Session WHERE userId = ?', admin.user.id);
    const attempt = input({ email: `${uniqueName('mail')}@example.com`, fullname: 'Made By Admin' });

    const response = await app.gql(REGISTER_CREATED, { input: attempt }, bearer(admin.accessToken));
    expect(response.errors).toBeUndefined();
    const created = response.data.register;
    expect(created).toEqual({
      __typename: 'UserCreated',
      user: { id: expect.any(String), username: attempt.username, email: attempt.email, fullname: 'Made By Admin', role: 'USER' },
    });

    expect(await readTable(app, 'SELECT id FROM Session WHERE userId = ?', created.user.id)).toEqual([]);
    expect(await readTable(app, 'SELECT id FROM Session WHERE userId = ?', admin.user.id)).toEqual(sessionsBefore);
    expect((await me(app, admin.accessToken)).data.me.id).toBe(admin.user.id);

    // The new user can log in with the password the administrator set.
    const payload = await login(app, attempt.username, attempt.password);
    expect(payload.__typename).toBe('AuthPayload');
    expect(payload.user.id).toBe(created.user.id);
  });

  it('still returns validation and taken-name errors as union members', async () => {
    const admin = await createLoggedInAdmin(app);
    const invalid = await app.gql(REGISTER_CREATED, { input: input({ username: 'ab', password: 'short' }) }, bearer(admin.accessToken));
    expect(invalid.errors).toBeUndefined();
    expect(invalid.data.register).toMatchObject({ __typename: 'ValidationError', code: 'VALIDATION_FAILED' });
    expect(invalid.data.register.fieldErrors.map((error: { field: string }) => error.field).sort()).toEqual(['password', 'username']);

    const taken = await app.gql(REGISTER_CREATED, { input: input({ username: admin.username.toUpperCase() }) }, bearer(admin.accessToken));
    expect(taken.errors).toBeUndefined();
    expect(taken.data.register).toMatchObject({ __typename: 'UsernameTakenError', code: 'USERNAME_TAKEN' });
  });

  it("accepts an administrator's ADMIN-scoped API token, but no other scope", async () => {
    const admin = await createLoggedInAdmin(app);
    const { token: adminToken } = await createApiToken(app, admin.accessToken, { scopes: ['ADMIN'] });
    const { token: profileToken } = await createApiToken(app, admin.accessToken, { scopes: ['PROFILE_READ', 'PROFILE_WRITE'] });

    const refused = input();
    expect(errorCode(await app.gql(REGISTER_CREATED, { input: refused }, bearer(profileToken)))).toBe('FORBIDDEN');
    expect(await userNamed(refused.username)).toBeNull();

    const response = await app.gql(REGISTER_CREATED, { input: input() }, bearer(adminToken));
    expect(response.errors).toBeUndefined();
    expect(response.data.register.__typename).toBe('UserCreated');
  });
});
