import { decodeJwt } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import type { PasswordHasher } from '../../src/auth/passwords.js';
import { bearer, createTestApp, LOGIN, ME, REFRESH, registerUser, type GraphQLResponse } from '../support/app.js';
import { createApiToken, createLoggedInAdmin, readTable } from '../support/accounts.js';
import { rawDb } from '../support/raw-db.js';

// No session outlives the credentials it was born from, and racing identical requests answer cleanly.
//
// A login reads the account, checks the password (milliseconds on the hash pool) and then inserts its
// session. A password change, disable, deletion or logout-everywhere that commits in between must not
// leave that session behind: the login inserts it only if the account's credentials version is still the
// one it checked against. "Survive" precisely: once the change has answered, no token of a racing login
// made with the old password works, and the database holds no live session of the account but the one
// the change kept on purpose.

// The lockout lets at most LOCKOUT_THRESHOLD password checks of one account from one client run at once
// (test/hardening/lockout.test.ts); these races need more logins in flight than that.
const app = await createTestApp({ LOCKOUT_THRESHOLD: '1000' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const CHANGE_PASSWORD = /* GraphQL */ `
  mutation ($current: String!, $next: String!) {
    changePassword(currentPassword: $current, newPassword: $next) { __typename ... on PasswordChanged { endedSessions } ... on Error { code } }
  }
`;
const DELETE_ACCOUNT = 'mutation ($password: String!) { deleteAccount(password: $password) { __typename ... on AccountDeleted { id } ... on Error { code } } }';
const LOGOUT_ALL = 'mutation { logout(allSessions: true) }';
const ADMIN_RESULT = '__typename ... on Error { code }';
const DISABLE = `mutation ($id: ID!) { disableUser(id: $id) { ${ADMIN_RESULT} } }`;
const ENABLE = `mutation ($id: ID!) { enableUser(id: $id) { ${ADMIN_RESULT} } }`;
const DELETE_USER = `mutation ($id: ID!) { deleteUser(id: $id) { ${ADMIN_RESULT} } }`;
const REVOKE_SESSION = 'mutation ($id: ID!) { revokeSession(id: $id) }';
const REVOKE_API_TOKEN = 'mutation ($id: ID!) { revokeApiToken(id: $id) }';
const UPDATE_PROFILE = 'mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { __typename ... on Error { code } } }';

/** A proper answer: data, or a cross-cutting refusal saying the caller's credentials are over. Never an internal error. */
function expectClean(answer: GraphQLResponse<any>, context = ''): void {
  expect(answer.status, context).toBe(200);
  for (const error of answer.errors ?? []) {
    expect(error.extensions?.code, `${context}: ${error.message}`).toBe('UNAUTHENTICATED');
  }
}

const liveSessions = async (userId: string) =>
  (await readTable(app, 'SELECT id FROM Session WHERE userId = ? AND revokedAt IS NULL', userId)).map((row) => row.id as string);

/** `count` logins with the given password, `perMs` started every millisecond so they spread over the change. */
function racingLogins(username: string, password: string, perMs = 4, count = 40) {
  return Array.from({ length: count }, (_, i) => sleep(Math.floor(i / perMs)).then(() => app.gql(LOGIN, { input: { username, password } })));
}

const outcomes = (answers: GraphQLResponse<any>[]) => {
  const counts = new Map<string, number>();
  for (const answer of answers) {
    const kind = answer.data?.login?.code ?? answer.data?.login?.__typename ?? 'error';
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return [...counts].map(([kind, n]) => `${n} ${kind}`).join(', ');
};

/** Every token a racing login was given: none may work any more. */
async function expectAllRefused(answers: GraphQLResponse<any>[]) {
  const issued = answers.filter((answer) => answer.data?.login?.__typename === 'AuthPayload').map((answer) => answer.data.login);
  for (const payload of issued) {
    const me = await app.gql(ME, {}, bearer(payload.accessToken));
    expect(me.errors?.[0]?.extensions?.code, `session ${decodeJwt(payload.accessToken).sid} of a racing login still works`).toBe('UNAUTHENTICATED');
    expect((await app.gql(REFRESH, { token: payload.refreshToken })).data.refresh.__typename).toBe('InvalidRefreshTokenError');
  }
  return issued.length;
}

/**
 * Holds the next `count` password checks between the check and the rest of their request: exactly the
 * window in which a change can commit between a login's check and its session insert. The real hasher
 * still does the work; only the moment the result is handed back is controlled, so the race is certain
 * rather than a matter of timing.
 */
function holdPasswordChecks(count: number) {
  const hasher = (app.services.accounts as unknown as { passwords: PasswordHasher }).passwords;
  const original = hasher.verify;
  let held = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let allHeld!: () => void;
  const reached = new Promise<void>((resolve) => (allHeld = resolve));
  hasher.verify = async function (this: PasswordHasher, hash: string, password: string) {
    const result = await original.call(this, hash, password);
    if (held < count) {
      held += 1;
      if (held === count) allHeld();
      await released;
    }
    return result;
  };
  return {
    /** Resolves once `count` checks have finished and are waiting. */
    reached,
    release() {
      hasher.verify = original;
      release();
    },
  };
}

/** Logins checked against the credentials before a change, finishing after it: `change` runs in the window. */
async function loginsAcross<T>(username: string, password: string, change: () => Promise<T>, count = 20) {
  const hold = holdPasswordChecks(count);
  const logins = Array.from({ length: count }, () => app.gql(LOGIN, { input: { username, password } }));
  await hold.reached;
  let changed: T;
  try {
    changed = await change();
  } finally {
    hold.release();
  }
  return { changed, answers: await Promise.all(logins) };
}

describe('logins checked before a credential change cannot start a session after it', { timeout: 60_000 }, () => {
  it('password change: the logins with the old password are refused, only the changing session stays', async () => {
    const { username, password, accessToken, user } = await registerUser(app);
    const next = 'the new password is long';
    const { changed, answers } = await loginsAcross(username, password, () => app.gql(CHANGE_PASSWORD, { current: password, next }, bearer(accessToken)));
    expect(changed.data.changePassword.__typename).toBe('PasswordChanged');
    for (const answer of answers) {
      expectClean(answer);
      expect(answer.data.login).toMatchObject({ __typename: 'InvalidCredentialsError', code: 'INVALID_CREDENTIALS' });
    }
    expect(await liveSessions(user.id)).toEqual([decodeJwt(accessToken).sid]);
  });

  it('logout everywhere: the logins checked before it are refused, and no session is left', async () => {
    const { username, password, accessToken, user } = await registerUser(app);
    const { changed, answers } = await loginsAcross(username, password, () => app.gql(LOGOUT_ALL, {}, bearer(accessToken)));
    expect(changed.data).toEqual({ logout: true });
    for (const answer of answers) {
      expectClean(answer);
      expect(answer.data.login.__typename).toBe('InvalidCredentialsError');
    }
    expect(await liveSessions(user.id)).toEqual([]);
    // A login after the logout is a new one, and works.
    expect((await app.gql(LOGIN, { input: { username, password } })).data.login.__typename).toBe('AuthPayload');
  });

  it('disable: the logins are answered ACCOUNT_DISABLED, and enable brings back no session', async () => {
    const admin = await createLoggedInAdmin(app);
    const { username, password, user } = await registerUser(app);
    const { changed, answers } = await loginsAcross(username, password, () => app.gql(DISABLE, { id: user.id }, bearer(admin.accessToken)));
    expect(changed.data.disableUser.__typename).toBe('User');
    expect((await app.gql(ENABLE, { id: user.id }, bearer(admin.accessToken))).data.enableUser.__typename).toBe('User');
    for (const answer of answers) {
      expectClean(answer);
      expect(answer.data.login).toMatchObject({ __typename: 'AccountDisabledError', code: 'ACCOUNT_DISABLED' });
    }
    await expectAllRefused(answers);
    expect(await liveSessions(user.id)).toEqual([]);
  });

  it('deletion by the owner or an administrator: the logins get a typed refusal, never an internal error', async () => {
    const admin = await createLoggedInAdmin(app);
    for (const byAdmin of [false, true]) {
      const { username, password, accessToken, user } = await registerUser(app);
      const { changed, answers } = await loginsAcross(username, password, () =>
        byAdmin ? app.gql(DELETE_USER, { id: user.id }, bearer(admin.accessToken)) : app.gql(DELETE_ACCOUNT, { password }, bearer(accessToken)),
      );
      expect(changed.errors).toBeUndefined();
      for (const answer of answers) {
        expectClean(answer, `deletion by ${byAdmin ? 'admin' : 'owner'}`);
        expect(answer.data.login.__typename).toBe('InvalidCredentialsError');
      }
      expect(await readTable(app, 'SELECT id FROM Session WHERE userId = ?', user.id)).toEqual([]);
    }
  });
});

describe('free-running logins racing a credential change', { timeout: 120_000 }, () => {
  const stats: string[] = [];
  afterAll(() => console.log(stats.join('\n')));

  it.each([0, 1])('round %i: after a password change, no session of a login with the old password works', async (round) => {
    const { username, password, accessToken, user } = await registerUser(app);
    const keptSession = decodeJwt(accessToken).sid as string;
    const next = 'the new password is long';
    const change = app.gql(CHANGE_PASSWORD, { current: password, next }, bearer(accessToken));
    const logins = racingLogins(username, password, 2 + round * 2);
    const [changed, ...answers] = await Promise.all([change, ...logins]);

    expect(changed.data.changePassword.__typename).toBe('PasswordChanged');
    for (const answer of answers) {
      expectClean(answer);
      expect(['AuthPayload', 'InvalidCredentialsError']).toContain(answer.data.login.__typename);
    }
    const issued = await expectAllRefused(answers);
    stats.push(`password change round ${round}: ${outcomes(answers)}; ${issued} sessions issued, all ended`);
    expect(await liveSessions(user.id)).toEqual([keptSession]);
    expect((await app.gql(LOGIN, { input: { username, password } })).data.login.__typename).toBe('InvalidCredentialsError');
    expect((await app.gql(LOGIN, { input: { username, password: next } })).data.login.__typename).toBe('AuthPayload');
  });

  it.each([0, 1])('round %i: sessions of logins racing a disable do not come back on enable', async (round) => {
    const admin = await createLoggedInAdmin(app);
    const { username, password, user } = await registerUser(app);
    const logins = racingLogins(username, password);
    const disable = sleep(5 + round * 5).then(() => app.gql(DISABLE, { id: user.id }, bearer(admin.accessToken)));
    const [disabled, ...answers] = await Promise.all([disable, ...logins]);
    expect(disabled.data.disableUser.__typename).toBe('User');
    for (const answer of answers) {
      expectClean(answer);
      expect(['AuthPayload', 'AccountDisabledError']).toContain(answer.data.login.__typename);
    }
    expect((await app.gql(ENABLE, { id: user.id }, bearer(admin.accessToken))).data.enableUser.__typename).toBe('User');
    const issued = await expectAllRefused(answers);
    stats.push(`disable round ${round}: ${outcomes(answers)}; ${issued} sessions issued, all ended`);
    expect(await liveSessions(user.id)).toEqual([]);
  });

  it('logins racing logout everywhere answer cleanly, and every session that existed when it committed is ended', async () => {
    const { username, password, accessToken, user } = await registerUser(app);
    const before = await liveSessions(user.id);
    const logins = racingLogins(username, password);
    const logout = sleep(10).then(() => app.gql(LOGOUT_ALL, {}, bearer(accessToken)));
    const [loggedOut, ...answers] = await Promise.all([logout, ...logins]);
    expect(loggedOut.data).toEqual({ logout: true });
    for (const answer of answers) expectClean(answer);
    for (const id of before) expect(await liveSessions(user.id)).not.toContain(id);
  });
});

const CREATE_API_TOKEN = 'mutation ($input: CreateApiTokenInput!) { createApiToken(input: $input) { __typename ... on ApiTokenCreated { token } } }';

/**
 * Sends requests so that their database work interleaves in a known order: a transaction holds the
 * database (transactions and queries run one at a time, in arrival order) while each request is sent and
 * given time to queue its first statement. The first request's first read thus comes before the second
 * request's change, and its own write after it. (If a request were slower to queue than the pause, the
 * order would only become the harmless sequential one.)
 */
async function inOrder<const R extends readonly (() => Promise<GraphQLResponse<any>>)[]>(requests: R): Promise<{ [K in keyof R]: GraphQLResponse<any> }> {
  const sent: Promise<GraphQLResponse<any>>[] = [];
  await rawDb(app.services).$transaction(async (tx) => {
    await tx.user.count();
    for (const request of requests) {
      sent.push(request());
      await sleep(50);
    }
  });
  return (await Promise.all(sent)) as { [K in keyof R]: GraphQLResponse<any> };
}

describe('racing identical requests answer cleanly', { timeout: 60_000 }, () => {
  it('four parallel deleteAccount: one AccountDeleted, the others typed or UNAUTHENTICATED', async () => {
    for (let round = 0; round < 3; round++) {
      const { password, accessToken, user } = await registerUser(app);
      const answers = await Promise.all(Array.from({ length: 4 }, () => app.gql(DELETE_ACCOUNT, { password }, bearer(accessToken))));
      for (const answer of answers) expectClean(answer, 'deleteAccount');
      const deleted = answers.filter((answer) => answer.data?.deleteAccount?.__typename === 'AccountDeleted');
      expect(deleted).toHaveLength(1);
      expect(deleted[0]!.data.deleteAccount.id).toBe(user.id);
      expect(await rawDb(app.services).user.findUnique({ where: { id: user.id } })).toBeNull();
    }
  });

  it('four parallel identical password changes: exactly one applies, the others are refused with a typed answer', async () => {
    const { password, accessToken, user } = await registerUser(app);
    const answers = await Promise.all(
      Array.from({ length: 4 }, () => app.gql(CHANGE_PASSWORD, { current: password, next: 'the next password here' }, bearer(accessToken))),
    );
    for (const answer of answers) expectClean(answer, 'changePassword');
    const kinds = answers.map((answer) => answer.data.changePassword.__typename).sort();
    expect(kinds).toEqual(['InvalidCredentialsError', 'InvalidCredentialsError', 'InvalidCredentialsError', 'PasswordChanged']);
    expect((await rawDb(app.services).user.findUniqueOrThrow({ where: { id: user.id } })).credentialsVersion).toBe(1);
  });

  it('parallel revokeSession, revokeApiToken and logout everywhere: one true each, the rest false or UNAUTHENTICATED', async () => {
    const { username, password, accessToken } = await registerUser(app);
    const other = (await app.gql(LOGIN, { input: { username, password } })).data.login;
    const { apiToken } = await createApiToken(app, accessToken, { scopes: ['PROFILE_READ'] });
    const sessionId = decodeJwt(other.accessToken).sid as string;
    const revokes = await Promise.all(Array.from({ length: 4 }, () => app.gql(REVOKE_SESSION, { id: sessionId }, bearer(accessToken))));
    const tokenRevokes = await Promise.all(Array.from({ length: 4 }, () => app.gql(REVOKE_API_TOKEN, { id: apiToken.id }, bearer(accessToken))));
    for (const answer of [...revokes, ...tokenRevokes]) expectClean(answer);
    expect(revokes.map((answer) => answer.data.revokeSession).sort()).toEqual([false, false, false, true]);
    expect(tokenRevokes.map((answer) => answer.data.revokeApiToken).sort()).toEqual([false, false, false, true]);
    const logouts = await Promise.all(Array.from({ length: 4 }, () => app.gql(LOGOUT_ALL, {}, bearer(accessToken))));
    for (const answer of logouts) expectClean(answer, 'logout');
  });

  it('token creation and a profile update that were let in before a deletion: typed answers, no token outlives the account', async () => {
    const admin = await createLoggedInAdmin(app);
    // The administrator's role is cached, so the deletion's transaction is its first statement.
    expect((await app.gql(ME, {}, bearer(admin.accessToken))).errors).toBeUndefined();
    for (const first of [
      (token: string) => app.gql(CREATE_API_TOKEN, { input: { name: 'script', scopes: ['PROFILE_READ'] } }, bearer(token)),
      (token: string) => app.gql(UPDATE_PROFILE, { input: { fullname: 'Late Name', email: `late${Date.now()}@example.com` } }, bearer(token)),
    ]) {
      const { accessToken, user } = await registerUser(app);
      const [attempt, deleted] = await inOrder([() => first(accessToken), () => app.gql(DELETE_USER, { id: user.id }, bearer(admin.accessToken))]);
      expectClean(attempt);
      expect(deleted.data.deleteUser.__typename).toBe('User');
      expect(await readTable(app, 'SELECT id FROM ApiToken WHERE userId = ?', user.id)).toEqual([]);
    }
  });

  it('an API token whose creation was let in before a disable does not work after enable', async () => {
    const admin = await createLoggedInAdmin(app);
    const { accessToken, user } = await registerUser(app);
    const [created, disabled] = await inOrder([
      () => app.gql(CREATE_API_TOKEN, { input: { name: 'script', scopes: ['PROFILE_READ'] } }, bearer(accessToken)),
      () => app.gql(DISABLE, { id: user.id }, bearer(admin.accessToken)),
    ]);
    expectClean(created);
    expect(disabled.data.disableUser.__typename).toBe('User');
    expect((await app.gql(ENABLE, { id: user.id }, bearer(admin.accessToken))).data.enableUser.__typename).toBe('User');
    const token = created.data?.createApiToken?.token;
    if (token) expect((await app.gql(ME, {}, bearer(token))).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(await readTable(app, 'SELECT id FROM ApiToken WHERE userId = ? AND revokedAt IS NULL', user.id)).toEqual([]);
  });
});
