import { ApolloClient, InMemoryCache } from '@apollo/client';
import { describe, expect, it, vi } from 'vitest';
import { createGatehouseApolloClient, gatehouseLink } from '../../client/apollo.js';
import { LoginDocument, MeDocument, MySessionsDocument, RegisterDocument } from '../../client/generated/graphql.js';
import { createGatehouseSession, type GatehouseSession } from '../../client/session.js';
import { ManualClock, registerUser } from '../support/app.js';
import { clientScenarios, type KitDriver, type Outcome } from './scenarios.js';
import { listeningTestApp } from './support.js';

// Apollo Client 4 with the kit's link and cache, over HTTP against the real server. The server's clock is a
// ManualClock: moving it past the access token's lifetime expires the tokens the client holds mid-run.

const clock = new ManualClock();
const ACCESS_TOKEN_TTL_SECONDS = 60;
const server = await listeningTestApp({ ACCESS_TOKEN_TTL_SECONDS: String(ACCESS_TOKEN_TTL_SECONDS) }, { clock });
const refreshLimited = await listeningTestApp({ ACCESS_TOKEN_TTL_SECONDS: String(ACCESS_TOKEN_TTL_SECONDS), RATE_LIMIT_REFRESH: '1/1h' }, { clock });
const cookieServer = await listeningTestApp({ ACCESS_TOKEN_TTL_SECONDS: String(ACCESS_TOKEN_TTL_SECONDS), REFRESH_TOKEN_TRANSPORT: 'cookie' }, { clock });

/** The outcome of a query as the app sees it: Apollo 4 reports a link's error (e.g. SessionEndedError) as is. */
async function outcome<T>(run: () => Promise<{ data?: T | undefined; error?: unknown }>): Promise<Outcome<T>> {
  try {
    const { data, error } = await run();
    return error === undefined ? { data } : { data, error };
  } catch (error) {
    return { error };
  }
}

function apolloDriver(session: GatehouseSession): KitDriver {
  const client = createGatehouseApolloClient(session);
  // Each call its own request (no deduplication of identical queries in flight), as separate components would.
  const fresh = { fetchPolicy: 'network-only', context: { queryDeduplication: false } } as const;
  return {
    register: async (input) => (await client.mutate({ mutation: RegisterDocument, variables: { input } })).data!.register,
    login: async (input) => (await client.mutate({ mutation: LoginDocument, variables: { input } })).data!.login,
    me: () => outcome(() => client.query({ query: MeDocument, ...fresh })),
    mySessions: () => outcome(() => client.query({ query: MySessionsDocument, ...fresh })),
    identicalQueriesShareARequest: false,
  };
}

const common = { clock, accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS, driver: apolloDriver };
clientScenarios('Apollo Client with the kit, body transport', { ...common, server, transport: 'body', refreshLimited });
clientScenarios('Apollo Client with the kit, cookie transport', { ...common, server: cookieServer, transport: 'cookie' });

describe("Apollo's cache and the Error interface", () => {
  const wrongLogin = async (client: ApolloClient) => {
    const { username } = await registerUser(server.app);
    const { data } = await client.mutate({ mutation: LoginDocument, variables: { input: { username, password: 'not the password at all' } } });
    return data?.login;
  };

  it("keeps code and message of a failed login (the kit's cache knows the schema's possible types)", async () => {
    const client = createGatehouseApolloClient(createGatehouseSession({ url: server.url }));
    const login = await wrongLogin(client);
    expect(login).toMatchObject({ __typename: 'InvalidCredentialsError', code: 'INVALID_CREDENTIALS', message: expect.any(String) });
  });

  it('a default InMemoryCache drops them (why the kit configures possibleTypes)', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const client = new ApolloClient({ link: gatehouseLink(createGatehouseSession({ url: server.url })), cache: new InMemoryCache() });
    const login = await wrongLogin(client);
    expect(login?.__typename).toBe('InvalidCredentialsError');
    expect(login).not.toHaveProperty('code');
    expect(warn.mock.calls.flat().join('\n')).toContain('missing `possibleTypes` entry');
    warn.mockRestore();
  });
});
