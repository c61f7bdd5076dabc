import { errorTypeMap, wrapErrorIfMatches } from '@pothos/plugin-errors';
import { GraphQLError } from 'graphql';
import { maskError, type MaskError } from 'graphql-yoga';
import { ExpectedFailure, ValidationError } from '../auth/errors.js';
import { serviceFailureOf } from '../service-failures.js';

// The one place that turns service errors into GraphQL answers, from the table in service-failures.ts:
// - An ExpectedFailure is returned as data: a typed member of the field's result union (`failureUnion`).
// - Cross-cutting refusals are GraphQL errors with a stable extensions.code, not union members: any field
//   can raise them and clients handle them in one place (e.g. refresh, then retry, on UNAUTHENTICATED).
// Anything else is masked by Yoga ("Unexpected error.", details only in the log).

// ---- Cross-cutting refusals as GraphQL errors -------------------------------------------------------

export function unauthenticated(reason: string, message = 'Authentication required.'): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', reason } });
}

/** Arguments GraphQL's own types cannot bound (a page size, say): refused before any work. */
export function badUserInput(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT' } });
}

export function forbidden(message = 'You are not allowed to do this.'): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'FORBIDDEN' } });
}

function serviceUnavailable(failure: { message: string; retryAfter: number }): GraphQLError {
  return new GraphQLError(failure.message, { extensions: { code: 'SERVICE_UNAVAILABLE', retryAfter: failure.retryAfter } });
}

/**
 * The GraphQL error for a refusal a resolver raises (UNAUTHENTICATED, FORBIDDEN, RATE_LIMITED, FEATURE_DISABLED), or
 * undefined when the error is an expected failure or a fault. A busy database is not answered here but
 * where Yoga masks errors (maskUnexpectedError), so the audit log still records it as INTERNAL_ERROR.
 */
export function refusalFor(error: unknown): GraphQLError | undefined {
  const failure = serviceFailureOf(error);
  switch (failure?.kind) {
    case 'unauthenticated':
      return unauthenticated(failure.reason, failure.message);
    case 'forbidden':
      // The refusal's own wording, not the service's (they agree today).
      return forbidden();
    case 'feature_disabled':
      return new GraphQLError(failure.message, { extensions: { code: 'FEATURE_DISABLED' } });
    case 'rate_limited':
      return new GraphQLError(failure.message, { extensions: { code: 'RATE_LIMITED', retryAfter: failure.retryAfter } });
    default:
      return undefined;
  }
}

/** Rethrows a cross-cutting refusal as its GraphQL error, anything else as it came. */
export function throwAsGraphQL(error: unknown): never {
  throw refusalFor(error) ?? error;
}

/**
 * Runs a resolver's work and turns the refusals the auth layer can only make where a change commits into
 * the cross-cutting GraphQL errors: the caller's session or account ended meanwhile (UNAUTHENTICATED, as
 * their next request would be told), or an administrator lost the right to act (FORBIDDEN). Use it inside
 * `audited`, so the log records the code rather than an internal error.
 */
export async function withCommitTimeRefusals<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throwAsGraphQL(error);
  }
}

/**
 * For fields whose answer cannot carry a typed failure (the mail requests answer Boolean: always true,
 * whatever the address): a ValidationError (not an address at all, too long) is the caller's mistake, not
 * a fault, and says nothing about any account, so it is told as a GraphQL error with ValidationError's
 * code and field errors. Without this it would be masked as "Unexpected error." and logged as a fault.
 * Only for such fields: where a result union lists ValidationError, it must stay a union member.
 */
export async function withValidationRefusal<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof ValidationError) {
      throw new GraphQLError(error.message, {
        extensions: { code: error.code, fieldErrors: error.fieldErrors.map(({ field, message }) => ({ field, message })) },
      });
    }
    throw error;
  }
}

/**
 * Yoga's masking, with one exception clients can act on: a write that waited out another process's
 * database lock changed nothing and may be retried (SERVICE_UNAVAILABLE with retryAfter).
 */
export const maskUnexpectedError: MaskError = (error, message, isDev) => {
  const failure = serviceFailureOf(error);
  if (failure?.kind === 'service_unavailable') return serviceUnavailable(failure);
  // A cross-cutting refusal thrown where no resolver translated it (e.g. FEATURE_DISABLED from a service):
  // still its stable code, never a masked internal error.
  const refusal = refusalFor(error instanceof GraphQLError ? error.originalError : error);
  if (refusal) return refusal;
  return maskError(error, message, isDev);
};

/** What an auth event's outcome is called in the logs: the stable code of the refusal. */
export function outcomeCodeOf(error: unknown): string {
  if (error instanceof ExpectedFailure) return error.code;
  const refusal = refusalFor(error);
  if (refusal) return String(refusal.extensions.code);
  if (error instanceof GraphQLError && typeof error.extensions.code === 'string') return error.extensions.code;
  return 'INTERNAL_ERROR';
}

// ---- Expected failures as members of result unions -------------------------------------------------

type FailureClass = new (...args: never[]) => ExpectedFailure;

/**
 * The errors-plugin option of a field whose expected failures are returned as data: the success type and
 * `types` become the union `name`. Only the classes listed become results (builder.ts lists none by
 * default); any other error is thrown on and translated or masked as above.
 */
export function failureUnion<const Types extends readonly FailureClass[]>(name: string, types: Types): { types: [...Types]; union: { name: string } } {
  return { types: [...types], union: { name } };
}

/**
 * For a union built by hand (one the errors plugin cannot build, e.g. with two success types): the
 * thrown expected failure, wrapped as the errors plugin wraps it (graphql-js would treat a returned Error
 * instance as a failure), when it is one of `types`; anything else is rethrown.
 */
export function failureAsResult<T extends ExpectedFailure>(error: unknown, types: readonly FailureClass[]): T {
  const wrapped = wrapErrorIfMatches(error, [...types]) as object;
  if (wrapped !== error) return wrapped as T;
  throw error;
}

/** For a hand-made union's resolveType: the expected-failure class a value returned by `failureAsResult` was made from. */
export function failureClassOf(value: unknown): FailureClass | undefined {
  return typeof value === 'object' && value !== null ? (errorTypeMap.get(value) as FailureClass | undefined) : undefined;
}
