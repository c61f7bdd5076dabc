import { afterEach, describe, expect, it, vi } from 'vitest';
import { graphiqlExample } from '../../src/graphiql-example.js';
import { bearer, createTestApp, uniqueName, type GraphQLResponse, type TestApp } from '../support/app.js';
import { registerAdmin } from '../support/accounts.js';
import { CLIENT_DOCUMENT, documentFor, type ClientOperation } from './operations.js';
import { rawDb } from '../support/raw-db.js';

// graphql-armor limits (depth, aliases, directives, tokens, cost): our own operations pass at the
// defaults, abusive documents are refused as GraphQL errors before anything executes, and every limit
// follows its environment variable.

const app = await createTestApp();

afterEach(() => vi.restoreAllMocks());

/** Posts a document with an operationName, the way GraphiQL and generated clients do. */
async function run(target: TestApp, query: string, operationName?: string, variables?: Record<string, unknown>, headers: Record<string, string> = {}) {
  const response = await target.yoga.fetch('http://gatehouse.test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
    body: JSON.stringify({ query, operationName, variables }),
  });
  return { status: response.status, ...(await response.json()) } as GraphQLResponse<any>;
}

/** A refusal by a document limit: a GraphQL error (no 5xx), nothing executed (no data). */
function expectRefused(response: GraphQLResponse<unknown>, message: RegExp) {
  expect(response.status).toBeLessThan(500);
  expect(response.data ?? null).toBeNull();
  expect(response.errors?.map((error) => error.message)).toEqual([expect.stringMatching(message)]);
}

function expectOk(response: GraphQLResponse<unknown>) {
  expect(response.errors).toBeUndefined();
  expect(response.status).toBe(200);
}

async function userCount(target: TestApp) {
  return rawDb(target.services).user.count();
}

describe('the GraphiQL example document', () => {
  it('runs every one of its operations by operationName at the default limits', async () => {
    const operations = [...graphiqlExample.matchAll(/^(?:query|mutation) (\w+)/gm)].map((match) => match[1]);
    expect(operations).toEqual(['Register', 'Login', 'Me', 'Refresh']);

    const register = await run(app, graphiqlExample, 'Register');
    expectOk(register);
    expect(register.data.register).toMatchObject({ accessToken: expect.any(String), user: { username: 'alice' } });

    const login = await run(app, graphiqlExample, 'Login');
    expectOk(login);
    const { accessToken, refreshToken } = login.data.login;
    expect(accessToken).toEqual(expect.any(String));

    const me = await run(app, graphiqlExample, 'Me', undefined, bearer(accessToken));
    expectOk(me);
    expect(me.data.me).toMatchObject({ username: 'alice', email: 'alice@example.com', role: 'USER' });

    // As shipped (placeholder token): an expected failure as data, not a GraphQL error.
    const placeholder = await run(app, graphiqlExample, 'Refresh');
    expectOk(placeholder);
    expect(placeholder.data.refresh).toMatchObject({ code: 'REFRESH_TOKEN_INVALID' });
    // With the token pasted in, as the comment tells the user to do.
    const pasted = await run(app, graphiqlExample.replace('paste the refreshToken here', refreshToken), 'Refresh');
    expectOk(pasted);
    expect(pasted.data.refresh).toMatchObject({ accessToken: expect.any(String), user: { username: 'alice' } });
  });
});

