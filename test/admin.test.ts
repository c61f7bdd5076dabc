import { describe, expect, it } from 'vitest';
import { LastAdminError } from '../src/auth/errors.js';
import { bearer, createTestApp, REFRESH, registerUser, type TestApp } from './support/app.js';
import { createApiToken, errorCode, login, me, readTable, registerAdmin, USER_FIELDS } from './support/accounts.js';
import { OPERATOR } from '../src/auth/admin-actor.js';
import { rawDb } from './support/raw-db.js';

const app = await createTestApp();

const USERS = /* GraphQL */ `
  query ($first: Int, $after: String, $search: String) {
    users(first: $first, after: $after, search: $search) {
      edges { cursor node { ${USER_FIELDS} } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;
const RESULT = `__typename ... on User { ${USER_FIELDS} } ... on Error { code message }`;
const SET_ROLE = `mutation ($id: ID!, $role: Role!) { setUserRole(id: $id, role: $role) { ${RESULT} } }`;
const DISABLE = `mutation ($id: ID!) { disableUser(id: $id) { ${RESULT} } }`;
const ENABLE = `mutation ($id: ID!) { enableUser(id: $id) { ${RESULT} } }`;
const DELETE = `mutation ($id: ID!) { deleteUser(id: $id) { ${RESULT} } }`;
const DELETE_ACCOUNT = 'mutation ($password: String!) { deleteAccount(password: $password) { __typename ... on Error { code } } }';

/** Runs an admin mutation that must not fail with a GraphQL error; returns the union member. */
async function adminCall(target: TestApp, query: string, variables: Record<string, unknown>, token: string) {
  const response = await target.gql(query, variables, bearer(token));
  expect(response.errors).toBeUndefined();
  return Object.values(response.data as Record<string, any>)[0];
}

async function refresh(token: string) {
  return (await app.gql(REFRESH, { token })).data.refresh;
}

const tag = () => `t${Math.random().toString(36).slice(2, 8)}`;

describe('who may administer', () => {
  const operations = (id: string): [string, string, Record<string, unknown>][] => [
    ['users', USERS, { first: 5 }],
    ['setUserRole', SET_ROLE, { id, role: 'ADMIN' }],
    ['disableUser', DISABLE, { id }],
    ['enableUser', ENABLE, { id }],
    ['deleteUser', DELETE, { id }],
  ];

  it('refuses a regular user with FORBIDDEN, and changes nothing', async () => {
    const user = await registerUser(app);
    const target = await registerUser(app);
    for (const [name, query, variables] of operations(target.user.id)) {
      const response = await app.gql(query, variables, bearer(user.accessToken));
      expect(errorCode(response), name).toBe('FORBIDDEN');
      expect(response.data ?? null, name).toBeNull();
    }
    // Including on themselves.
    expect(errorCode(await app.gql(SET_ROLE, { id: user.user.id, role: 'ADMIN' }, bearer(user.accessToken)))).toBe('FORBIDDEN');
    const stored = await rawDb(app.services).user.findUniqueOrThrow({ where: { id: target.user.id } });
    expect(stored).toMatchObject({ role: 'USER', disabledAt: null });
    expect((await rawDb(app.services).user.findUniqueOrThrow({ where: { id: user.user.id } })).role).toBe('USER');
    expect((await me(app, target.accessToken)).data.me.id).toBe(target.user.id);
  });

  it('refuses an anonymous caller with UNAUTHENTICATED', async () => {
    const target = await registerUser(app);
    for (const [name, query, variables] of operations(target.user.id)) {
      expect(errorCode(await app.gql(query, variables)), name).toBe('UNAUTHENTICATED');
    }
    expect(await rawDb(app.services).user.findUniqueOrThrow({ where: { id: target.user.id } })).toMatchObject({ role: 'USER', disabledAt: null });
  });

  it('refuses a bad token with UNAUTHENTICATED, not FORBIDDEN', async () => {
    const target = await registerUser(app);
    for (const [name, query, variables] of operations(target.user.id)) {
      expect(errorCode(await app.gql(query, variables, bearer('not.a.token'))), name).toBe('UNAUTHENTICATED');
    }
  });

  it('gives and takes administration with setUserRole, effective on the next request', async () => {
    const admin = await registerAdmin(app);
    const user = await registerUser(app);
    expect(errorCode(await app.gql(USERS, { first: 1 }, bearer(user.accessToken)))).toBe('FORBIDDEN');

    expect(await adminCall(app, SET_ROLE, { id: user.user.id, role: 'ADMIN' }, admin.accessToken)).toMatchObject({
      __typename: 'User',
      id: user.user.id,
      role: 'ADMIN',
    });
    expect((await app.gql(USERS, { first: 1 }, bearer(user.accessToken))).errors).toBeUndefined();
    expect((await me(app, user.accessToken)).data.me.role).toBe('ADMIN');

    expect(await adminCall(app, SET_ROLE, { id: user.user.id, role: 'USER' }, admin.accessToken)).toMatchObject({ role: 'USER' });
    expect(errorCode(await app.gql(USERS, { first: 1 }, bearer(user.accessToken)))).toBe('FORBIDDEN');
  });

  it('answers an unknown id with UserNotFoundError', async () => {
    const admin = await registerAdmin(app);
    for (const query of [SET_ROLE, DISABLE, ENABLE, DELETE]) {
      // Extra variables are ignored by the operations that do not declare them.
      const result = await adminCall(app, query, { id: crypto.randomUUID(), role: 'USER' }, admin.accessToken);
      expect(result, query).toMatchObject({ __typename: 'UserNotFoundError', code: 'USER_NOT_FOUND' });
    }
  });
});

describe('users connection', () => {
  async function page(token: string, variables: Record<string, unknown>) {
    const response = await app.gql(USERS, variables, bearer(token));
    expect(response.errors).toBeUndefined();
    return response.data.users as {
      edges: { cursor: string; node: { id: string; username: string; email: string | null; role: string } }[];
      pageInfo: { hasNextPage: boolean; endCursor: string | null };
    };
  }

  it('pages through matching users in username order with after/endCursor/hasNextPage', async () => {
    const admin = await registerAdmin(app);
    const prefix = tag();
    const names = ['delta', 'Alpha', 'charlie', 'bravo', 'echo'].map((name) => `${prefix}_${name}`);
    for (const username of names) await registerUser(app, { username });
    const expected = [...names].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));

    const seen: string[] = [];
    const hasNext: boolean[] = [];
    let after: string | null = null;
    for (let i = 0; i < 5; i++) {
      const result = await page(admin.accessToken, { first: 2, after, search: prefix });
      expect(result.edges.length).toBeLessThanOrEqual(2);
      seen.push(...result.edges.map((edge) => edge.node.username));
      hasNext.push(result.pageInfo.hasNextPage);
      if (!result.pageInfo.hasNextPage) break;
      expect(result.pageInfo.endCursor).toBe(result.edges.at(-1)!.cursor);
      after = result.pageInfo.endCursor;
    }
    expect(seen).toEqual(expected);
    expect(hasNext).toEqual([true, true, false]);
  });

  it('pages backwards with last/before', async () => {
    const admin = await registerAdmin(app);
    const prefix = tag();
    const names = ['a', 'b', 'c'].map((name) => `${prefix}_${name}`);
    for (const username of names) await registerUser(app, { username });
    const response = await app.gql(
      'query ($search: String) { users(last: 2, search: $search) { edges { cursor node { username } } pageInfo { hasPreviousPage startCursor } } }',
      { search: prefix },
      bearer(admin.accessToken),
    );
    expect(response.errors).toBeUndefined();
    const { edges, pageInfo } = response.data.users;
    expect(edges.map((edge: { node: { username: string } }) => edge.node.username)).toEqual(names.slice(1));
    expect(pageInfo.hasPreviousPage).toBe(true);
    const before = await app.gql(
      'query ($search: String, $before: String) { users(last: 2, before: $before, search: $search) { edges { node { username } } pageInfo { hasPreviousPage } } }',
      { search: prefix, before: pageInfo.startCursor },
      bearer(admin.accessToken),
    );
    expect(before.data.users.edges.map((edge: { node: { username: string } }) => edge.node.username)).toEqual(names.slice(0, 1));
    expect(before.data.users.pageInfo.hasPreviousPage).toBe(false);
  });

  it('lists every account, administrators see emails and roles', async () => {
    const admin = await registerAdmin(app);
    const email = `${tag()}@example.com`;
    const user = await registerUser(app, { email });
    const all: { id: string; email: string | null; role: string }[] = [];
    let after: string | null = null;
    for (;;) {
      const result = await page(admin.accessToken, { first: 100, after });
      all.push(...result.edges.map((edge) => edge.node));
      if (!result.pageInfo.hasNextPage) break;
      after = result.pageInfo.endCursor;
    }
    expect(all).toHaveLength(await rawDb(app.services).user.count());
    expect(all.find((node) => node.id === user.user.id)).toMatchObject({ email, role: 'USER' });
    expect(all.find((node) => node.id === admin.user.id)).toMatchObject({ role: 'ADMIN' });
  });

  it('searches by part of the username or email, in any letter case', async () => {
    const admin = await registerAdmin(app);
    const nameTag = tag();
    const mailTag = tag();
    const byName = await registerUser(app, { username: `x${nameTag}y` });
    const byMail = await registerUser(app, { email: `someone@${mailTag}.example.org` });
    await registerUser(app);

    const names = async (search: string) => (await page(admin.accessToken, { first: 50, search })).edges.map((edge) => edge.node.id);
    expect(await names(nameTag)).toEqual([byName.user.id]);
    expect(await names(nameTag.toUpperCase())).toEqual([byName.user.id]);
    expect(await names(mailTag)).toEqual([byMail.user.id]);
    expect(await names(`${mailTag}.EXAMPLE`)).toEqual([byMail.user.id]);
    expect(await names(`no-such-${tag()}`)).toEqual([]);

    // The full name too, as the schema promises.
    const fullTag = tag();
    const byFullname = await registerUser(app);
    await app.services.accounts.updateProfile(byFullname.user.id, { fullname: `Dr ${fullTag.toUpperCase()} Smith` });
    expect(await names(fullTag)).toEqual([byFullname.user.id]);
  });

  // Prisma's `contains` on SQLite becomes LIKE, where `_` (legal in usernames) matches any character.
  it('treats search wildcards literally', async () => {
    const admin = await registerAdmin(app);
    const prefix = tag();
    const withUnderscore = await registerUser(app, { username: `${prefix}_a` });
    await registerUser(app, { username: `${prefix}xa` });
    const result = await page(admin.accessToken, { first: 50, search: `${prefix}_` });
    expect(result.edges.map((edge) => edge.node.id)).toEqual([withUnderscore.user.id]);
  });
});

describe('disableUser and enableUser', () => {
  it('ends sessions and API tokens at once, blocks login, and enable lets the user back in', async () => {
    const admin = await registerAdmin(app);
    const victim = await registerUser(app);
    const { token: apiToken } = await createApiToken(app, victim.accessToken, { scopes: ['PROFILE_READ'] });
    // Warm the caches: the refusal must not depend on a cold read.
    expect((await me(app, victim.accessToken)).data.me.id).toBe(victim.user.id);
    expect((await me(app, apiToken)).data.me.id).toBe(victim.user.id);

    const disabled = await adminCall(app, DISABLE, { id: victim.user.id }, admin.accessToken);
    expect(disabled).toMatchObject({ __typename: 'User', id: victim.user.id, username: victim.username });

    expect(errorCode(await me(app, victim.accessToken))).toBe('UNAUTHENTICATED');
    expect(errorCode(await me(app, apiToken))).toBe('UNAUTHENTICATED');
    expect(await refresh(victim.refreshToken)).toMatchObject({ __typename: 'InvalidRefreshTokenError' });
    expect(await login(app, victim.username, victim.password)).toMatchObject({ __typename: 'AccountDisabledError', code: 'ACCOUNT_DISABLED' });
    // A wrong password still says only that: being disabled is not revealed to a guesser.
    expect((await login(app, victim.username, 'a wrong password!')).__typename).toBe('InvalidCredentialsError');
    // Disabling twice is harmless.
    expect((await adminCall(app, DISABLE, { id: victim.user.id }, admin.accessToken)).__typename).toBe('User');

    expect(await adminCall(app, ENABLE, { id: victim.user.id }, admin.accessToken)).toMatchObject({ __typename: 'User', id: victim.user.id });
    const again = await login(app, victim.username, victim.password);
    expect(again.__typename).toBe('AuthPayload');
    expect((await me(app, again.accessToken)).data.me.id).toBe(victim.user.id);
    // What disabling ended stays ended.
    expect(errorCode(await me(app, victim.accessToken))).toBe('UNAUTHENTICATED');
    expect(errorCode(await me(app, apiToken))).toBe('UNAUTHENTICATED');
  });

  it('takes administration from a disabled administrator at once', async () => {
    const admin = await registerAdmin(app);
    const other = await registerAdmin(app);
    expect((await app.gql(USERS, { first: 1 }, bearer(other.accessToken))).errors).toBeUndefined();
    expect((await adminCall(app, DISABLE, { id: other.user.id }, admin.accessToken)).__typename).toBe('User');
    expect(errorCode(await app.gql(USERS, { first: 1 }, bearer(other.accessToken)))).toBe('UNAUTHENTICATED');
  });
});

describe('deleteUser', () => {
  it('deletes the account with its sessions and API tokens and returns it as it was', async () => {
    const admin = await registerAdmin(app);
    const victim = await registerUser(app, { email: `${tag()}@example.com` });
    const { token: apiToken } = await createApiToken(app, victim.accessToken, { scopes: ['PROFILE_READ'] });
    expect((await me(app, victim.accessToken)).data.me.id).toBe(victim.user.id);
    expect((await me(app, apiToken)).data.me.id).toBe(victim.user.id);

    const deleted = await adminCall(app, DELETE, { id: victim.user.id }, admin.accessToken);
    expect(deleted).toMatchObject({ __typename: 'User', id: victim.user.id, username: victim.username, role: 'USER' });
    expect(deleted.email).toContain('@example.com');

    expect(errorCode(await me(app, victim.accessToken))).toBe('UNAUTHENTICATED');
    expect(errorCode(await me(app, apiToken))).toBe('UNAUTHENTICATED');
    expect((await login(app, victim.username, victim.password)).__typename).toBe('InvalidCredentialsError');
    expect(await readTable(app, 'SELECT id FROM User WHERE id = ?', victim.user.id)).toEqual([]);
    expect(await readTable(app, 'SELECT id FROM Session WHERE userId = ?', victim.user.id)).toEqual([]);
    expect(await readTable(app, 'SELECT id FROM ApiToken WHERE userId = ?', victim.user.id)).toEqual([]);

    expect(await adminCall(app, DELETE, { id: victim.user.id }, admin.accessToken)).toMatchObject({ __typename: 'UserNotFoundError' });
  });
});

describe('the last administrator', () => {
  it('cannot demote, disable or delete themselves; with a second administrator they can', async () => {
    // A database of its own, so exactly one administrator exists.
    const solo = await createTestApp();
    const admin = await registerUser(solo);
    await solo.services.users.setRole(admin.user.id, 'ADMIN', OPERATOR);
    const id = admin.user.id;

    expect(await adminCall(solo, SET_ROLE, { id, role: 'USER' }, admin.accessToken)).toMatchObject({ __typename: 'LastAdminError', code: 'LAST_ADMIN' });
    expect(await adminCall(solo, DISABLE, { id }, admin.accessToken)).toMatchObject({ __typename: 'LastAdminError', code: 'LAST_ADMIN' });
    expect(await adminCall(solo, DELETE, { id }, admin.accessToken)).toMatchObject({ __typename: 'LastAdminError', code: 'LAST_ADMIN' });
    expect(await adminCall(solo, DELETE_ACCOUNT, { password: admin.password }, admin.accessToken)).toMatchObject({
      __typename: 'LastAdminError',
      code: 'LAST_ADMIN',
    });
    // Setting ADMIN on an admin is not a demotion.
    expect(await adminCall(solo, SET_ROLE, { id, role: 'ADMIN' }, admin.accessToken)).toMatchObject({ __typename: 'User', role: 'ADMIN' });
    // Nothing changed: still an active administrator with a working session.
    expect(await rawDb(solo.services).user.findUniqueOrThrow({ where: { id } })).toMatchObject({ role: 'ADMIN', disabledAt: null });
    expect((await solo.gql(USERS, { first: 1 }, bearer(admin.accessToken))).errors).toBeUndefined();

    // A disabled administrator does not count as a second one.
    const dormant = await registerUser(solo);
    await solo.services.users.setRole(dormant.user.id, 'ADMIN', OPERATOR);
    expect((await adminCall(solo, DISABLE, { id: dormant.user.id }, admin.accessToken)).__typename).toBe('User');
    expect((await adminCall(solo, SET_ROLE, { id, role: 'USER' }, admin.accessToken)).__typename).toBe('LastAdminError');

    const second = await registerUser(solo);
    expect((await adminCall(solo, SET_ROLE, { id: second.user.id, role: 'ADMIN' }, admin.accessToken)).role).toBe('ADMIN');
    expect(await adminCall(solo, SET_ROLE, { id, role: 'USER' }, admin.accessToken)).toMatchObject({ __typename: 'User', role: 'USER' });
    // Now the second one is the last administrator.
    expect((await adminCall(solo, SET_ROLE, { id: second.user.id, role: 'USER' }, second.accessToken)).__typename).toBe('LastAdminError');
    expect((await adminCall(solo, DISABLE, { id: second.user.id }, second.accessToken)).__typename).toBe('LastAdminError');
  });

  it('two administrators demoting each other at the same time leave one administrator', async () => {
    const race = await createTestApp();
    const first = await registerUser(race);
    const second = await registerUser(race);
    await race.services.users.setRole(first.user.id, 'ADMIN', OPERATOR);
    await race.services.users.setRole(second.user.id, 'ADMIN', OPERATOR);
    // Through the service, so both reach the last-admin check (through the API the loser may already be
    // refused as no longer an administrator).
    const results = await Promise.allSettled([
      race.services.users.setRole(second.user.id, 'USER', OPERATOR),
      race.services.users.setRole(first.user.id, 'USER', OPERATOR),
    ]);
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((result) => result.status === 'rejected') as PromiseRejectedResult;
    expect(rejected.reason).toBeInstanceOf(LastAdminError);
    expect(await rawDb(race.services).user.count({ where: { role: 'ADMIN' } })).toBe(1);
  });

  it('with two administrators, one can disable or delete themselves', async () => {
    const duo = await createTestApp();
    const first = await registerUser(duo);
    const second = await registerUser(duo);
    await duo.services.users.setRole(first.user.id, 'ADMIN', OPERATOR);
    await duo.services.users.setRole(second.user.id, 'ADMIN', OPERATOR);

    expect((await adminCall(duo, DISABLE, { id: first.user.id }, first.accessToken)).__typename).toBe('User');
    expect(errorCode(await duo.gql(USERS, { first: 1 }, bearer(first.accessToken)))).toBe('UNAUTHENTICATED');
    expect((await adminCall(duo, DELETE, { id: second.user.id }, second.accessToken)).__typename).toBe('LastAdminError');
    expect((await adminCall(duo, ENABLE, { id: first.user.id }, second.accessToken)).__typename).toBe('User');
    expect((await adminCall(duo, DELETE, { id: second.user.id }, second.accessToken)).__typename).toBe('User');
    expect(await rawDb(duo.services).user.findUnique({ where: { id: second.user.id } })).toBeNull();
  });
});
