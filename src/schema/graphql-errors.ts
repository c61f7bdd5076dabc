import { GraphQLError } from 'graphql';
import type { Viewer } from '../auth/authenticate.js';
import type { RequestContext } from '../context.js';

// Cross-cutting refusals are GraphQL errors with a stable extensions.code, not union members: any
// field can raise them and clients handle them in one place (e.g. refresh, then retry, on UNAUTHENTICATED).

export function unauthenticated(reason: string, message = 'Authentication required.'): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', reason } });
}

export function rateLimited(retryAfterSeconds: number): GraphQLError {
  return new GraphQLError(`Too many requests; retry in ${retryAfterSeconds} s.`, {
    extensions: { code: 'RATE_LIMITED', retryAfter: retryAfterSeconds },
  });
}

/** The caller, or UNAUTHENTICATED when there is none. */
export async function requireViewer(ctx: RequestContext): Promise<Viewer> {
  const viewer = await ctx.viewer();
  if (!viewer) throw unauthenticated('missing_token');
  return viewer;
}
