import { describe, expect, it, vi } from 'vitest';
import { SessionRotations } from '../src/db/stores/session-rotation.js';
import { preparedStatementsOf } from '../src/db/client.js';
import { createApp } from '../src/app.js';
import { readTable } from './support/accounts.js';
import { onPostgres } from './support/db.js';
import { bearer, createTestApp, LOGIN, ManualClock, ME, REFRESH, registerUser } from './support/app.js';
import { rawDb } from './support/raw-db.js';

const DAY = 86_400_000;
const clock = new ManualClock();
const app = await createTestApp({ REFRESH_REUSE_GRACE_SECONDS: '10' }, { clock });

async function refresh(token: string, target = app) {
  const response = await target.gql(REFRESH, { token });
  expect(response.errors).toBeUndefined();
  return response.data.refresh;
}

async function me(accessToken: string) {
  return app.gql(ME, {}, bearer(accessToken));
}

const MY_SESSIONS = 'query { mySessions { id current createdAt lastUsedAt expiresAt userAgent ip } }';

describe('refresh rotation', () => {
  it('returns new tokens and makes the new refresh token the current one', async () => {
    const { refreshToken, user } = await registerUser(app);
    const first = await refresh(refreshToken);
    expect(first.__typename).toBe('AuthPayload');
    expect(first.refreshToken).not.toBe(refreshToken);
    expect(first.user.id).toBe(user.id);
    expect((await me(first.accessToken)).data.me.id).toBe(user.id);

    clock.advance(11_000);
    const second = await refresh(first.refreshToken);
    expect(second.__typename).toBe('AuthPayload');
    expect(second.refreshToken).not.toBe(first.refreshToken);
  });

  it('converges racing tabs: the previous token inside the grace window returns the current token', async () => {
    const { refreshToken } = await registerUser(app);
    const first = await refresh(refreshToken);
    clock.advance(5_000);
    const again = await refresh(refreshToken);
    expect(again.__typename).toBe('AuthPayload');
    expect(again.refreshToken).toBe(first.refreshToken);
    // The converged token is still the live one.
    expect((await refresh(first.refreshToken)).__typename).toBe('AuthPayload');
  });

  it('treats the previous token after the window as reuse: the session dies with its access tokens', async () => {
    const { refreshToken } = await registerUser(app);
    const first = await refresh(refreshToken);
    expect((await me(first.accessToken)).data.me).not.toBeNull();
    clock.advance(10_001);
    expect(await refresh(refreshToken)).toMatchObject({ __typename: 'InvalidRefreshTokenError', code: 'REFRESH_TOKEN_REUSED' });
    expect((await me(first.accessToken)).errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'session_ended' });
    expect((await refresh(first.refreshToken)).code).toBe('REFRESH_TOKEN_REVOKED');
  });

  it('treats a token two generations old as reuse even inside the window', async () => {
    const { refreshToken } = await registerUser(app);
    const first = await refresh(refreshToken);
    clock.advance(11_000);
    const second = await refresh(first.refreshToken);
    expect(second.__typename).toBe('AuthPayload');
    expect((await refresh(refreshToken)).code).toBe('REFRESH_TOKEN_REUSED');
    expect((await refresh(second.refreshToken)).code).toBe('REFRESH_TOKEN_REVOKED');
  });

  it('has no grace at all when the window is 0', async () => {
    const strict = await createTestApp({ REFRESH_REUSE_GRACE_SECONDS: '0' });
    const { refreshToken } = await registerUser(strict);
    expect((await refresh(refreshToken, strict)).__typename).toBe('AuthPayload');
    expect((await refresh(refreshToken, strict)).code).toBe('REFRESH_TOKEN_REUSED');
  });

  it('answers unknown, forged and malformed tokens with REFRESH_TOKEN_INVALID', async () => {
    const { refreshToken } = await registerUser(app);
    const [prefixAndId, counter, mac] = refreshToken.split('.');
    const forgedMac = mac!.slice(0, -1) + (mac!.endsWith('A') ? 'E' : 'A');
    // The same MAC bytes spelled differently: a spare (ignored) bit of the last character set.
    const respelledMac = mac!.slice(0, -1) + String.fromCharCode(mac!.charCodeAt(mac!.length - 1) + 1);
    for (const token of [
      `${prefixAndId}.${counter}.${respelledMac}`,
      // The same generation spelled with a leading zero.
      `${prefixAndId}.0${counter}.${mac}`,
      'nonsense',
      '',
      'x'.repeat(10_000),
      `${prefixAndId}.${counter}.${forgedMac}`,
      `${prefixAndId}.${Number(counter) + 1}.${mac}`,
      `grt_${crypto.randomUUID()}.0.${mac}`,
    ]) {
      expect(await refresh(token)).toMatchObject({ __typename: 'InvalidRefreshTokenError', code: 'REFRESH_TOKEN_INVALID' });
    }
    // None of that harmed the real session.
    expect((await refresh(refreshToken)).__typename).toBe('AuthPayload');
  });

  it('survives 20 parallel refreshes with one token: all succeed with the same new token', async () => {
    const { refreshToken, user } = await registerUser(app);
    const results = await Promise.all(Array.from({ length: 20 }, () => refresh(refreshToken)));
    expect(results.map((result) => result.__typename)).toEqual(Array(20).fill('AuthPayload'));
    expect(new Set(results.map((result) => result.refreshToken)).size).toBe(1);
    const sessions = await rawDb(app.services).session.findMany({ where: { userId: user.id } });
    expect(sessions).toHaveLength(1);
    expect(sessions[0]).toMatchObject({ revokedAt: null, refreshCounter: 1 });
    expect((await refresh(results[0].refreshToken)).__typename).toBe('AuthPayload');
  });
});

