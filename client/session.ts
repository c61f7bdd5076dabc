import { print } from 'graphql';
import {
  LogoutDocument,
  type LogoutMutation,
  type LogoutMutationVariables,
  RefreshDocument,
  type RefreshMutation,
  type RefreshMutationVariables,
} from './generated/graphql.js';
import { memoryTokenStorage, type StoredTokens, type TokenStorage } from './token-storage.js';

// The part of the kit both clients share: which tokens are in use, the one refresh in flight, logout. The
// Apollo link (apollo.ts) and the urql exchange (urql.ts) only attach the access token and call `refresh`
// when an answer says UNAUTHENTICATED.
//
// Refresh and logout go to the server with this module's own fetch, never through the Apollo link chain or
// urql's exchanges: a refresh that fails is therefore never itself refreshed and retried (no loop), and it
// is sent exactly once however many requests are waiting for it.

/** body: the refresh token travels in AuthPayload and in `refresh(refreshToken:)`. cookie: in the httpOnly
 * `gatehouse_refresh` cookie the server sets (REFRESH_TOKEN_TRANSPORT=cookie or both). */
export type RefreshTokenTransport = 'body' | 'cookie';

/** Why the kit signed the user out: the app called `logout`, or the session could not be refreshed. */
export type LogoutReason = 'logout' | 'refresh_failed';

export interface GatehouseSessionOptions {
  /** The GraphQL endpoint, e.g. `https://auth.example.com/graphql`. */
  readonly url: string;
  /** Default: in memory (see token-storage.ts). */
  readonly storage?: TokenStorage;
  /** Default `body`. Must match the server's REFRESH_TOKEN_TRANSPORT (`both` serves either). */
  readonly transport?: RefreshTokenTransport;
  /** Default: the global fetch. Both clients are given the same one. */
  readonly fetch?: typeof fetch;
  /** Called once the tokens are cleared; e.g. `client.clearStore()` and show the sign-in page. */
  readonly onLogout?: (reason: LogoutReason) => void;
}

/** A request failed because the session is over (refresh refused, or signed out meanwhile). Sign in again. */
export class SessionEndedError extends Error {
  override readonly name = 'SessionEndedError';
  /** The server's ErrorCode when it refused the refresh token (e.g. REFRESH_TOKEN_REVOKED), else null. */
  readonly code: string | null;
  constructor(code: string | null, message = 'The session has ended; sign in again.') {
    super(message);
    this.code = code;
  }
}

/** The tokens of an AuthPayload (login, register, resetPassword, signInWithCode, refresh ...). */
export interface IssuedTokens {
  readonly accessToken: string;
  readonly refreshToken?: string | null;
}

export interface GatehouseSession {
  readonly url: string;
  readonly transport: RefreshTokenTransport;
  readonly fetch: typeof fetch;
  /** What both clients send as fetch `credentials`: `include` under cookie transport, so the cookie goes along. */
  readonly credentials: 'include' | 'same-origin';
  /** The access token to send now, or null when signed out. */
  accessToken(): string | null;
  /** Keeps the tokens of an AuthPayload the app received (after login, register, ...). */
  signIn(tokens: IssuedTokens): void;
  /**
   * Gets new tokens. `staleAccessToken` is the token a request was refused with: if the tokens changed since
   * (another request refreshed already), nothing is sent. Every caller during a refresh shares it.
   * Resolves once the new tokens are stored. Rejects with SessionEndedError after signing out when the
   * server refuses the refresh token; with the underlying error, tokens kept, when the server could not be
   * asked (network, 5xx, RATE_LIMITED).
   * Without an argument under cookie transport it also restores a session after a page reload.
   */
  refresh(staleAccessToken?: string | null): Promise<void>;
  /** Ends the session on the server (every session of the user with allSessions), clears the tokens, calls onLogout. */
  logout(options?: { readonly allSessions?: boolean }): Promise<void>;
}

interface GraphQLAnswer<T> {
  readonly data?: T | null;
  readonly errors?: readonly { readonly message: string; readonly extensions?: Record<string, unknown> }[];
}

/** Whether any of these GraphQL errors says the access token was refused (expired, session ended, ...). */
export function isUnauthenticated(errors: readonly { readonly extensions?: Record<string, unknown> | undefined }[] | undefined): boolean {
  return errors?.some((error) => error.extensions?.code === 'UNAUTHENTICATED') ?? false;
}

