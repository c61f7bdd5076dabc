import { describe, expect, it } from 'vitest';
import type { LoginMutation, MeQuery, MySessionsQuery, RegisterMutation } from '../../client/generated/graphql.js';
import { createGatehouseSession, type GatehouseSession, type LogoutReason, type RefreshTokenTransport, SessionEndedError } from '../../client/session.js';
import { memoryTokenStorage, type TokenStorage } from '../../client/token-storage.js';
import { bearer, LOGIN, type ManualClock, REFRESH, uniqueName } from '../support/app.js';
import { cookieJar } from './cookie-jar.js';
import { type ListeningApp, recordingFetch } from './support.js';

// What both clients must do with the kit, written once: apollo.test.ts and urql.test.ts each run it with a
// driver for their client, against a server with body transport and one with cookie transport. Every
// request goes over real HTTP to the real server; under cookie transport through a cookie jar, as a
// browser would keep the httpOnly cookie.

const REFRESH_COOKIE = 'gatehouse_refresh';

/** A query's outcome: the data, or the error the client reported (urql's networkError unwrapped). */
export interface Outcome<T> {
  readonly data?: T | null | undefined;
  readonly error?: unknown;
}

/** One client (Apollo or urql) wired with the kit to one session. Queries always go to the network. */
export interface KitDriver {
  register(input: { username: string; password: string }): Promise<RegisterMutation['register']>;
  login(input: { username: string; password: string }): Promise<LoginMutation['login']>;
  me(): Promise<Outcome<MeQuery>>;
  mySessions(): Promise<Outcome<MySessionsQuery>>;
  /** urql sends identical queries in flight once (its operation key is the query and variables). */
  readonly identicalQueriesShareARequest: boolean;
}

export interface ScenarioSetup {
  /** A server whose REFRESH_TOKEN_TRANSPORT serves `transport`. */
  readonly server: ListeningApp;
  readonly transport: RefreshTokenTransport;
  readonly clock: ManualClock;
  /** The server's ACCESS_TOKEN_TTL_SECONDS. */
  readonly accessTokenTtlSeconds: number;
  readonly driver: (session: GatehouseSession) => KitDriver;
  /** A server of the same transport allowing one refresh per hour (RATE_LIMIT_REFRESH=1/1h), for a refresh that fails without ending the session. */
  readonly refreshLimited?: ListeningApp;
}

