import { createGraphQLError, type Plugin } from 'graphql-yoga';

/** The cookie's name is part of the contract with browser apps (README, Browser apps: cookie sessions). */
export const REFRESH_COOKIE = 'gatehouse_refresh';

// Hosts on which the cookie goes without Secure: browsers serve them over plain http in development. Any
// other host gets Secure, so a deployment reached over http by mistake drops the cookie instead of
// sending a refresh token in clear.
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

// Refresh tokens are at most 128 characters (auth/sessions.ts); a longer value is not ours.
const MAX_COOKIE_VALUE_LENGTH = 128;

export interface RefreshCookieSettings {
  readonly transport: 'body' | 'cookie' | 'both';
  readonly sameSite: 'Strict' | 'Lax';
  /** The GraphQL endpoint's path: the only requests the browser attaches the cookie to. */
  readonly path: string;
  /** CORS_ORIGINS; only exact origins count here ("*" never grants the cookie). */
  readonly corsOrigins: readonly string[];
  /** With TRUST_PROXY, the scheme of the API's own origin comes from X-Forwarded-Proto. */
  readonly trustProxy: boolean;
}

/** The refresh cookie of one request, as the GraphQL layer uses it (refresh, logout, sign-ins). */
export interface RefreshCookie {
  /** Whether answers carry the refresh token (transport body or both). */
  readonly inBody: boolean;
  /**
   * The refresh token the request's cookie carries, or null: with transport body (the cookie is ignored),
   * without the cookie, or with more than one cookie of that name (one may have been planted by a sibling
   * subdomain; neither is trusted).
   */
  read(): string | null;
  /** Sets the cookie on the answer (transport cookie or both); the last call of a request wins. */
  issue(refreshToken: string, maxAgeSeconds: number): void;
  /** Removes the cookie from the browser (Max-Age=0), with transport cookie or both. */
  clear(): void;
}

export interface RefreshCookies {
  /** Answers requests and writes the Set-Cookie headers; with transport body it does nothing. */
  readonly plugin: Plugin;
  forRequest(request: Request): RefreshCookie;
}

/**
 * The cookie mechanics of the refresh-token transport (REFRESH_TOKEN_TRANSPORT). Resolvers decide what
 * goes into the cookie; this writes the header, reads it back, and refuses cookie requests from foreign
 * origins. The cookie is never authentication for anything else: access tokens stay in Authorization.
 */
export function createRefreshCookies(settings: RefreshCookieSettings): RefreshCookies {
  const enabled = settings.transport !== 'body';
  const inBody = settings.transport !== 'cookie';
  const listed = new Set(settings.corsOrigins.filter((origin) => origin !== '*'));
  // The Set-Cookie value each request's resolvers asked for, written when its answer goes out.
  const pending = new WeakMap<Request, string>();

  const attributes = (request: Request, maxAgeSeconds: number) => {
    const host = new URL(request.url).hostname;
    const secure = LOCAL_HOSTS.has(host) ? '' : '; Secure';
    return `Path=${settings.path}; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=${settings.sameSite}${secure}`;
  };

  /** The API's own origin as the browser sees it: the request's host, and its scheme (the proxy's with TRUST_PROXY). */
  const ownOrigin = (request: Request) => {
    const url = new URL(request.url);
    const forwarded = settings.trustProxy ? request.headers.get('x-forwarded-proto')?.split(',').at(-1)?.trim().toLowerCase() : undefined;
    const scheme = forwarded === 'https' || forwarded === 'http' ? `${forwarded}:` : url.protocol;
    return `${scheme}//${url.host}`;
  };

  const plugin: Plugin = {
    onRequestParse({ request }) {
      // CSRF on the cookie path, beside Yoga's CSRF header rule (csrf-prevention.ts): SameSite keeps other
      // sites' requests from carrying the cookie, and this refuses what SameSite lets through, a sibling
      // subdomain (same site, other origin) or an older browser. Only when the browser tells the origin:
      // non-browser clients send none, and a page cannot remove it from a request with a body.
      if (!enabled || cookieValues(request).length === 0) return;
      const origin = request.headers.get('origin');
      if (origin === null || listed.has(origin) || origin === ownOrigin(request)) return;
      throw createGraphQLError('This origin may not use the refresh cookie; list it in CORS_ORIGINS.', {
        extensions: { code: 'ORIGIN_NOT_ALLOWED', http: { status: 403 } },
      });
    },
    onResponse({ request, response }) {
      const cookie = pending.get(request);
      if (cookie === undefined) return;
      response.headers.append('set-cookie', cookie);
      // An answer that sets a refresh token must never be stored by a cache on the way.
      response.headers.set('cache-control', 'no-store');
    },
  };

  return {
    plugin: enabled ? plugin : {},
    forRequest(request) {
      return {
        inBody,
        read() {
          if (!enabled) return null;
          const values = cookieValues(request);
          return values.length === 1 ? (values[0] as string) : null;
        },
        issue(refreshToken, maxAgeSeconds) {
          if (enabled) pending.set(request, `${REFRESH_COOKIE}=${refreshToken}; ${attributes(request, maxAgeSeconds)}`);
        },
        clear() {
          if (enabled) pending.set(request, `${REFRESH_COOKIE}=; ${attributes(request, 0)}`);
        },
      };
    },
  };
}

/** Every value of the refresh cookie in the request's Cookie header (usually none or one). */
function cookieValues(request: Request): string[] {
  const header = request.headers.get('cookie');
  if (!header?.includes(REFRESH_COOKIE)) return [];
  const values: string[] = [];
  for (const pair of header.split(';')) {
    const separator = pair.indexOf('=');
    if (separator < 0 || pair.slice(0, separator).trim() !== REFRESH_COOKIE) continue;
    const value = pair.slice(separator + 1).trim();
    // An empty value is a cleared cookie some client still sends. An overlong one is kept (it counts as a
    // cookie for the checks) but cut: it is not a token of ours, and refresh bounds its input anyway.
    if (value !== '') values.push(value.slice(0, MAX_COOKIE_VALUE_LENGTH + 1));
  }
  return values;
}
