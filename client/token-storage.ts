// Where the kit keeps the tokens of the signed-in user. Both clients (apollo.ts, urql.ts) read the access
// token from here for every request and write both rotated tokens here after a refresh.
//
// The interface is synchronous on purpose: urql adds headers synchronously, and a request must never go out
// with a token older than the one a refresh just stored. An app with asynchronous storage (React Native's
// AsyncStorage, IndexedDB) loads it once at start-up into an object implementing this interface and writes
// it back from `save`.

/** The tokens of the session in use. */
export interface StoredTokens {
  readonly accessToken: string;
  /**
   * The refresh token under REFRESH_TOKEN_TRANSPORT=body; null under cookie transport, where the server keeps
   * it in an httpOnly cookie that JavaScript never sees.
   */
  readonly refreshToken: string | null;
}

export interface TokenStorage {
  /** The tokens stored last, or null when signed out. */
  load(): StoredTokens | null;
  /** Replaces both tokens (a refresh token is single use: the old one must not be kept). */
  save(tokens: StoredTokens): void;
  /** Forgets both tokens (logout, or a session that could not be refreshed). */
  clear(): void;
}

/**
 * Tokens in a variable: gone when the page reloads. The right place for the access token under cookie
 * transport (a reload gets a new one with `session.refresh()`); with body transport the app provides a
 * storage that survives reloads if it wants sessions to.
 */
export function memoryTokenStorage(initial: StoredTokens | null = null): TokenStorage {
  let tokens = initial;
  return {
    load: () => tokens,
    save: (next) => {
      tokens = next;
    },
    clear: () => {
      tokens = null;
    },
  };
}
