import { Client, type ClientOptions, cacheExchange, type Exchange, fetchExchange, makeOperation, type Operation } from '@urql/core';
import { authExchange } from '@urql/exchange-auth';
import { type GatehouseSession, isUnauthenticated } from './session.js';

// urql 6 against Gatehouse: an authExchange that adds the access token, refreshes on UNAUTHENTICATED through
// the session (one refresh shared by every request refused meanwhile, see session.ts) and lets the exchange
// retry each refused operation once.

/** The authExchange for Gatehouse; put it before fetchExchange. */
export function gatehouseAuthExchange(session: GatehouseSession): Exchange {
  return authExchange(async () => {
    // The token the operation that triggered the refresh was refused with. authExchange calls refreshAuth
    // right after a didAuthError that returned true, so this is that operation's token. An answer that
    // arrives after another refresh finished carries an older token: the session then refreshes nothing
    // and the operation is simply retried with the new token.
    let refusedToken: string | null = null;
    return {
      addAuthToOperation: (operation) => withAuthorization(operation, session.accessToken()),
      didAuthError(error, operation) {
        const sent = sentToken(operation);
        if (sent === null || !isUnauthenticated(error.graphQLErrors)) return false;
        refusedToken = sent;
        return true;
      },
      // Rejects with SessionEndedError after signing out when the refresh is refused: the waiting operations
      // end with it (in result.error.networkError) instead of being retried.
      refreshAuth: () => session.refresh(refusedToken),
    };
  });
}

/** A urql Client for Gatehouse: document cache, the auth exchange, fetch with POST (and the cookie under cookie transport). */
export function createGatehouseUrqlClient(session: GatehouseSession, options: Partial<ClientOptions> = {}): Client {
  return new Client({
    url: session.url,
    exchanges: [cacheExchange, gatehouseAuthExchange(session), fetchExchange],
    fetch: session.fetch,
    fetchOptions: { credentials: session.credentials },
    // urql's default ('within-url-limit') sends queries as GET, and Yoga's CSRF prevention refuses a GET
    // without its x-graphql-yoga-csrf header (403): POST every operation, as JSON.
    preferGetMethod: false,
    ...options,
  });
}

function fetchOptionsOf(operation: Operation): RequestInit {
  const options = operation.context.fetchOptions;
  return (typeof options === 'function' ? options() : options) ?? {};
}

function sentToken(operation: Operation): string | null {
  const value = new Headers(fetchOptionsOf(operation).headers).get('authorization');
  return value?.startsWith('Bearer ') ? value.slice('Bearer '.length) : null;
}

/** The operation with this token as its Authorization header, or with none (a retry must not keep an old one). */
function withAuthorization(operation: Operation, token: string | null): Operation {
  const fetchOptions = fetchOptionsOf(operation);
  // Headers normalises whatever form the app gave (record, pairs, Headers) and lower-cases the names.
  const headers = new Headers(fetchOptions.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  else headers.delete('authorization');
  return makeOperation(operation.kind, operation, { ...operation.context, fetchOptions: { ...fetchOptions, headers: Object.fromEntries(headers) } });
}
