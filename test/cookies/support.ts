import { expect } from 'vitest';
import type { TestApp } from '../support/app.js';

// Requests as a browser app sends them to an in-process app (yoga.fetch), with the Cookie, Origin and
// Host the test chooses, and the Set-Cookie headers of the answer parsed.

export const COOKIE = 'gatehouse_refresh';

export interface SentCookie {
  readonly value: string;
  /** Attribute names in lower case (httponly, secure, ...) mapped to their values ('' for flags). */
  readonly attributes: Readonly<Record<string, string>>;
}

export interface Answer<T = any> {
  readonly status: number;
  readonly data?: T;
  readonly errors?: { message: string; extensions?: Record<string, unknown> }[];
  readonly headers: Headers;
  /** The refresh cookie the answer set, if any (more than one fails the test). */
  readonly cookie: SentCookie | undefined;
}

export interface Sent {
  readonly cookie?: string;
  readonly origin?: string;
  readonly authorization?: string;
  /** The URL's origin; the API sees its host (http://gatehouse.test by default). */
  readonly base?: string;
  readonly headers?: Record<string, string>;
}

export async function send<T = any>(app: TestApp, query: string, variables: Record<string, unknown> = {}, sent: Sent = {}): Promise<Answer<T>> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...sent.headers };
  if (sent.cookie !== undefined) headers.cookie = `${COOKIE}=${sent.cookie}`;
  if (sent.origin !== undefined) headers.origin = sent.origin;
  if (sent.authorization !== undefined) headers.authorization = `Bearer ${sent.authorization}`;
  const response = await app.yoga.fetch(`${sent.base ?? 'http://gatehouse.test'}/graphql`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: Answer['errors'] };
  return { status: response.status, ...body, headers: response.headers, cookie: refreshCookieOf(response.headers) };
}

export function refreshCookieOf(headers: Headers): SentCookie | undefined {
  const cookies = headers.getSetCookie().filter((line) => line.startsWith(`${COOKIE}=`));
  expect(cookies.length, `Set-Cookie: ${cookies.join(' | ')}`).toBeLessThanOrEqual(1);
  if (cookies.length === 0) return undefined;
  const [pair, ...attributes] = cookies[0]!.split(';').map((part) => part.trim());
  return {
    value: pair!.slice(COOKIE.length + 1),
    attributes: Object.fromEntries(
      attributes.map((attribute) => {
        const [name, ...value] = attribute.split('=');
        return [name!.toLowerCase(), value.join('=')];
      }),
    ),
  };
}

export const SIGN_IN_FIELDS = `__typename ... on AuthPayload { accessToken refreshToken user { id } } ... on Error { code message }`;
export const REGISTER = `mutation ($input: RegisterInput!) { register(input: $input) { ${SIGN_IN_FIELDS} } }`;
export const LOGIN = `mutation ($input: LoginInput!) { login(input: $input) { ${SIGN_IN_FIELDS} } }`;
export const REFRESH_BY_COOKIE = `mutation { refresh { ${SIGN_IN_FIELDS} } }`;
export const REFRESH_BY_ARGUMENT = `mutation ($token: String!) { refresh(refreshToken: $token) { ${SIGN_IN_FIELDS} } }`;
export const LOGOUT = `mutation ($all: Boolean! = false, $token: String) { logout(allSessions: $all, refreshToken: $token) }`;
export const ME = `query { me { id } }`;
