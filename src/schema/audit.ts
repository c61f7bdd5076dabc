import { GraphQLError } from 'graphql';
import { AuthError } from '../auth/errors.js';
import type { RequestContext } from '../context.js';

/** What an auth event's outcome is called in the logs: "success", or the stable code of the refusal. */
function outcomeOf(error: unknown): string {
  if (error instanceof AuthError) return error.code;
  if (error instanceof GraphQLError && typeof error.extensions.code === 'string') return error.extensions.code;
  return 'INTERNAL_ERROR';
}

/**
 * Wraps a resolver so that its outcome is logged as an auth event with the request id, address and
 * user. Only names, ids and codes are logged: never the arguments, which hold passwords and tokens.
 */
export function audited<Parent, Args, Result>(
  event: string,
  resolve: (parent: Parent, args: Args, ctx: RequestContext) => Promise<Result>,
  subjectOf?: (result: Result) => string | null | undefined,
): (parent: Parent, args: Args, ctx: RequestContext) => Promise<Result> {
  return async (parent, args, ctx) => {
    try {
      const result = await resolve(parent, args, ctx);
      ctx.audit(event, 'success', subjectOf?.(result) ?? ctx.authenticatedViewer()?.userId ?? null);
      return result;
    } catch (error) {
      ctx.audit(event, outcomeOf(error), ctx.authenticatedViewer()?.userId ?? null);
      throw error;
    }
  };
}
