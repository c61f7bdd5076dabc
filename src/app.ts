import { createYoga, useReadinessCheck, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import type { Authenticator, Viewer } from './auth/authenticate.js';
import type { Clock } from './auth/clock.js';
import { AuthenticationError } from './auth/errors.js';
import type { Config } from './config.js';
import type { ServerContext, Services, UserContext } from './context.js';
import { isDatabaseReachable } from './db/client.js';
import { graphiqlExample } from './graphiql-example.js';
import { unauthenticated } from './schema/graphql-errors.js';
import { schema } from './schema/index.js';
import { createServices } from './services.js';

export interface App {
  readonly yoga: YogaServerInstance<ServerContext, UserContext>;
  readonly services: Services;
  /** Whether this start created the signing keys (first start). */
  readonly keysCreated: boolean;
  close(): Promise<void>;
}

export interface AppOptions {
  /** Replaces the system clock, so tests can expire tokens and sessions. */
  readonly clock?: Clock;
}

/** Builds the whole application against an already migrated database. Listening is main.ts's job. */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const { services, keysCreated } = await createServices(config, options.clock);
  const { db, accessTokens } = services;

  const yoga = createYoga<ServerContext, UserContext>({
    schema,
    // Liveness only; /health is the readiness check below, which also asks the database.
    healthCheckEndpoint: '/live',
    graphiql: { title: 'Gatehouse', defaultQuery: graphiqlExample, shouldPersistHeaders: false },
    context: ({ request, req }) => {
      let viewer: Promise<Viewer | null> | undefined;
      return {
        services,
        clientIp: clientIp(config.http.trustProxy, request, req?.socket.remoteAddress),
        userAgent: request.headers.get('user-agent'),
        viewer: () => (viewer ??= authenticate(services.authenticator, request.headers.get('authorization'))),
      };
    },
    plugins: [
      useReadinessCheck({ endpoint: '/health', check: () => isDatabaseReachable(db) }),
      useJwks(() => accessTokens.jwks()),
    ],
  });

  return {
    yoga,
    services,
    keysCreated,
    close: () => db.$disconnect(),
  };
}

async function authenticate(authenticator: Authenticator, header: string | null): Promise<Viewer | null> {
  try {
    return await authenticator.authenticate(header);
  } catch (error) {
    if (error instanceof AuthenticationError) throw unauthenticated(error.reason, error.message);
    throw error;
  }
}

/** Serves the public verification keys at the well-known JWKS address. */
function useJwks(jwks: () => object): Plugin {
  return {
    onRequest({ url, request, endResponse, fetchAPI }) {
      if (url.pathname !== '/.well-known/jwks.json' || request.method !== 'GET') return;
      endResponse(
        fetchAPI.Response.json(jwks(), { headers: { 'cache-control': 'public, max-age=300' } }),
      );
    },
  };
}

/**
 * The peer address, or with TRUST_PROXY the address our proxy saw: the right-most X-Forwarded-For entry
 * is the one the trusted proxy appended; entries to its left were supplied by the client and are forgeable.
 */
function clientIp(trustProxy: boolean, request: Request, peer: string | undefined): string | null {
  if (trustProxy) {
    const forwarded = request.headers.get('x-forwarded-for');
    const last = forwarded?.split(',').map((part) => part.trim()).filter(Boolean).at(-1);
    if (last) return last.slice(0, 64);
  }
  return peer ?? null;
}