describe('realistic client operations', () => {
  it('all pass at the default limits, sent one by one and as one whole client document', async () => {
    const admin = await registerAdmin(app);
    const password = 'client password 1';
    const username = uniqueName('client');
    const asAdmin = bearer(admin.accessToken);

    // Each operation goes twice: alone with its fragments, and inside the whole client document.
    const call = async (name: ClientOperation, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}) => {
      const alone = await run(app, documentFor(name), name, variables, headers);
      expectOk(alone);
      return alone.data;
    };
    const callInDocument = async (name: ClientOperation, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}) => {
      const whole = await run(app, CLIENT_DOCUMENT, name, variables, headers);
      expectOk(whole);
      return whole.data;
    };
    const both = async (name: ClientOperation, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}) => {
      await callInDocument(name, variables, headers);
      return call(name, variables, headers);
    };

    expect((await both('UserExists', { username })).userExists).toBe(false);
    const registered = (await call('Register', { input: { username, password, email: `${username}@example.com`, fullname: 'Client' } })).register;
    expect(registered.__typename).toBe('AuthPayload');
    const taken = (await callInDocument('Register', { input: { username, password } })).register;
    expect(taken).toMatchObject({ __typename: 'UsernameTakenError', code: 'USERNAME_TAKEN' });
    const invalid = (await call('Register', { input: { username: 'x', password: 'short' } })).register;
    expect(invalid.__typename).toBe('ValidationError');
    expect(invalid.fieldErrors.length).toBeGreaterThan(0);

    const wrong = (await both('Login', { input: { username, password: 'not the password' } })).login;
    expect(wrong).toMatchObject({ __typename: 'InvalidCredentialsError', code: 'INVALID_CREDENTIALS', retryAfter: null });
    const loggedIn = (await call('Login', { input: { username, password } })).login;
    expect(loggedIn.__typename).toBe('AuthPayload');
    const asUser = bearer(loggedIn.accessToken);

    expect((await both('Me', {}, asUser)).me).toMatchObject({ username, email: `${username}@example.com`, fullname: 'Client', role: 'USER' });
    expect((await both('PublicUser', { id: registered.user.id })).user).toEqual({ id: registered.user.id, username, fullname: 'Client' });

    const created = (await call('CreateApiToken', { input: { name: 'ci', scopes: ['PROFILE_READ', 'SESSIONS_READ'], expiresInDays: 30 } }, asUser))
      .createApiToken;
    expect(created.__typename).toBe('ApiTokenCreated');
    const account = await both('Account', {}, asUser);
    expect(account.mySessions).toHaveLength(2);
    expect(account.mySessions.filter((session: { current: boolean }) => session.current)).toHaveLength(1);
    expect(account.apiTokens).toEqual([expect.objectContaining({ id: created.apiToken.id, name: 'ci' })]);
    expect((await call('Me', {}, bearer(created.token))).me.username).toBe(username);

    expect((await both('UpdateProfile', { input: { fullname: 'Client Two' } }, asUser)).updateProfile.fullname).toBe('Client Two');
    const refreshed = (await call('Refresh', { refreshToken: registered.refreshToken })).refresh;
    expect(refreshed.__typename).toBe('AuthPayload');
    const forged = (await callInDocument('Refresh', { refreshToken: 'grt_forged.1.signature' })).refresh;
    expect(forged).toMatchObject({ __typename: 'InvalidRefreshTokenError', code: 'REFRESH_TOKEN_INVALID' });

    // Administration: the largest page the users connection serves, every field, both directions.
    const forward = (await both('Users', { search: null }, asAdmin)).users;
    expect(forward.edges.map((edge: { node: { username: string } }) => edge.node.username)).toContain(username);
    expect(forward.edges[0].node).toEqual(expect.objectContaining({ id: expect.any(String), username: expect.any(String), role: expect.any(String) }));
    expect(forward.pageInfo).toMatchObject({ hasNextPage: false });
    expect((await both('UsersBackwards', {}, asAdmin)).users.edges.length).toBe(forward.edges.length);
    expect((await both('SetUserRole', { id: registered.user.id, role: 'USER' }, asAdmin)).setUserRole.__typename).toBe('User');
    expect((await call('DisableUser', { id: registered.user.id }, asAdmin)).disableUser.__typename).toBe('User');
    expect((await call('EnableUser', { id: registered.user.id }, asAdmin)).enableUser.__typename).toBe('User');
    expect((await callInDocument('DeleteUser', { id: 'no-such-user' }, asAdmin)).deleteUser).toMatchObject({ code: 'USER_NOT_FOUND' });

    // Disabling ended the user's sessions: log in again for the rest.
    const again = (await call('Login', { input: { username, password } })).login;
    const asUserAgain = bearer(again.accessToken);
    const changed = (await call('ChangePassword', { currentPassword: password, newPassword: 'client password 2' }, asUserAgain)).changePassword;
    expect(changed.__typename).toBe('PasswordChanged');
    const wrongChange = (await callInDocument('ChangePassword', { currentPassword: 'nope nope nope', newPassword: 'client password 3' }, asUserAgain))
      .changePassword;
    expect(wrongChange.code).toBe('INVALID_CREDENTIALS');
    expect((await call('RevokeApiToken', { id: created.apiToken.id }, asUserAgain)).revokeApiToken).toBe(false); // ended when disabled
    expect((await both('RevokeSession', { id: 'no-such-session' }, asUserAgain)).revokeSession).toBe(false);
    expect((await call('DeleteAccount', { password: 'wrong password!' }, asUserAgain)).deleteAccount.code).toBe('INVALID_CREDENTIALS');
    expect((await call('Logout', { allSessions: false }, asUserAgain)).logout).toBe(true);
    const last = (await call('Login', { input: { username, password: 'client password 2' } })).login;
    expect((await call('DeleteAccount', { password: 'client password 2' }, bearer(last.accessToken))).deleteAccount).toEqual({
      __typename: 'AccountDeleted',
      id: registered.user.id,
    });
  });
});

