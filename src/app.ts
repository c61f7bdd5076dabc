import { randomUUID } from 'node:crypto';
import { unwatchFile, watchFile } from 'node:fs';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { NoSchemaIntrospectionCustomRule } from 'graphql';
import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import type { Authenticator, Viewer } from './auth/authenticate.js';
import type { Clock } from './auth/clock.js';
import { AuthenticationError } from './auth/errors.js';
import { clientNetwork } from './auth/rate-limit.js';
import type { Config } from './config.js';
import type { Audit, ServerContext, Services, UserContext } from './context.js';
import { databaseWriteProbe } from './db/data-files.js';
import { graphiqlExample } from './graphiql-example.js';
import { useCors } from './http/cors.js';
import { useCsrfPrevention } from './http/csrf-prevention.js';
import { useErrorAnswers } from './http/error-answers.js';
import { createRefreshCookies } from './http/refresh-cookie.js';
import { useRequestBodyLimit } from './http/request-body-limit.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics, type Metrics, metricsAuthorized } from './metrics.js';
import { maskUnexpectedError, throwAsGraphQL } from './schema/error-translation.js';
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
  /** Where logs go; by default JSON lines on stdout at the configured level. */
  readonly logger?: Logger;
}

/** Also the refresh cookie's Path: the browser sends it nowhere else. */
const GRAPHQL_ENDPOINT = '/graphql';

