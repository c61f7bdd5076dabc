// A browser's cookie handling, as much of it as a Node client of one server needs: a fetch that keeps the
// cookies the server sets (Set-Cookie with Path, Max-Age, Expires) and sends them back on requests whose
// path they cover. Host-only, one origin: no Domain, public-suffix or SameSite rules, which would need a
// real jar (tough-cookie); the browser test in test/cookies/ covers what a real browser does.

interface StoredCookie {
  readonly value: string;
  readonly path: string;
  /** Epoch ms; undefined for a session cookie. */
  readonly expires: number | undefined;
  readonly httpOnly: boolean;
}

export interface CookieJar {
  readonly fetch: typeof fetch;
  /** The value the jar would send to this URL, or undefined. */
  get(name: string, url: string): string | undefined;
  /** Everything stored, for assertions (name -> cookie). */
  readonly cookies: ReadonlyMap<string, StoredCookie>;
}

export function cookieJar(base: typeof fetch = fetch): CookieJar {
  const cookies = new Map<string, StoredCookie>();

  const live = (cookie: StoredCookie) => cookie.expires === undefined || cookie.expires > Date.now();
  // RFC 6265 5.1.4 path-match: the same path, or a prefix ending at a "/".
  const pathMatches = (cookiePath: string, requestPath: string) =>
    requestPath === cookiePath || (requestPath.startsWith(cookiePath) && (cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/'));

  function store(line: string): void {
    const [pair = '', ...attributeParts] = line.split(';').map((part) => part.trim());
    const equals = pair.indexOf('=');
    if (equals <= 0) return;
    const name = pair.slice(0, equals);
    let path = '/';
    let expires: number | undefined;
    let httpOnly = false;
    for (const attribute of attributeParts) {
      const [key = '', ...rest] = attribute.split('=');
      const value = rest.join('=');
      switch (key.toLowerCase()) {
        case 'path':
          path = value || '/';
          break;
        case 'max-age':
          expires = Date.now() + Number(value) * 1000;
          break;
        case 'expires':
          expires ??= Date.parse(value);
          break;
        case 'httponly':
          httpOnly = true;
          break;
      }
    }
    const cookie = { value: pair.slice(equals + 1), path, expires, httpOnly };
    if (live(cookie)) cookies.set(name, cookie);
    else cookies.delete(name);
  }

  function header(url: string): string | undefined {
    const { pathname } = new URL(url);
    const pairs = [...cookies].filter(([, cookie]) => live(cookie) && pathMatches(cookie.path, pathname)).map(([name, cookie]) => `${name}=${cookie.value}`);
    return pairs.length ? pairs.join('; ') : undefined;
  }

  const jarFetch: typeof fetch = async (input, init = {}) => {
    const url = input instanceof Request ? input.url : String(input);
    const headers = new Headers(init.headers);
    // A browser sends cookies only with credentials 'include' (or 'same-origin' to its own origin); the kit
    // must ask for them, so the jar insists on it too.
    const cookie = init.credentials === 'include' ? header(url) : undefined;
    if (cookie) headers.set('cookie', cookie);
    const response = await base(input, { ...init, headers });
    if (init.credentials === 'include') for (const line of response.headers.getSetCookie()) store(line);
    return response;
  };

  return {
    fetch: jarFetch,
    get: (name, url) =>
      header(url)
        ?.split('; ')
        .find((pair) => pair.startsWith(`${name}=`))
        ?.slice(name.length + 1),
    cookies,
  };
}
