import type { RequestContext } from '../context.js';
import { outcomeCodeOf } from './error-translation.js';

/**
 * Wraps a resolver so that its outcome ("success", or the refusal's stable code) is logged as an auth
 * event with the request id, address and user. Only names, ids and codes are logged: never the
 * arguments, which hold passwords and tokens.
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
      ctx.audit(event, outcomeCodeOf(error), ctx.authenticatedViewer()?.userId ?? null);
      throw error;
    }
  };
}
