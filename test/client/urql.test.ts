import { Client, cacheExchange, fetchExchange } from '@urql/core';
import { describe, expect, it } from 'vitest';
import { MeDocument, MySessionsDocument, LoginDocument, RegisterDocument } from '../../client/generated/graphql.js';
import { createGatehouseSession, type GatehouseSession } from '../../client/session.js';
import { createGatehouseUrqlClient } from '../../client/urql.js';
import { ManualClock } from '../support/app.js';
import { clientScenarios, type KitDriver, type Outcome } from './scenarios.js';
import { listeningTestApp, recordingFetch } from './support.js';

// urql 6 with the kit's authExchange, over HTTP against the real server. The server's clock is a
// ManualClock: moving it past the access token's lifetime expires the tokens the client holds mid-run.

const clock = new ManualClock();
const ACCESS_TOKEN_TTL_SECONDS = 60;
const server = await listeningTestApp({ ACCESS_TOKEN_TTL_SECONDS: String(ACCESS_TOKEN_TTL_SECONDS) }, { clock });
const refreshLimited = await listeningTestApp({ ACCESS_TOKEN_TTL_SECONDS: String(ACCESS_TOKEN_TTL_SECONDS), RATE_LIMIT_REFRESH: '1/1h' }, { clock });
const cookieServer = await listeningTestApp({ ACCESS_TOKEN_TTL_SECONDS: String(ACCESS_TOKEN_TTL_SECONDS), REFRESH_TOKEN_TRANSPORT: 'cookie' }, { clock });

/** urql reports a failed refresh (SessionEndedError) as the operation's network error. */
function outcome<T>({ data, error }: { data?: T | undefined; error?: { networkError?: Error | undefined } | undefined }): Outcome<T> {
  return error === undefined ? { data } : { data, error: error.networkError ?? error };
}

function urqlDriver(session: GatehouseSession): KitDriver {
  const client = createGatehouseUrqlClient(session);
  const fresh = { requestPolicy: 'network-only' } as const;
  return {
    register: async (input) => (await client.mutation(RegisterDocument, { input }).toPromise()).data!.register,
    login: async (input) => (await client.mutation(LoginDocument, { input }).toPromise()).data!.login,
    me: async () => outcome(await client.query(MeDocument, {}, fresh).toPromise()),
    mySessions: async () => outcome(await client.query(MySessionsDocument, {}, fresh).toPromise()),
    identicalQueriesShareARequest: true,
  };
}

const common = { clock, accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS, driver: urqlDriver };
clientScenarios('urql with the kit, body transport', { ...common, server, transport: 'body', refreshLimited });
clientScenarios('urql with the kit, cookie transport', { ...common, server: cookieServer, transport: 'cookie' });

describe('urql and CSRF prevention', () => {
  it('sends queries as POST, which CSRF prevention lets through', async () => {
    const network = recordingFetch();
    const client = createGatehouseUrqlClient(createGatehouseSession({ url: server.url, fetch: network.fetch }));
    const { data, error } = await client.query(MeDocument, {}).toPromise();
    expect(error).toBeUndefined();
    expect(data?.me).toBeNull();
    expect(network.methods).toEqual(['POST']);
  });

  it("urql's default sends queries as GET, which the server refuses (why the kit sets preferGetMethod: false)", async () => {
    const network = recordingFetch();
    const client = new Client({ url: server.url, exchanges: [cacheExchange, fetchExchange], fetch: network.fetch });
    const { error } = await client.query(MeDocument, {}).toPromise();
    expect(network.methods).toEqual(['GET']);
    expect(error?.response?.status).toBe(403);
  });
});
