import { ActorNotAuthorizedError } from '../auth/admin-actor.js';
import { AuthenticationError } from '../auth/errors.js';
import { forbidden, unauthenticated } from './graphql-errors.js';

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
    if (error instanceof ActorNotAuthorizedError) throw forbidden();
    if (error instanceof AuthenticationError) throw unauthenticated(error.reason, error.message);
    throw error;
  }
}
