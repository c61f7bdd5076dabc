import { decodeJwt } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { bearer, createTestApp, LOGIN, ME, REFRESH, REGISTER, registerUser, uniqueName } from '../support/app.js';
import { readTable } from '../support/accounts.js';

// Parallel requests that fight over one name or one session. Afterwards the database and the API must
// agree: one account per name, and every session either alive with working tokens or ended with none.

const app = await createTestApp();

const count = async (sql: string, ...params: unknown[]) => Number((await readTable(app, sql, ...params))[0]!.n);

/** `name` in 2^k different letter cases (k = number of letters), cycled to `n` variants. */
function caseVariants(name: string, n: number): string[] {
  const letters = [...name].map((char, index) => (/[a-z]/i.test(char) ? index : -1)).filter((index) => index >= 0);
  return Array.from({ length: n }, (_, variant) =>
    [...name]
      .map((char, index) => {
        const bit = letters.indexOf(index);
        return bit >= 0 && (variant >> bit) & 1 ? char.toUpperCase() : char.toLowerCase();
      })
      .join(''),
  );
}

describe('parallel registrations of one name', () => {
  it('50 at once in different letter cases create exactly one user', async () => {
    const name = `racer_${Math.random().toString(36).slice(2, 8).replace(/\d/g, 'x')}`;
    const variants = caseVariants(name, 50);
    expect(new Set(variants).size).toBe(50);
    const usersBefore = await count('SELECT count(*) AS n FROM "User"');
    const sessionsBefore = await count('SELECT count(*) AS n FROM "Session"');

    const answers = await Promise.all(variants.map((username) => app.gql(REGISTER, { input: { username, password: 'a long enough password' } })));

    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.errors).toBeUndefined();
    }
    const kinds = answers.map((answer) => answer.data.register.__typename);
    expect(kinds.filter((kind) => kind === 'AuthPayload')).toHaveLength(1);
    expect(kinds.filter((kind) => kind === 'UsernameTakenError')).toHaveLength(49);
    expect(await count('SELECT count(*) AS n FROM "User" WHERE usernameKey = ?', name.toLowerCase())).toBe(1);
    expect(await count('SELECT count(*) AS n FROM "User"')).toBe(usersBefore + 1);
    expect(await count('SELECT count(*) AS n FROM "Session"')).toBe(sessionsBefore + 1);

    // The winner is a working account, whatever case they log in with.
    const winner = answers.find((answer) => answer.data.register.__typename === 'AuthPayload')!.data.register;
    const login = await app.gql(LOGIN, { input: { username: name.toUpperCase(), password: 'a long enough password' } });
    expect(login.data.login.__typename).toBe('AuthPayload');
    expect(login.data.login.user.id).toBe(winner.user.id);
  });
});

