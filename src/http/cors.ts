import type { Plugin } from 'graphql-yoga';

const MAX_REQUESTED_HEADERS_LENGTH = 1024;

/**
 * CORS in place of Yoga's, whose answers cannot be made safe by options alone: with origin "*" it echoes
 * whatever Origin came, credentials included, and with a list it answers `Access-Control-Allow-Origin:
 * null` plus credentials to an origin not on it — which a sandboxed iframe or a file: page, whose
 * Origin is "null", is then granted.
 *
 * - A listed origin (exact match) is granted, with credentials.
 * - "*" in the list: every other origin gets the literal `*`, never with credentials. (Gatehouse takes
 *   its tokens from the Authorization header, which no page can attach for a visitor, so `*` exposes no
 *   one's account; credentials would also send cookies and HTTP auth.)
 * - Anything else, and always `Origin: null`: no CORS headers at all, so the browser keeps the answer
 *   from the page. Preflights are still answered 204, without grants.
 */
export function useCors(origins: readonly string[]): Plugin {
  const listed = new Set(origins.filter((origin) => origin !== '*'));
  const anyOrigin = origins.includes('*');
  return {
    onRequest({ request, fetchAPI, endResponse }) {
      // Yoga's own CORS plugin (disabled) answered preflights; an OPTIONS request never reaches GraphQL.
      if (request.method === 'OPTIONS') endResponse(new fetchAPI.Response(null, { status: 204, headers: { 'content-length': '0' } }));
    },
    onResponse({ request, response }) {
      if (origins.length > 0) response.headers.append('vary', 'Origin');
      const origin = request.headers.get('origin');
      if (origin === null || origin === 'null') return;
      let grant: { origin: string; credentials: boolean };
      if (listed.has(origin)) grant = { origin, credentials: true };
      else if (anyOrigin) grant = { origin: '*', credentials: false };
      else return;

      response.headers.set('access-control-allow-origin', grant.origin);
      if (grant.credentials) response.headers.set('access-control-allow-credentials', 'true');
      if (request.method !== 'OPTIONS') return;
      response.headers.set('access-control-allow-methods', 'GET, POST');
      // Whatever headers the page asks for (authorization, content-type, the CSRF header, a client's
      // tracing header): the grant is about the origin, not the header names.
      const requested = request.headers.get('access-control-request-headers');
      if (requested && requested.length <= MAX_REQUESTED_HEADERS_LENGTH) {
        response.headers.set('access-control-allow-headers', requested);
        response.headers.append('vary', 'Access-Control-Request-Headers');
      }
      response.headers.set('access-control-max-age', '600');
    },
  };
}
