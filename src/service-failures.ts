import { ActorNotAuthorizedError } from './auth/admin-actor.js';
import {
  AuthenticationError,
  ExpectedFailure,
  FeatureDisabledError,
  ValidationError,
  type AuthenticationFailure,
  type ErrorCode,
  type FieldError,
} from './auth/errors.js';
import { RateLimitExceededError } from './auth/rate-limit.js';
import { databaseBusyIn } from './db/busy.js';

// The one table of what a service error (src/auth, src/db) means to a client, free of any presentation
// (and of GraphQL, so the admin CLI can load it cheaply). schema/error-translation.ts builds the GraphQL
// answers from it; cli/commands.ts prints from it. Anything it does not know is a fault, never shown.

export type ServiceFailure =
  | { readonly kind: 'expected'; readonly code: ErrorCode; readonly message: string; readonly fieldErrors: readonly FieldError[] }
  | { readonly kind: 'unauthenticated'; readonly reason: AuthenticationFailure; readonly message: string }
  | { readonly kind: 'forbidden'; readonly message: string }
  | { readonly kind: 'feature_disabled'; readonly message: string }
  | { readonly kind: 'rate_limited'; readonly message: string; readonly retryAfter: number }
  | { readonly kind: 'service_unavailable'; readonly message: string; readonly retryAfter: number; readonly detail: string };

/** What a service error means to a client, or undefined for a fault (which is masked). */
export function serviceFailureOf(error: unknown): ServiceFailure | undefined {
  if (error instanceof ExpectedFailure) {
    return { kind: 'expected', code: error.code, message: error.message, fieldErrors: error instanceof ValidationError ? error.fieldErrors : [] };
  }
  if (error instanceof AuthenticationError) return { kind: 'unauthenticated', reason: error.reason, message: error.message };
  if (error instanceof ActorNotAuthorizedError) return { kind: 'forbidden', message: error.message };
  if (error instanceof FeatureDisabledError) return { kind: 'feature_disabled', message: error.message };
  if (error instanceof RateLimitExceededError) {
    return { kind: 'rate_limited', message: `Too many requests; retry in ${error.retryAfterSeconds} s.`, retryAfter: error.retryAfterSeconds };
  }
  // A write that waited out another process's database lock (db/busy.ts) changed nothing and may be retried.
  // The busy error may sit a few causes deep (Prisma's and graphql-js's wrapping).
  for (let cause: unknown = error, depth = 0; cause && depth < 5; depth += 1) {
    const busy = databaseBusyIn(cause);
    if (busy) return { kind: 'service_unavailable', message: 'The database is busy; nothing was changed. Try again.', retryAfter: 1, detail: busy.message };
    cause = (cause as { originalError?: unknown; cause?: unknown }).originalError ?? (cause as { cause?: unknown }).cause;
  }
  return undefined;
}