describe('parallel logins, refreshes and logouts on one session', { timeout: 60_000 }, () => {
  const LOGOUT = 'mutation { logout }';
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const stats: string[] = [];
  afterAll(() => console.log(stats.join('\n')));

  async function refreshWith(token: string) {
    const answer = await app.gql(REFRESH, { token });
    expect(answer.errors).toBeUndefined();
    return answer.data.refresh as { __typename: string; accessToken?: string; refreshToken?: string; code?: string };
  }

  it.each(Array.from({ length: 8 }, (_, round) => round))(
    'round %i: a logout racing refreshes and logins ends the session for good, with no orphans',
    async (round) => {
      const { username, password, accessToken, refreshToken, user } = await registerUser(app, { username: uniqueName('race') });
      const sessionId = decodeJwt(accessToken).sid as string;
      const sessionsBefore = await count('SELECT count(*) AS n FROM "Session" WHERE userId = ?', user.id);
      expect(sessionsBefore).toBe(1);

      // A client refreshing in a loop (each new token replaces the last), a burst of tabs refreshing with the
      // first token, logins and requests, and a logout that lands at a different moment each round.
      const chain: { __typename: string; accessToken?: string; refreshToken?: string; code?: string }[] = [];
      const refreshChain = (async () => {
        let current = refreshToken;
        for (let i = 0; i < 500; i++) {
          const result = await refreshWith(current);
          chain.push(result);
          if (result.__typename !== 'AuthPayload') return;
          current = result.refreshToken!;
        }
      })();
      const burst = Array.from({ length: 10 }, () => app.gql(REFRESH, { token: refreshToken }));
      const logins = Array.from({ length: 5 }, (_, i) => sleep(i * round).then(() => app.gql(LOGIN, { input: { username, password } })));
      const mes = Array.from({ length: 5 }, (_, i) => sleep(i * round).then(() => app.gql(ME, {}, bearer(accessToken))));
      const logout = sleep(round * 15).then(() => app.gql(LOGOUT, {}, bearer(accessToken)));
      const [burstAnswers, loginAnswers, meAnswers, logoutAnswer] = await Promise.all([
        Promise.all(burst),
        Promise.all(logins),
        Promise.all(mes),
        logout,
        refreshChain,
      ]);

      // Every answer is a proper answer, never an internal error.
      for (const answer of [...burstAnswers, ...loginAnswers]) expect(answer.errors).toBeUndefined();
      for (const answer of [...meAnswers, logoutAnswer]) {
        if (answer.errors) expect(answer.errors[0]!.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'session_ended' });
      }
      for (const answer of meAnswers.filter((answer) => !answer.errors)) expect(answer.data.me.id).toBe(user.id);
      // The logout either did it, or found the session already ended by reuse detection.
      if (!logoutAnswer.errors) expect(logoutAnswer.data).toEqual({ logout: true });

      const refreshed = [...burstAnswers.map((answer) => answer.data.refresh), ...chain];
      const successes = refreshed.filter((result) => result.__typename === 'AuthPayload');
      for (const failure of refreshed.filter((result) => result.__typename !== 'AuthPayload')) {
        expect(['REFRESH_TOKEN_REVOKED', 'REFRESH_TOKEN_REUSED']).toContain(failure.code);
      }
      expect(chain.at(-1)!.__typename).toBe('InvalidRefreshTokenError');
      expect(loginAnswers.map((answer) => answer.data.login.__typename)).toEqual(loginAnswers.map(() => 'AuthPayload'));
      stats.push(
        `round ${round}: ${successes.length}/${refreshed.length} refreshes succeeded (chain: ${chain.length - 1} rotations, then ${chain.at(-1)!.code}), ${meAnswers.filter((a) => !a.errors).length}/5 me ok, logout ${logoutAnswer.errors ? 'found it ended' : 'ended it'}`,
      );

      // The database: the raced session is revoked; the only other rows are the five logins' sessions.
      const row = (await readTable(app, 'SELECT revokedAt, revokedReason FROM "Session" WHERE id = ?', sessionId))[0] as {
        revokedAt: unknown;
        revokedReason: string;
      };
      expect(row.revokedAt).not.toBeNull();
      expect(['logout', 'refresh_token_reused']).toContain(row.revokedReason);
      const rows = (await readTable(app, 'SELECT id, revokedAt FROM "Session" WHERE userId = ?', user.id)) as { id: string; revokedAt: unknown }[];
      const loginSessionIds = loginAnswers.map((answer) => decodeJwt(answer.data.login.accessToken).sid as string);
      expect(new Set(loginSessionIds).size).toBe(5);
      expect(rows.map((r) => r.id).sort()).toEqual([sessionId, ...loginSessionIds].sort());
      expect(rows.filter((r) => r.revokedAt !== null).map((r) => r.id)).toEqual([sessionId]);

      // The API agrees: every access token of the raced session is refused, every refresh token of it fails
      // (and trying does not revive it or create a session), while the logins' sessions are untouched.
      const deadAccessTokens = [accessToken, ...successes.map((result) => result.accessToken!)];
      for (const token of deadAccessTokens) {
        const answer = await app.gql(ME, {}, bearer(token));
        expect(answer.data?.me ?? null).toBeNull();
        expect(answer.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'session_ended' });
      }
      for (const token of new Set([refreshToken, ...successes.map((result) => result.refreshToken!)])) {
        expect((await refreshWith(token)).__typename).toBe('InvalidRefreshTokenError');
      }
      for (const answer of loginAnswers) {
        const me = await app.gql(ME, {}, bearer(answer.data.login.accessToken));
        expect(me.data.me.id).toBe(user.id);
      }
      expect(await count('SELECT count(*) AS n FROM "Session" WHERE userId = ?', user.id)).toBe(6);
      expect(await count('SELECT count(*) AS n FROM "Session" WHERE userId = ? AND revokedAt IS NULL', user.id)).toBe(5);
    },
  );

  it('parallel logout-everywhere, refreshes and revokeSession leave no session alive that the API would honour', async () => {
    const { username, password, accessToken, refreshToken, user } = await registerUser(app, { username: uniqueName('race') });
    const other = await app.gql(LOGIN, { input: { username, password } });
    const otherSession = decodeJwt(other.data.login.accessToken).sid as string;

    const answers = await Promise.all([
      ...Array.from({ length: 10 }, () => app.gql(REFRESH, { token: refreshToken })),
      ...Array.from({ length: 10 }, () => app.gql(REFRESH, { token: other.data.login.refreshToken })),
      app.gql('mutation { logout(allSessions: true) }', {}, bearer(accessToken)),
      app.gql('mutation R($id: ID!) { revokeSession(id: $id) }', { id: otherSession }, bearer(accessToken)),
    ]);
    for (const answer of answers) expect(answer.status).toBeLessThan(500);

    // Every session of the user that existed when the logout began is revoked, and nothing new appeared.
    const rows = (await readTable(app, 'SELECT id, revokedAt FROM "Session" WHERE userId = ?', user.id)) as { id: string; revokedAt: unknown }[];
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row.revokedAt, `session ${row.id}`).not.toBeNull();
    const tokens = answers.flatMap((answer) => (answer.data?.refresh?.__typename === 'AuthPayload' ? [answer.data.refresh] : []));
    for (const token of [accessToken, other.data.login.accessToken, ...tokens.map((t) => t.accessToken)]) {
      expect((await app.gql(ME, {}, bearer(token))).errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED' });
    }
    for (const token of new Set([refreshToken, other.data.login.refreshToken, ...tokens.map((t) => t.refreshToken)])) {
      expect((await refreshWith(token)).__typename).toBe('InvalidRefreshTokenError');
    }
    expect(await count('SELECT count(*) AS n FROM "Session" WHERE userId = ?', user.id)).toBe(2);
  });
});