describe('group commit of rotations', () => {
  const sessionIdOf = (refreshToken: string) => refreshToken.slice('grt_'.length, refreshToken.indexOf('.'));

  it('writes parallel refreshes of different sessions together, and each keeps its own outcome', async () => {
    const users = await Promise.all(Array.from({ length: 8 }, () => registerUser(app)));
    // On SQLite the server rotates through the cached prepared statement, not Prisma (prepared-statements.ts);
    // on PostgreSQL through $queryRaw, one statement per batch all the same.
    let writes: { mock: { calls: unknown[] }; mockRestore(): void };
    if (onPostgres) {
      writes = vi.spyOn(rawDb(app.services), '$queryRaw');
    } else {
      const prepared = preparedStatementsOf(rawDb(app.services))!;
      expect(prepared.available).toBe(true);
      writes = vi.spyOn(prepared, 'writeReturning');
    }
    let rotated: Awaited<ReturnType<typeof refresh>>[];
    try {
      rotated = await Promise.all(users.map((user) => refresh(user.refreshToken)));
      expect(writes.mock.calls.length).toBeGreaterThan(0);
      expect(writes.mock.calls.length).toBeLessThan(users.length);
    } finally {
      writes.mockRestore();
    }
    expect(rotated.map((r) => r.__typename)).toEqual(Array(8).fill('AuthPayload'));
    expect(rotated.map((r) => r.user.id)).toEqual(users.map((user) => user.user.id));
    expect(new Set(rotated.map((r) => r.refreshToken)).size).toBe(8);
    clock.advance(10_001);
    // Every session moved on by exactly one generation: its new token works, its old one is reuse.
    for (const [i, user] of users.entries()) {
      if (i % 2 === 0) expect((await refresh(rotated[i].refreshToken)).__typename).toBe('AuthPayload');
      else expect((await refresh(user.refreshToken)).code).toBe('REFRESH_TOKEN_REUSED');
    }
  });

  for (const path of ['prepared statement', 'Prisma'] as const) {
    // The prepared statement is SQLite's fast path (better-sqlite3); PostgreSQL has only the Prisma path.
    it.skipIf(onPostgres && path === 'prepared statement')(
      `decides each claim of one batch on its own through ${path}: a duplicate and a stale generation lose, the rest win`,
      async () => {
        const [a, b, c] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
        await refresh(c.refreshToken); // c is at generation 1 now; its generation 0 is stale
        const prepared = path === 'Prisma' ? undefined : preparedStatementsOf(rawDb(app.services))!;
        if (prepared) expect(prepared.available).toBe(true);
        const committer = new SessionRotations(rawDb(app.services), () => clock.now(), app.services.config.sessions.idleTimeoutMs, { prepared });
        const writes = prepared ? vi.spyOn(prepared, 'writeReturning') : vi.spyOn(rawDb(app.services), '$queryRaw');
        let outcomes: Awaited<ReturnType<typeof committer.claim>>[];
        try {
          const ids = [a, a, b, c].map((user) => sessionIdOf(user.refreshToken));
          outcomes = await Promise.all(ids.map((id) => committer.claim(id, 0)));
          expect(writes).toHaveBeenCalledTimes(1);
        } finally {
          writes.mockRestore();
        }
        expect(outcomes.map((outcome) => outcome !== null)).toEqual([true, false, true, false]);
        const stored = async (user: { refreshToken: string }) =>
          rawDb(app.services).session.findUniqueOrThrow({ where: { id: sessionIdOf(user.refreshToken) } });
        expect([(await stored(a)).refreshCounter, (await stored(b)).refreshCounter, (await stored(c)).refreshCounter]).toEqual([1, 1, 1]);
        // Written in Prisma's own DateTime format: Prisma reads it back and finds it by exact value.
        const rotatedAt = (await stored(a)).rotatedAt;
        expect(rotatedAt.getTime()).toBe(clock.now());
        expect(
          await rawDb(app.services).session.count({
            where: { id: sessionIdOf(a.refreshToken), rotatedAt: new Date(clock.now()), lastUsedAt: new Date(clock.now()) },
          }),
        ).toBe(1);
      },
    );
  }

  it('refuses and ends a session whose owner another process disabled, once this process reads the owner again', async () => {
    const { refreshToken, user } = await registerUser(app);
    const current = await refresh(refreshToken);
    // As the admin CLI on another process would: straight to the database, past this process's caches.
    await rawDb(app.services).user.update({ where: { id: user.id }, data: { disabledAt: new Date(clock.now()) } });
    clock.advance(30_001); // the cached user row has expired
    expect(await refresh(current.refreshToken)).toMatchObject({ __typename: 'InvalidRefreshTokenError', code: 'REFRESH_TOKEN_REVOKED' });
    const row = await rawDb(app.services).session.findUniqueOrThrow({ where: { id: sessionIdOf(refreshToken) } });
    expect(row.revokedReason).toBe('user_disabled');
  });

  it('refuses a session revoked by another process although this one still remembers it as live', async () => {
    const { refreshToken } = await registerUser(app);
    const current = await refresh(refreshToken);
    // As the admin CLI or a second server would: straight to the database, past this process's memory.
    await rawDb(app.services).session.update({ where: { id: sessionIdOf(refreshToken) }, data: { revokedAt: new Date(clock.now()) } });
    expect(await refresh(current.refreshToken)).toMatchObject({ __typename: 'InvalidRefreshTokenError', code: 'REFRESH_TOKEN_REVOKED' });
  });

  it('lets the database refuse a session that ended by time although this process remembers it as live', async () => {
    const past = new Date(clock.now() - 1);
    for (const data of [{ expiresAt: past }, { lastUsedAt: new Date(clock.now() - 31 * 24 * 3600_000) }]) {
      const { refreshToken } = await registerUser(app);
      const current = await refresh(refreshToken);
      // The rotation's compare-and-set compares these times in SQL: it must not take this process's word.
      await rawDb(app.services).session.update({ where: { id: sessionIdOf(refreshToken) }, data });
      expect(await refresh(current.refreshToken)).toMatchObject({ __typename: 'InvalidRefreshTokenError', code: 'REFRESH_TOKEN_EXPIRED' });
    }
  });

  it('applies the grace and reuse rules to a rotation another process made', async () => {
    const { refreshToken } = await registerUser(app);
    const id = sessionIdOf(refreshToken);
    // Another server rotated generation 0 to 1; this process still remembers generation 0 as current.
    await rawDb(app.services).session.update({ where: { id }, data: { refreshCounter: 1, rotatedAt: new Date(clock.now()) } });
    const converged = await refresh(refreshToken);
    expect(converged.__typename).toBe('AuthPayload');
    expect(converged.refreshToken.startsWith(`grt_${id}.1.`)).toBe(true);
    clock.advance(10_001);
    expect((await refresh(refreshToken)).code).toBe('REFRESH_TOKEN_REUSED');
  });
});

