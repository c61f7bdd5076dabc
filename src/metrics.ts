import { createHash, timingSafeEqual } from 'node:crypto';
import { type DocumentNode, type GraphQLSchema, getOperationAST, Kind } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { PasswordHashObserver } from './auth/passwords.js';
import type { StoreObserver } from './db/observer.js';
import type { Logger } from './logger.js';
import type { MailDeliveryObserver } from './mail/outbox-sender.js';

/**
 * The Prometheus metrics of one app. Each app owns its registry (never prom-client's global one): tests
 * build many apps in one process, and two apps must not count into the same series.
 */
export interface Metrics {
  readonly registry: Registry;
  /** The text a scrape answers (content type: `registry.contentType`). */
  scrape(): Promise<string>;
  /** Given to PasswordHasher (src/auth knows this interface only, not prom-client). */
  readonly passwordHashes: PasswordHashObserver;
  /** Given to the database: cache lookups and refresh-rotation batch sizes. */
  readonly stores: StoreObserver;
  /** Given to the outbox sender. */
  readonly mailDelivery: MailDeliveryObserver;
  /** One audited auth event (the context's `audit`). */
  authEvent(event: string, outcome: string): void;
  /** Mail waiting in the outbox, read from the database at scrape time (only with email enabled). */
  observeOutboxDepth(countWaiting: () => Promise<number>): void;
  /** Requests and latency per root field of the schema. */
  graphqlPlugin(schema: GraphQLSchema): Plugin;
}

// Label values must stay few: every distinct value is a time series kept for good. Operation names
// come from clients, so they are never used; events and outcomes are fixed codes, but anything that does
// not look like one, or arrives after the cap, is counted as 'other' so a bug cannot grow the series.
const OTHER = 'other';
const CODE_SHAPE = /^[A-Za-z][A-Za-z0-9_:]{0,63}$/;
const MAX_DISTINCT_EVENTS = 64;
const MAX_DISTINCT_OUTCOMES = 128;

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HASH_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
// A group commit carries at most 500 claims (session-rotation.ts).
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 500];