export function createGatehouseSession(options: GatehouseSessionOptions): GatehouseSession {
  const storage = options.storage ?? memoryTokenStorage();
  const transport = options.transport ?? 'body';
  const fetchFn = options.fetch ?? ((input, init) => fetch(input, init));
  const credentials = transport === 'cookie' ? 'include' : 'same-origin';
  let inFlight: Promise<void> | null = null;
  // Moves on every sign-in and sign-out: a refresh answer that arrives after either belongs to a session the
  // app has left and must not overwrite what is stored now.
  let epoch = 0;

  async function post<T>(
    operationName: string,
    document: Parameters<typeof print>[0],
    variables: Record<string, unknown>,
    accessToken: string | null,
  ): Promise<GraphQLAnswer<T>> {
    const response = await fetchFn(options.url, {
      // POST JSON always: Yoga's CSRF prevention refuses a GET without its header.
      method: 'POST',
      credentials,
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json;q=0.9',
        ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}),
      },
      body: JSON.stringify({ query: print(document), operationName, variables }),
    });
    const text = await response.text();
    let answer: GraphQLAnswer<T>;
    try {
      answer = JSON.parse(text) as GraphQLAnswer<T>;
    } catch {
      throw new Error(`Gatehouse answered HTTP ${response.status} without a GraphQL result`);
    }
    if (!response.ok && !answer.errors?.length) throw new Error(`Gatehouse answered HTTP ${response.status}`);
    return answer;
  }

  function endSession(reason: LogoutReason): void {
    epoch += 1;
    storage.clear();
    options.onLogout?.(reason);
  }

  async function sendRefresh(current: StoredTokens | null): Promise<void> {
    const refreshToken = current?.refreshToken ?? null;
    if (transport === 'body' && !refreshToken) {
      if (current) endSession('refresh_failed');
      throw new SessionEndedError(null);
    }
    // Under cookie transport no argument: the server reads the httpOnly cookie the browser sends along.
    const variables: RefreshMutationVariables = transport === 'body' ? { refreshToken } : {};
    const startedIn = epoch;
    const answer = await post<RefreshMutation>('Refresh', RefreshDocument, variables, null);
    if (epoch !== startedIn) throw new SessionEndedError(null, 'Signed in or out while refreshing; this session is no longer in use.');
    const result = answer.data?.refresh;
    if (result?.__typename === 'AuthPayload') {
      storage.save({ accessToken: result.accessToken, refreshToken: result.refreshToken ?? null });
      return;
    }
    if (result?.__typename === 'InvalidRefreshTokenError') {
      // Refused for good (revoked, expired, reused): retrying cannot help, the user signs in again.
      if (current) endSession('refresh_failed');
      throw new SessionEndedError(result.code, result.message);
    }
    // RATE_LIMITED, a server error, ...: the session may well be fine, so the tokens stay.
    throw new Error(`refresh failed: ${answer.errors?.[0]?.message ?? 'no result'}`);
  }

  const session: GatehouseSession = {
    url: options.url,
    transport,
    fetch: fetchFn,
    credentials,
    accessToken: () => storage.load()?.accessToken ?? null,
    signIn(tokens) {
      epoch += 1;
      storage.save({ accessToken: tokens.accessToken, refreshToken: transport === 'body' ? (tokens.refreshToken ?? null) : null });
    },
    refresh(staleAccessToken) {
      if (inFlight) return inFlight;
      const current = storage.load();
      if (staleAccessToken !== undefined && staleAccessToken !== null) {
        // The request was refused with a token that is no longer ours: refreshed meanwhile (just retry), or
        // signed out meanwhile.
        if (current === null) return Promise.reject(new SessionEndedError(null));
        if (current.accessToken !== staleAccessToken) return Promise.resolve();
      }
      inFlight = sendRefresh(current).finally(() => {
        inFlight = null;
      });
      return inFlight;
    },
    async logout({ allSessions = false } = {}) {
      const tokens = storage.load();
      // The refresh token (body) or the cookie (cookie transport) names the session, so logout needs no valid
      // access token: it works after the access token expired, without a refresh. The access token goes along
      // for a session signed in without a refresh token; the server uses it only when there is none.
      const variables: LogoutMutationVariables =
        transport === 'body' && tokens?.refreshToken ? { allSessions, refreshToken: tokens.refreshToken } : { allSessions };
      try {
        await post<LogoutMutation>('Logout', LogoutDocument, variables, tokens?.accessToken ?? null);
      } catch {
        // Signed out locally whatever the server said: the user asked to leave.
      } finally {
        if (tokens !== null) endSession('logout');
      }
    },
  };
  return session;
}