export function clientScenarios(name: string, { server, transport, clock, accessTokenTtlSeconds, driver, refreshLimited }: ScenarioSetup): void {
  const { app } = server;
  /** Past the lifetime and the server's 5 s clock tolerance: every access token held so far is refused. */
  const expireAccessTokens = () => clock.advance((accessTokenTtlSeconds + 10) * 1000);

  /** A page of the app: its storage, its client, and (cookie transport) the browser's cookie jar. */
  function kit(jar = cookieJar(), storage: TokenStorage = memoryTokenStorage(), url = server.url, wrap = (f: typeof fetch) => f) {
    const network = recordingFetch(wrap(transport === 'cookie' ? jar.fetch : fetch));
    const loggedOut: LogoutReason[] = [];
    const session = createGatehouseSession({ url, storage, transport, fetch: network.fetch, onLogout: (reason) => loggedOut.push(reason) });
    /** The refresh token in force: in the storage (body) or in the cookie (cookie). */
    const refreshToken = () => (transport === 'body' ? storage.load()?.refreshToken : jar.get(REFRESH_COOKIE, server.url));
    return { network, storage, jar, session, loggedOut, refreshToken, client: driver(session) };
  }

  async function signedUp(url = server.url) {
    const k = kit(undefined, undefined, url);
    const username = uniqueName('kit');
    const password = 'a long enough password';
    const result = await k.client.register({ username, password });
    if (result.__typename !== 'AuthPayload') throw new Error(`registration failed: ${JSON.stringify(result)}`);
    k.session.signIn(result);
    k.network.reset();
    return { ...k, username, password, tokens: result, issuedRefreshToken: k.refreshToken() };
  }

  describe(name, () => {
    it(`logs in, keeps the tokens (${transport === 'body' ? 'both in the storage' : 'the refresh token only in the cookie'}) and reads me and mySessions`, async () => {
      const { client, session, storage, jar, username, password } = await signedUp();
      const login = await client.login({ username, password });
      if (login.__typename !== 'AuthPayload') throw new Error(`login failed: ${JSON.stringify(login)}`);
      session.signIn(login);
      if (transport === 'body') {
        expect(storage.load()).toEqual({ accessToken: login.accessToken, refreshToken: login.refreshToken });
      } else {
        // JavaScript never sees the refresh token: not in the answer, not in the storage; the jar keeps it httpOnly.
        expect(login.refreshToken).toBeNull();
        expect(storage.load()).toEqual({ accessToken: login.accessToken, refreshToken: null });
        expect(jar.cookies.get(REFRESH_COOKIE)).toMatchObject({ path: '/graphql', httpOnly: true });
      }

      expect((await client.me()).data?.me?.username).toBe(username);
      const sessions = (await client.mySessions()).data?.mySessions ?? [];
      expect(sessions).toHaveLength(2);
      expect(sessions.filter((s) => s.current)).toHaveLength(1);
    });

    it('refreshes an access token that expired mid-run and retries the request, keeping both rotated tokens', async () => {
      const { client, network, storage, refreshToken, tokens, issuedRefreshToken, username, loggedOut } = await signedUp();
      expect(issuedRefreshToken).toEqual(expect.any(String));
      expect((await client.me()).data?.me?.username).toBe(username);

      expireAccessTokens();
      const me = await client.me();
      expect(me.error).toBeUndefined();
      expect(me.data?.me?.username).toBe(username);
      expect(network.count('Refresh')).toBe(1);
      // Once with the token, refused; once more after the refresh.
      expect(network.count('Me')).toBe(3);
      expect(storage.load()?.accessToken).not.toBe(tokens.accessToken);
      const rotated = refreshToken();
      expect(rotated).toEqual(expect.any(String));
      expect(rotated).not.toBe(issuedRefreshToken);
      // The rotated refresh token is the one the server accepts now.
      const again = await app.gql(REFRESH, { token: rotated });
      expect(again.data?.refresh?.__typename).toBe('AuthPayload');
      expect(loggedOut).toEqual([]);
    });

    it('sends one refresh for parallel requests refused after expiry, and retries each of them once', async () => {
      const { client, network, username } = await signedUp();
      expireAccessTokens();
      const PARALLEL = 6;
      const outcomes = await Promise.all(Array.from({ length: PARALLEL }, (_, i) => (i % 2 ? client.me() : client.mySessions())));
      for (const [i, outcome] of outcomes.entries()) {
        expect(outcome.error).toBeUndefined();
        if (i % 2) expect((outcome.data as MeQuery).me?.username).toBe(username);
        else expect((outcome.data as MySessionsQuery).mySessions).toHaveLength(1);
      }
      expect(network.count('Refresh')).toBe(1);
      // Each request refused once and sent once more after the refresh.
      const requests = client.identicalQueriesShareARequest ? 2 : PARALLEL;
      expect(network.count('Me') + network.count('MySessions')).toBe(2 * requests);
    });

    it('signs out when the session was revoked elsewhere: one refresh, tokens cleared, onLogout, no retry loop', async () => {
      const { client, network, storage, loggedOut, username, password } = await signedUp();
      // The same user on another device ends every session.
      const elsewhere = await app.gql(LOGIN, { input: { username, password } });
      const revoked = await app.gql('mutation { logout(allSessions: true) }', {}, bearer(elsewhere.data.login.accessToken));
      expect(revoked.data?.logout).toBe(true);

      const me = await client.me();
      expect(me.error).toBeInstanceOf(SessionEndedError);
      expect((me.error as SessionEndedError).code).toBe('REFRESH_TOKEN_REVOKED');
      expect(loggedOut).toEqual(['refresh_failed']);
      expect(storage.load()).toBeNull();
      expect(network.count('Refresh')).toBe(1);
      expect(network.count('Me')).toBe(1);

      // Signed out now: the next request goes without a token and nothing tries to refresh.
      expect((await client.me()).data?.me).toBeNull();
      expect(network.count('Refresh')).toBe(1);
      expect(loggedOut).toEqual(['refresh_failed']);
    });

    it('logs out on the server and locally', async () => {
      const { session, storage, loggedOut, issuedRefreshToken, client, jar } = await signedUp();
      await session.logout();
      expect(storage.load()).toBeNull();
      expect(loggedOut).toEqual(['logout']);
      const refused = await app.gql(REFRESH, { token: issuedRefreshToken });
      expect(refused.data?.refresh?.__typename).toBe('InvalidRefreshTokenError');
      expect((await client.me()).data?.me).toBeNull();
      expect(jar.cookies.has(REFRESH_COOKIE)).toBe(false);
    });

    it('logs out after the access token expired, by the refresh token alone: no refresh needed', async () => {
      const { session, storage, loggedOut, network, issuedRefreshToken } = await signedUp();
      expireAccessTokens();
      await session.logout();
      expect(network.count('Refresh')).toBe(0);
      expect(network.count('Logout')).toBe(1);
      expect(storage.load()).toBeNull();
      expect(loggedOut).toEqual(['logout']);
      const refused = await app.gql(REFRESH, { token: issuedRefreshToken });
      expect(refused.data?.refresh?.__typename).toBe('InvalidRefreshTokenError');
    });

    it('a refresh answer arriving after logout does not bring the tokens back', async () => {
      // The refresh's answer is held (after the server sent it) until logout has run.
      let release = () => {};
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      const holdRefresh =
        (base: typeof fetch): typeof fetch =>
        async (input, init) => {
          const response = await base(input, init);
          if (typeof init?.body === 'string' && JSON.parse(init.body).operationName === 'Refresh') await held;
          return response;
        };
      const k = kit(undefined, undefined, server.url, holdRefresh);
      const registered = await k.client.register({ username: uniqueName('kit'), password: 'a long enough password' });
      if (registered.__typename !== 'AuthPayload') throw new Error('registration failed');
      k.session.signIn(registered);

      const refreshing = k.session.refresh(registered.accessToken);
      await expect.poll(() => k.network.count('Refresh')).toBe(1);
      await k.session.logout();
      release();
      await expect(refreshing).rejects.toBeInstanceOf(SessionEndedError);
      expect(k.storage.load()).toBeNull();
      expect(k.loggedOut).toEqual(['logout']);
    });

    if (refreshLimited) {
      it('a refresh that fails without a verdict on the session (RATE_LIMITED) fails the request but keeps the tokens', async () => {
        const { client, network, storage, loggedOut, username } = await signedUp(refreshLimited.url);
        expireAccessTokens();
        expect((await client.me()).data?.me?.username).toBe(username);
        const kept = storage.load();

        expireAccessTokens();
        const me = await client.me();
        expect(me.error).toBeDefined();
        expect(me.error).not.toBeInstanceOf(SessionEndedError);
        expect(storage.load()).toEqual(kept);
        expect(loggedOut).toEqual([]);
        expect(network.count('Refresh')).toBe(2);
        expect(network.count('Me')).toBe(3);
      });
    }

    if (transport === 'cookie') {
      it('restores the session after a page reload from the cookie alone', async () => {
        const { jar, username } = await signedUp();
        // A reload: the access token (in memory) is gone, the browser still has the cookie.
        const reloaded = kit(jar);
        expect(reloaded.session.accessToken()).toBeNull();
        await reloaded.session.refresh();
        expect(reloaded.session.accessToken()).toEqual(expect.any(String));
        expect((await reloaded.client.me()).data?.me?.username).toBe(username);
      });

      it('a reload without the cookie stays signed out: the refresh is refused once, onLogout is not called', async () => {
        const fresh = kit();
        await expect(fresh.session.refresh()).rejects.toMatchObject({ name: 'SessionEndedError', code: 'REFRESH_TOKEN_MISSING' });
        expect(fresh.network.count('Refresh')).toBe(1);
        expect(fresh.loggedOut).toEqual([]);
      });
    }
  });
}