/** Builds the whole application against an already migrated database. Listening is main.ts's job. */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const metrics = createMetrics(logger);
  const { services, keysCreated, warnings } = await createServices(config, options.clock, {
    logger,
    observers: { passwordHashes: metrics.passwordHashes, mailDelivery: metrics.mailDelivery },
  });
  if (services.mailSender) metrics.observeOutboxDepth(() => db.mailOutbox.countWaiting());
  const { db, accessTokens } = services;
  for (const warning of warnings) logger.warn({ event: 'startup_warning' }, warning);
  const limits = config.graphql;
  const metricsAccess = limits.metrics;
  const databaseIsWritable = databaseWriteProbe(db, config.databaseUrl);
  const refreshCookies = createRefreshCookies({
    transport: config.sessions.refreshTokenTransport,
    sameSite: config.sessions.refreshCookieSameSite,
    path: GRAPHQL_ENDPOINT,
    corsOrigins: limits.corsOrigins,
    trustProxy: config.http.trustProxy,
  });
  // Announced on every transition, so an operator sees when (and why) this instance reads the database
  // on every request instead of trusting its caches, and when that ends.
  db.changes.observe({
    stateChanged: (state, detail) =>
      state === 'live'
        ? logger.info({ component: 'change_feed', state, detail }, 'change feed live: caches in use')
        : logger.warn({ component: 'change_feed', state, detail }, 'change feed degraded: every request reads the database until it is back'),
    announceFailed: (transport, error) =>
      logger.error({ component: 'change_feed', transport, err: error }, 'could not announce a committed change; other instances may hold it in cache'),
  });
  db.changes.listen();
  // Pending mail of an earlier run (or of another instance that stopped) goes out from here too.
  services.mailSender?.start();

  const yoga = createYoga<ServerContext, UserContext>({
    schema,
    graphqlEndpoint: GRAPHQL_ENDPOINT,
    // Liveness only; /health is the readiness check below, which also asks the database.
    healthCheckEndpoint: '/live',
    graphiql: limits.graphiql ? { title: 'Gatehouse', defaultQuery: graphiqlExample, shouldPersistHeaders: false } : false,
    landingPage: false,
    // Replaced by useRequestBodyLimit below (same 413, without a stream per request).
    maxRequestBodySize: false,
    // One operation per request: a batch would multiply every per-request limit.
    batching: false,
    // Yoga's CORS echoes any origin with credentials for "*" and answers "null" to unlisted ones; ours is
    // in the plugins below (http/cors.ts).
    cors: false,
    // Masking stays on in every mode. Yoga's isDev (internal message and stack in extensions.originalError)
    // would follow process.env.NODE_ENV; only the explicit GRAPHQL_DEBUG_ERRORS turns it on.
    maskedErrors: { isDev: limits.debugErrors, maskError: maskUnexpectedError },
    logging: {
      debug: (...args) => logger.debug(args.map(String).join(' ')),
      info: (...args) => logger.info(args.map(String).join(' ')),
      warn: (...args) => logger.warn(args.map(String).join(' ')),
      error: (...args) => logger.error({ err: args.find((arg) => arg instanceof Error) }, 'unexpected error'),
    },
    context: ({ request, req }) => {
      const requestId = randomUUID();
      const ip = clientIp(config.http.trustProxy, request, req?.socket.remoteAddress);
      // The one place an address becomes what limits count (an IPv6 client per prefix); logs keep `ip`.
      const network = ip === null ? null : clientNetwork(ip, config.rateLimits.ipv6Prefix);
      let viewer: Promise<Viewer | null> | undefined;
      let resolved: Viewer | null = null;
      const audit: Audit = (event, outcome, userId, level = outcome === 'success' ? 'info' : 'warn') => {
        logger[level]({ event, outcome, requestId, userId, ip }, `${event}: ${outcome}`);
        metrics.authEvent(event, outcome);
      };
      return {
        services,
        requestId,
        clientIp: ip,
        clientNetwork: network,
        userAgent: request.headers.get('user-agent'),
        viewer: () => (viewer ??= authenticate(services.authenticator, request.headers.get('authorization'), audit).then((found) => (resolved = found))),
        authenticatedViewer: () => resolved,
        refreshCookie: refreshCookies.forRequest(request),
        audit,
      };
    },
    plugins: [
      // Readiness: 503 unless the database answers AND can still take writes (data-files.ts).
      useGetEndpoint('/health', async ({ Response }) => {
        // 200 while the database takes writes, even with the change feed degraded: the instance then
        // still answers correctly, only slower (every request reads the database).
        // Likewise with Redis down: limits are then counted per instance (README, Rate limits).
        const writable = await databaseIsWritable();
        const changeFeed = db.changes.state;
        const limits = !services.limits.shared ? 'per-instance' : services.limits.sharedStoreAvailable() ? 'shared' : 'degraded';
        const status = !writable ? 'unavailable' : changeFeed === 'live' && limits !== 'degraded' ? 'ok' : 'degraded';
        return Response.json({ status, database: writable ? 'writable' : 'unavailable', changeFeed, limits }, { status: writable ? 200 : 503 });
      }),
      // Off (404) in production unless METRICS_TOKEN protects it (config.ts).
      ...(metricsAccess === 'off' ? [] : [useGetEndpoint('/metrics', (fetchAPI, request) => metricsAnswer(metrics, metricsAccess, fetchAPI, request))]),
      useGetEndpoint('/.well-known/jwks.json', ({ Response }) => Response.json(accessTokens.jwks(), { headers: { 'cache-control': 'public, max-age=300' } })),
      useCors(limits.corsOrigins),
      useCsrfPrevention(),
      // After CSRF prevention: refuses requests carrying the refresh cookie from a foreign Origin.
      refreshCookies.plugin,
      EnvelopArmorPlugin({
        maxDepth: { n: limits.maxDepth },
        maxAliases: { n: limits.maxAliases },
        maxDirectives: { n: limits.maxDirectives },
        maxTokens: { n: limits.maxTokens },
        costLimit: { maxCost: limits.maxCost },
        // Replaced by useErrorAnswers, which also covers arguments, types, enum values and variables.
        blockFieldSuggestion: { enabled: false },
      }),
      ...(limits.introspection ? [] : [useIntrospectionDisabled()]),
      metrics.graphqlPlugin(schema),
      useErrorAnswers({ hideSuggestions: !limits.introspection, hideInternals: !limits.debugErrors }),
      // Refused with HTTP 413 before any parsing. Last, like Yoga's own limit: it wraps whichever request
      // parser the plugins before it chose.
      useRequestBodyLimit(limits.maxRequestBodyBytes),
    ],
  });

  // The admin CLI rotates keys by replacing the key file; a running server takes the new key up within
  // a second or two. Polling (not fs.watch) survives the file being replaced by a rename. rotate-keys
  // renames a complete, flushed file into place, so a read sees the old file or the new one whole; a file
  // that cannot be read or parsed (e.g. copied over in place, wrong owner) is logged as an error and the
  // keys in memory stay in use, so a bad file never takes the running server down. A token signed with a
  // key this process has not read yet (another instance was quicker) makes it read the file at once, at
  // most once a second (AccessTokenService, unknown kid).
  const reloadKeys = () => {
    accessTokens.reloadFromFile().then(
      () => logger.info({ event: 'keys_reloaded', kid: accessTokens.signingKeyId }, 'signing keys reloaded'),
      (error: unknown) => logger.error({ event: 'keys_reloaded', outcome: (error as Error).message }, 'could not reload the key file'),
    );
  };
  if (config.jwt.secret === undefined) watchFile(config.keysFile, { interval: 1000, persistent: false }, reloadKeys);

  return {
    yoga,
    services,
    keysCreated,
    close: async () => {
      unwatchFile(config.keysFile, reloadKeys);
      await services.mailSender?.stop();
      await services.limits.close();
      await db.close();
    },
  };
}

