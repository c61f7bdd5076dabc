import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from '@apollo/client';
import { defer, from, mergeMap, type Observable, of } from 'rxjs';
import possibleTypesResult from './generated/possible-types.js';
import { type GatehouseSession, isUnauthenticated } from './session.js';

// Apollo Client 4 against Gatehouse: a link that adds the access token, refreshes once on UNAUTHENTICATED
// (one refresh shared by every request refused meanwhile, see session.ts) and retries each refused request
// once; and a cache that knows the schema's unions and interfaces.

/**
 * The cache for Gatehouse. Without possibleTypes, InMemoryCache cannot tell that InvalidCredentialsError
 * implements Error and silently drops what `... on Error { code message }` selected, while the generated
 * types still promise it.
 */
export function gatehouseCache(): InMemoryCache {
  return new InMemoryCache({ possibleTypes: possibleTypesResult.possibleTypes });
}

/** The link chain: the auth link, then an HttpLink that POSTs to the session's URL (with the cookie under cookie transport). */
export function gatehouseLink(session: GatehouseSession): ApolloLink {
  return ApolloLink.from([authLink(session), new HttpLink({ uri: session.url, fetch: session.fetch, credentials: session.credentials })]);
}

/** An ApolloClient with the link and the cache above. */
export function createGatehouseApolloClient(session: GatehouseSession): ApolloClient {
  return new ApolloClient({ link: gatehouseLink(session), cache: gatehouseCache() });
}

function authLink(session: GatehouseSession): ApolloLink {
  return new ApolloLink((operation, forward) => {
    const attempt = (retried: boolean): Observable<ApolloLink.Result> =>
      // defer: the token is read when the request goes out (a retry picks up the refreshed one).
      defer(() => {
        const token = session.accessToken();
        operation.setContext(({ headers }) => ({ headers: withAuthorization(headers, token) }));
        return forward(operation).pipe(
          mergeMap((result) => {
            // Only a request that carried a token can be helped by a refresh, and only once: a retry that is
            // refused again goes to the caller as it is.
            if (retried || token === null || !('errors' in result) || !isUnauthenticated(result.errors)) return of(result);
            // A refused refresh rejects with SessionEndedError (after signing out): the request fails with it.
            return from(session.refresh(token)).pipe(mergeMap(() => attempt(true)));
          }),
        );
      });
    return attempt(false);
  });
}

function withAuthorization(headers: Record<string, string> | undefined, token: string | null): Record<string, string> {
  const { authorization: _dropped, Authorization: _alsoDropped, ...rest } = headers ?? {};
  return token ? { ...rest, authorization: `Bearer ${token}` } : rest;
}