describe('session lifetime', () => {
  it('expires after the idle timeout, enforced at refresh, and refreshing keeps it alive', async () => {
    const { refreshToken } = await registerUser(app);
    clock.advance(29 * DAY);
    const kept = await refresh(refreshToken);
    expect(kept.__typename).toBe('AuthPayload');
    clock.advance(30 * DAY + 1);
    expect((await refresh(kept.refreshToken)).code).toBe('REFRESH_TOKEN_EXPIRED');
  });

  it('expires after the absolute lifetime however active it is', async () => {
    let { refreshToken } = await registerUser(app);
    for (let day = 20; day <= 80; day += 20) {
      clock.advance(20 * DAY);
      const next = await refresh(refreshToken);
      expect(next.__typename).toBe('AuthPayload');
      refreshToken = next.refreshToken;
    }
    clock.advance(15 * DAY); // day 95: idle for only 15 days, but past the 90-day lifetime
    expect((await refresh(refreshToken)).code).toBe('REFRESH_TOKEN_EXPIRED');
  });
});

describe('logout and session management', () => {
  it('logout kills the access token and the refresh token of the current session only', async () => {
    const { username, password, accessToken, refreshToken } = await registerUser(app);
    const other = (await app.gql(LOGIN, { input: { username, password } })).data.login;
    expect((await app.gql('mutation { logout }', {}, bearer(accessToken))).data.logout).toBe(true);
    expect((await me(accessToken)).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect((await refresh(refreshToken)).code).toBe('REFRESH_TOKEN_REVOKED');
    expect((await me(other.accessToken)).data.me).not.toBeNull();
    expect((await refresh(other.refreshToken)).__typename).toBe('AuthPayload');
  });

  it('logout of all sessions kills every access token at once', async () => {
    const { username, password, accessToken } = await registerUser(app);
    const logins = await Promise.all([1, 2, 3].map(async () => (await app.gql(LOGIN, { input: { username, password } })).data.login));
    for (const login of logins) expect((await me(login.accessToken)).data.me).not.toBeNull();
    expect((await app.gql('mutation { logout(allSessions: true) }', {}, bearer(accessToken))).data.logout).toBe(true);
    for (const token of [accessToken, ...logins.map((login) => login.accessToken)]) {
      expect((await me(token)).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
    for (const login of logins) expect((await refresh(login.refreshToken)).code).toBe('REFRESH_TOKEN_REVOKED');
  });

  it('logout without a token is UNAUTHENTICATED', async () => {
    const response = await app.gql('mutation { logout }');
    expect(response.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('lists my sessions and marks the current one', async () => {
    const { username, password, accessToken } = await registerUser(app);
    await app.gql(LOGIN, { input: { username, password } }, { 'user-agent': 'Phone/2' });
    const response = await app.gql(MY_SESSIONS, {}, bearer(accessToken));
    expect(response.errors).toBeUndefined();
    const sessions = response.data.mySessions;
    expect(sessions).toHaveLength(2);
    expect(sessions.filter((session: { current: boolean }) => session.current)).toHaveLength(1);
    expect(sessions.map((session: { userAgent: string }) => session.userAgent)).toContain('Phone/2');
  });

  it('revokes one of my sessions, but another user cannot revoke mine', async () => {
    const alice = await registerUser(app);
    const mallory = await registerUser(app);
    const aliceSessionId = (await app.gql(MY_SESSIONS, {}, bearer(alice.accessToken))).data.mySessions[0].id;

    const attempt = await app.gql('mutation ($id: ID!) { revokeSession(id: $id) }', { id: aliceSessionId }, bearer(mallory.accessToken));
    const unknown = await app.gql('mutation ($id: ID!) { revokeSession(id: $id) }', { id: crypto.randomUUID() }, bearer(mallory.accessToken));
    expect(attempt).toEqual(unknown);
    expect(attempt.data.revokeSession).toBe(false);
    expect((await me(alice.accessToken)).data.me).not.toBeNull();

    const own = await app.gql('mutation ($id: ID!) { revokeSession(id: $id) }', { id: aliceSessionId }, bearer(alice.accessToken));
    expect(own.data.revokeSession).toBe(true);
    expect((await me(alice.accessToken)).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});

describe('per-request session check', () => {
  it('reads the session from the database once, then answers from memory until it is revoked', async () => {
    const { accessToken } = await registerUser(app);
    // A second server on the same database and keys: it has never seen this session, so its first check
    // must read the row (the first server cached it when the session started).
    const other = await createApp(app.services.config);
    // Until its change feed is live a server reads the database on every request (test/change-feed.test.ts).
    expect(await other.services.db.changes.whenLive(10_000)).toBe(true);
    const reads = vi.spyOn(rawDb(other.services).session, 'findUnique');
    const otherMe = async () =>
      (
        await other.yoga.fetch('http://gatehouse.test/graphql', {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...bearer(accessToken) },
          body: JSON.stringify({ query: ME }),
        })
      ).json();
    try {
      for (let i = 0; i < 20; i++) expect((await otherMe()).data.me).not.toBeNull();
      expect(reads.mock.calls.length).toBe(1);
      const logout = await other.yoga.fetch('http://gatehouse.test/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(accessToken) },
        body: JSON.stringify({ query: 'mutation { logout }' }),
      });
      expect((await logout.json()).data.logout).toBe(true);
      expect((await otherMe()).errors?.[0]?.extensions?.reason).toBe('session_ended');
      expect(reads.mock.calls.length).toBe(1);
    } finally {
      reads.mockRestore();
      await other.close();
    }
  });

  it('does not let a check racing a logout bring the session back', async () => {
    const { accessToken } = await registerUser(app);
    const racing = await Promise.all([
      ...Array.from({ length: 5 }, () => me(accessToken)),
      app.gql('mutation { logout }', {}, bearer(accessToken)),
      ...Array.from({ length: 5 }, () => me(accessToken)),
    ]);
    expect(racing[5]!.data.logout).toBe(true);
    for (let i = 0; i < 3; i++) expect((await me(accessToken)).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});

describe('storage', () => {
  it('never stores a refresh token, or any part of its secret, in the database', async () => {
    const issued = await registerUser(app);
    const rotated = await refresh(issued.refreshToken);
    const secrets = [issued.refreshToken, rotated.refreshToken].map((token) => token.split('.').at(-1)!);
    // Read the raw tables, as someone with a copy of the database would.
    const dump = JSON.stringify([await readTable(app, 'SELECT * FROM Session'), await readTable(app, 'SELECT * FROM User')]);
    for (const secret of secrets) expect(dump).not.toContain(secret);
    expect(dump).not.toContain(issued.password);
  });
});