async function authenticate(authenticator: Authenticator, header: string | null, audit: Audit): Promise<Viewer | null> {
  try {
    const viewer = await authenticator.authenticate(header);
    // Every request with a good token: debug, or the log would be mostly this line.
    if (viewer) audit('authenticate', viewer.apiTokenId ? 'success:api_token' : 'success', viewer.userId, 'debug');
    return viewer;
  } catch (error) {
    if (error instanceof AuthenticationError) audit('authenticate', `UNAUTHENTICATED:${error.reason}`, null);
    throwAsGraphQL(error);
  }
}

/** Refuses introspection queries (production default): the schema is published as schema.graphql instead. */
function useIntrospectionDisabled(): Plugin {
  return {
    onValidate({ addValidationRule }) {
      addValidationRule(NoSchemaIntrospectionCustomRule);
    },
  };
}

/**
 * Answers GET (and HEAD, for probes) requests for one path: readiness, JWKS. Yoga's useReadinessCheck
 * tests a URLPattern on every request; checking the method first keeps the cost off every GraphQL POST.
 */
function useGetEndpoint(pathname: string, respond: (fetchAPI: { Response: typeof Response }, request: Request) => Response | Promise<Response>): Plugin {
  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      if ((request.method !== 'GET' && request.method !== 'HEAD') || url.pathname !== pathname) return;
      return Promise.resolve(respond(fetchAPI, request)).then(endResponse);
    },
  };
}

/** The Prometheus text, or 401 when a token is configured and the request does not carry it. */
async function metricsAnswer(
  metrics: Metrics,
  access: 'open' | { readonly token: string },
  fetchAPI: { Response: typeof Response },
  request: Request,
): Promise<Response> {
  const { Response } = fetchAPI;
  if (access !== 'open' && !metricsAuthorized(access.token, request.headers.get('authorization'))) {
    return new Response('unauthorized\n', { status: 401, headers: { 'www-authenticate': 'Bearer', 'content-type': 'text/plain' } });
  }
  return new Response(await metrics.scrape(), { headers: { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' } });
}

/**
 * The peer address, or with TRUST_PROXY the address our proxy saw: the right-most X-Forwarded-For entry
 * is the one the trusted proxy appended; entries to its left were supplied by the client and are forgeable.
 */
function clientIp(trustProxy: boolean, request: Request, peer: string | undefined): string | null {
  if (trustProxy) {
    const forwarded = request.headers.get('x-forwarded-for');
    const last = forwarded
      ?.split(',')
      .map((part) => part.trim())
      .filter(Boolean)
      .at(-1);
    if (last) return last.slice(0, 64);
  }
  return peer ?? null;
}