export function createMetrics(logger: Logger): Metrics {
  const registry = new Registry();
  // Node's process metrics start with the first scrape, not with the app: they run an event-loop delay
  // monitor (a timer) per registry that nothing stops, and an app nobody scrapes (the admin CLI, each of
  // the many apps a test run builds) should not carry one.
  let processMetrics = false;
  const scrape = () => {
    if (!processMetrics) collectDefaultMetrics({ register: registry, prefix: 'gatehouse_' });
    processMetrics = true;
    return registry.metrics();
  };

  const requests = new Counter({
    name: 'gatehouse_graphql_requests_total',
    help: 'GraphQL operations by root field (or "other") and outcome (success, error: errors in the answer, invalid: refused before execution).',
    labelNames: ['operation', 'outcome'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'gatehouse_graphql_request_duration_seconds',
    help: 'Execution time of GraphQL operations by root field (or "other").',
    labelNames: ['operation'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const authEvents = new Counter({
    name: 'gatehouse_auth_events_total',
    help: 'Audited auth events (login, refresh, logout, revocations, authenticate…) by event and outcome code.',
    labelNames: ['event', 'outcome'] as const,
    registers: [registry],
  });
  const hashTime = new Histogram({
    name: 'gatehouse_password_hash_duration_seconds',
    help: 'argon2id time per hash or verification (excluding the wait for a free hashing slot).',
    labelNames: ['operation'] as const,
    buckets: HASH_BUCKETS,
    registers: [registry],
  });
  const mails = new Counter({
    name: 'gatehouse_mail_deliveries_total',
    help: 'Outbox deliveries by outcome (sent, retry, failed, dropped).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });

  const cacheLookups = new Counter({
    name: 'gatehouse_cache_lookups_total',
    help: 'Reads of the in-memory copies of users, sessions and API tokens: hit, miss (read from the database), bypass (change feed not live).',
    labelNames: ['cache', 'outcome'] as const,
    registers: [registry],
  });
  const rotationBatches = new Histogram({
    name: 'gatehouse_refresh_rotation_batch_size',
    help: 'Refresh-token rotations written by one group commit (one statement, one commit).',
    buckets: BATCH_BUCKETS,
    registers: [registry],
  });

  const events = new BoundedLabel(MAX_DISTINCT_EVENTS);
  const outcomes = new BoundedLabel(MAX_DISTINCT_OUTCOMES);

  return {
    registry,
    scrape,
    passwordHashes: { observeHash: (operation, ms) => hashTime.observe({ operation }, ms / 1000) },
    stores: {
      cacheLookup: (cache, outcome) => cacheLookups.inc({ cache, outcome }),
      rotationBatch: (claims) => rotationBatches.observe(claims),
    },
    mailDelivery: { mailOutcome: (outcome) => mails.inc({ outcome }) },
    authEvent: (event, outcome) => authEvents.inc({ event: events.of(event), outcome: outcomes.of(outcome) }),
    observeOutboxDepth: (countWaiting) => {
      new Gauge({
        name: 'gatehouse_mail_outbox_waiting',
        help: 'Mails waiting in the outbox (requested or pending), read at scrape time.',
        registers: [registry],
        async collect() {
          try {
            this.set(await countWaiting());
          } catch (error) {
            // The scrape still answers with everything else; the gauge keeps its last value.
            logger.warn({ component: 'metrics', err: error }, 'could not count the mail outbox');
          }
        },
      });
    },
    graphqlPlugin: (schema) => graphqlMetricsPlugin(schema, requests, latency),
  };
}

/** Label values as given while they look like codes and are fewer than the cap; 'other' after. */
class BoundedLabel {
  readonly #seen = new Set<string>();
  constructor(private readonly max: number) {}
  of(value: string): string {
    if (this.#seen.has(value)) return value;
    if (!CODE_SHAPE.test(value) || this.#seen.size >= this.max) return OTHER;
    this.#seen.add(value);
    return value;
  }
}

/**
 * The operation label is the root field the operation selects (`login`, `me`), taken from the schema's
 * Query and Mutation fields, never the client's operation name: a client choosing `query X123 {…}` must
 * not create a series. Several root fields, an unknown one, or no parseable operation: 'other'.
 */
function graphqlMetricsPlugin(schema: GraphQLSchema, requests: Counter<'operation' | 'outcome'>, latency: Histogram<'operation'>): Plugin {
  const rootFields = {
    query: new Set(Object.keys(schema.getQueryType()?.getFields() ?? {})),
    mutation: new Set(Object.keys(schema.getMutationType()?.getFields() ?? {})),
  };
  const operationOf = (document: DocumentNode, operationName: string | null | undefined): string => {
    const operation = getOperationAST(document, operationName);
    if (!operation || (operation.operation !== 'query' && operation.operation !== 'mutation')) return OTHER;
    const fields = operation.selectionSet.selections.filter((selection) => selection.kind === Kind.FIELD && selection.name.value !== '__typename');
    if (fields.length !== 1 || fields[0]?.kind !== Kind.FIELD) return OTHER;
    const name = fields[0].name.value;
    return rootFields[operation.operation].has(name) ? name : OTHER;
  };
  return {
    onParse() {
      return ({ result }) => {
        if (result instanceof Error) requests.inc({ operation: OTHER, outcome: 'invalid' });
      };
    },
    onValidate({ params }) {
      return ({ valid }) => {
        if (!valid) requests.inc({ operation: operationOf(params.documentAST, undefined), outcome: 'invalid' });
      };
    },
    onExecute({ args }) {
      const operation = operationOf(args.document, args.operationName);
      const started = performance.now();
      return {
        onExecuteDone({ result }) {
          latency.observe({ operation }, (performance.now() - started) / 1000);
          const failed = 'errors' in result && (result.errors?.length ?? 0) > 0;
          requests.inc({ operation, outcome: failed ? 'error' : 'success' });
        },
      };
    },
  };
}

/**
 * Whether a request may read /metrics: with a token, only `Authorization: Bearer <token>`, compared in
 * constant time (both sides hashed first, so neither the length nor a prefix leaks through timing).
 */
export function metricsAuthorized(expectedToken: string, authorization: string | null): boolean {
  const presented = authorization?.startsWith('Bearer ') ? authorization.slice('Bearer '.length) : '';
  const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();
  return timingSafeEqual(digest(presented), digest(expectedToken)) && presented.length > 0;
}
