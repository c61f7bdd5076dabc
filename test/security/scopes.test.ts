import { describe, expect, it } from 'vitest';
import { bearer, createTestApp, LOGIN, REFRESH, registerUser } from '../support/app.js';
import { createApiToken, createLoggedInAdmin, errorCode, USER_FIELDS } from '../support/accounts.js';
import { rawDb } from '../support/raw-db.js';

// A token limited to some API scopes must not read, through a mutation's result, what only another
// scope grants. updateProfile (PROFILE_WRITE) returns the User, which only PROFILE_READ may read.

const app = await createTestApp();

const UPDATE_PROFILE = /* GraphQL */ `
  mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { __typename ... on User { ${USER_FIELDS} } ... on Error { code } } }
`;

describe('a PROFILE_WRITE-only API token', () => {
  it('changes the profile but cannot read any field of the User back', async () => {
    const { accessToken, user } = await registerUser(app, { email: 'writer@example.com' });
    const { token } = await createApiToken(app, accessToken, { scopes: ['PROFILE_WRITE'] });

    const response = await app.gql(UPDATE_PROFILE, { input: { fullname: 'Written Blind' } }, bearer(token));
    expect(errorCode(response)).toBe('FORBIDDEN');
    expect(response.data ?? null).toBeNull();
    const answer = JSON.stringify(response);
    for (const secret of ['writer@example.com', 'Written Blind', user.username, user.id]) expect(answer).not.toContain(secret);
    // The change itself went through, and the outcome can be asked for without reading the profile.
    expect((await rawDb(app.services).user.findUniqueOrThrow({ where: { id: user.id } })).fullname).toBe('Written Blind');
    const outcome = await app.gql(
      'mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { __typename ... on Error { code } } }',
      { input: { fullname: 'Again' } },
      bearer(token),
    );
    expect(outcome).toEqual({ status: 200, data: { updateProfile: { __typename: 'User' } } });
  });

  it('still gets its typed errors (they carry no profile data)', async () => {
    const { accessToken } = await registerUser(app);
    const { token } = await createApiToken(app, accessToken, { scopes: ['PROFILE_WRITE'] });
    // With email on, an address changes only through requestEmailChange: refused as a ValidationError.
    const response = await app.gql(UPDATE_PROFILE, { input: { email: 'elsewhere@example.com' } }, bearer(token));
    expect(response.errors).toBeUndefined();
    expect(response.data.updateProfile).toEqual({ __typename: 'ValidationError', code: 'VALIDATION_FAILED' });
  });
});

describe('who may still read a User', () => {
  it('a token with PROFILE_READ and PROFILE_WRITE reads its update back', async () => {
    const { accessToken, user } = await registerUser(app);
    const { token } = await createApiToken(app, accessToken, { scopes: ['PROFILE_READ', 'PROFILE_WRITE'] });
    const response = await app.gql(UPDATE_PROFILE, { input: { fullname: 'Read Back' } }, bearer(token));
    expect(response.errors).toBeUndefined();
    expect(response.data.updateProfile).toMatchObject({ __typename: 'User', id: user.id, fullname: 'Read Back' });
  });

  it('a session reads everything its user may', async () => {
    const { accessToken } = await registerUser(app);
    const response = await app.gql(UPDATE_PROFILE, { input: { fullname: 'Session Name' } }, bearer(accessToken));
    expect(response.data.updateProfile).toMatchObject({ __typename: 'User', fullname: 'Session Name' });
  });

  it("an ADMIN-only token reads users and its admin changes' results, while its owner is an administrator", async () => {
    const admin = await createLoggedInAdmin(app);
    const target = await registerUser(app);
    const { token } = await createApiToken(app, admin.accessToken, { scopes: ['ADMIN'] });
    const users = await app.gql(`query { users(first: 5) { edges { node { ${USER_FIELDS} } } } }`, {}, bearer(token));
    expect(users.errors).toBeUndefined();
    expect(users.data.users.edges.length).toBeGreaterThan(0);
    const disabled = await app.gql(
      `mutation ($id: ID!) { disableUser(id: $id) { __typename ... on User { id username } } }`,
      { id: target.user.id },
      bearer(token),
    );
    expect(disabled.errors).toBeUndefined();
    expect(disabled.data.disableUser).toEqual({ __typename: 'User', id: target.user.id, username: target.username });
  });

  it('a login answers with the account just proven, to a caller without credentials', async () => {
    const { username, password, user } = await registerUser(app);
    const response = await app.gql(`mutation ($input: LoginInput!) { login(input: $input) { ... on AuthPayload { user { ${USER_FIELDS} } } } }`, {
      input: { username, password },
    });
    expect(response.errors).toBeUndefined();
    expect(response.data.login.user.id).toBe(user.id);
  });
});

describe('an Authorization header sent along with login, register or refresh', () => {
  // Clients attach their (perhaps stale) access token to every request. These operations prove who the
  // caller is by other means and answer with that account: the header must neither fail them nor limit them.
  it('a revoked access token does not fail a refresh, whose new tokens would otherwise be lost', async () => {
    const first = await registerUser(app);
    const other = await app.gql(LOGIN, { input: { username: first.username, password: first.password } });
    const otherSession = other.data.login as { refreshToken: string };
    expect((await app.gql('mutation { logout }', {}, bearer(first.accessToken))).data).toEqual({ logout: true });

    const refreshed = await app.gql(REFRESH, { token: otherSession.refreshToken }, bearer(first.accessToken));
    expect(refreshed.errors).toBeUndefined();
    expect(refreshed.data.refresh).toMatchObject({ __typename: 'AuthPayload', user: { id: first.user.id, username: first.username } });
  });

  it('a revoked or malformed access token does not fail a login', async () => {
    const user = await registerUser(app);
    expect((await app.gql('mutation { logout }', {}, bearer(user.accessToken))).data).toEqual({ logout: true });
    for (const header of [bearer(user.accessToken), { authorization: 'Bearer not-a-token' }]) {
      const answer = await app.gql(LOGIN, { input: { username: user.username, password: user.password } }, header);
      expect(answer.errors).toBeUndefined();
      expect(answer.data.login).toMatchObject({ __typename: 'AuthPayload', user: { id: user.user.id } });
    }
  });

  it("a PROFILE_WRITE-only token does not hide the logged-in account from login's answer", async () => {
    const user = await registerUser(app, { email: 'login-with-token@example.com' });
    const { token } = await createApiToken(app, user.accessToken, { scopes: ['PROFILE_WRITE'] });
    const answer = await app.gql(LOGIN, { input: { username: user.username, password: user.password } }, bearer(token));
    expect(answer.errors).toBeUndefined();
    expect(answer.data.login).toMatchObject({ __typename: 'AuthPayload', user: { id: user.user.id, email: 'login-with-token@example.com' } });
  });
});