// --- abusive documents -------------------------------------------------------------------------------

const aliases = (count: number, field: (i: number) => string) => Array.from({ length: count }, (_, i) => `a${i}: ${field(i)}`).join('\n');
/** Nests `levels` inline fragments around a selection, adding one level of depth each. */
const nest = (levels: number, type: string, inner: string): string => (levels === 0 ? inner : `... on ${type} { ${nest(levels - 1, type, inner)} }`);
const FULL_USERS_PAGE = 'users(first: 100) { edges { cursor node { id username email fullname role createdAt } } pageInfo { hasNextPage endCursor } }';

describe('abusive documents are refused before anything runs', () => {
  it('an alias bomb of userExists: refused, and the rate limiter is never asked', async () => {
    const consume = vi.spyOn(app.services.rateLimiter, 'consume');
    const response = await run(app, `query { ${aliases(100, (i) => `userExists(username: "probe${i}")`)} }`);
    expectRefused(response, /Aliases limit of 15 exceeded, found 100/);
    expect(consume).not.toHaveBeenCalled();
  });

  it('an alias bomb of register: refused, and no user is created', async () => {
    const consume = vi.spyOn(app.services.rateLimiter, 'consume');
    const before = await userCount(app);
    const prefix = uniqueName('bomb');
    const response = await run(
      app,
      `mutation { ${aliases(100, (i) => `register(input: { username: "${prefix}_${i}", password: "bomb password ${i}" }) { __typename }`)} }`,
    );
    expectRefused(response, /Aliases limit/);
    expect(await userCount(app)).toBe(before);
    expect(await rawDb(app.services).user.findFirst({ where: { username: { startsWith: prefix } } })).toBeNull();
    expect(consume).not.toHaveBeenCalled();
  });

  it('a too-deep query (nested fragments around a login): refused, no login attempted', async () => {
    const consume = vi.spyOn(app.services.rateLimiter, 'consume');
    const login = vi.spyOn(app.services.accounts, 'login');
    const response = await run(
      app,
      `mutation { login(input: { username: "alice", password: "correct horse battery staple" }) { ${nest(10, 'AuthPayload', 'accessToken')} } }`,
    );
    expectRefused(response, /depth limit of 10 exceeded/);
    expect(consume).not.toHaveBeenCalled();
    expect(login).not.toHaveBeenCalled();
  });

  it('too many directives: refused, nothing resolved', async () => {
    const consume = vi.spyOn(app.services.rateLimiter, 'consume');
    const response = await run(app, `query { userExists(username: "probe") ${'__typename @include(if: true) '.repeat(21)} }`);
    expectRefused(response, /Directives limit of 20 exceeded/);
    expect(consume).not.toHaveBeenCalled();
  });

  it('too many tokens: refused at parse time, nothing resolved', async () => {
    const consume = vi.spyOn(app.services.rateLimiter, 'consume');
    const response = await run(app, `query { userExists(username: "probe") ${'__typename '.repeat(2000)} }`);
    expectRefused(response, /Token limit of 2000 exceeded/);
    expect(consume).not.toHaveBeenCalled();
  });

  it('an over-cost query: refused, nothing resolved', async () => {
    const { accessToken } = await registerAdmin(app);
    const consume = vi.spyOn(app.services.rateLimiter, 'consume');
    const page = vi.spyOn(app.services.users, 'page');
    const response = await run(app, `query { userExists(username: "probe") ${aliases(10, () => FULL_USERS_PAGE)} }`, undefined, {}, bearer(accessToken));
    expectRefused(response, /Cost limit of \d+ exceeded/);
    expect(consume).not.toHaveBeenCalled();
    expect(page).not.toHaveBeenCalled();
  });
});

describe('each limit follows its environment variable', () => {
  it('GRAPHQL_MAX_ALIASES', async () => {
    const small = await createTestApp({ GRAPHQL_MAX_ALIASES: '2' });
    expectOk(await run(small, `{ ${aliases(2, (i) => `userExists(username: "n${i}")`)} }`));
    expectRefused(await run(small, `{ ${aliases(3, (i) => `userExists(username: "n${i}")`)} }`), /Aliases limit of 2 exceeded, found 3/);
    // 100 aliases pass once the limit allows them: the refusal above is this limit, not another.
    const large = await createTestApp({ GRAPHQL_MAX_ALIASES: '100' });
    expectOk(await run(large, `{ ${aliases(100, (i) => `userExists(username: "n${i}")`)} }`));
  });

  it('GRAPHQL_MAX_DEPTH', async () => {
    const query = (levels: number) => `{ me { ${nest(levels, 'User', 'id')} } }`; // depth levels + 2
    const small = await createTestApp({ GRAPHQL_MAX_DEPTH: '4' });
    expectOk(await run(small, query(2)));
    expectRefused(await run(small, query(3)), /depth limit of 4 exceeded, found 5/);
    const large = await createTestApp({ GRAPHQL_MAX_DEPTH: '20' });
    expectOk(await run(large, query(15)));
    expectRefused(await run(app, query(15)), /depth limit of 10 exceeded/);
  });

  it('GRAPHQL_MAX_DIRECTIVES', async () => {
    const query = (count: number) => `{ userExists(username: "n") ${'__typename @skip(if: false) '.repeat(count)} }`;
    const small = await createTestApp({ GRAPHQL_MAX_DIRECTIVES: '1' });
    expectOk(await run(small, query(1)));
    expectRefused(await run(small, query(2)), /Directives limit of 1 exceeded, found 2/);
    const large = await createTestApp({ GRAPHQL_MAX_DIRECTIVES: '100' });
    expectOk(await run(large, query(50)));
  });

  it('GRAPHQL_MAX_TOKENS', async () => {
    const query = (count: number) => `{ ${'__typename '.repeat(count)}}`; // count + 2 tokens
    const small = await createTestApp({ GRAPHQL_MAX_TOKENS: '200' });
    expectOk(await run(small, query(198)));
    expectRefused(await run(small, query(199)), /Token limit of 200 exceeded/);
    // 2 + 6 × 400 = 2402 tokens: refused by the default, accepted when the limit is raised.
    const long = `{ ${'... on Query { __typename } '.repeat(400)}}`;
    expectRefused(await run(app, long), /Token limit of 2000 exceeded/);
    const large = await createTestApp({ GRAPHQL_MAX_TOKENS: '5000' });
    expectOk(await run(large, long));
  });

  it('GRAPHQL_MAX_COST', async () => {
    // 60 aliased `me { id username }`, each 2 + 1.5 × 2 = 5: 300 in all, over the lowest accepted limit.
    const query = `{ ${aliases(60, () => 'me { id username }')} }`;
    const roomy = { GRAPHQL_MAX_ALIASES: '100' };
    const small = await createTestApp({ ...roomy, GRAPHQL_MAX_COST: '299' });
    expectRefused(await run(small, query), /Cost limit of 299 exceeded, found 300/);
    const exact = await createTestApp({ ...roomy, GRAPHQL_MAX_COST: '300' });
    expectOk(await run(exact, query));
    const large = await createTestApp({ GRAPHQL_MAX_COST: '1000000' });
    const { accessToken } = await registerAdmin(large);
    expectOk(await run(large, `{ ${aliases(10, () => FULL_USERS_PAGE)} }`, undefined, {}, bearer(accessToken)));
  });
});
