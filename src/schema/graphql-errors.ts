import { GraphQLError } from 'graphql';
import { grants, type Viewer } from '../auth/authenticate.js';
import type { RequestContext } from '../context.js';

// Cross-cutting refusals are GraphQL errors with a stable extensions.code, not union members: any
// field can raise them and clients handle them in one place (e.g. refresh, then retry, on UNAUTHENTICATED).

export function unauthenticated(reason: string, message = 'Authentication required.'): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', reason } });
}

export function forbidden(message = 'You are not allowed to do this.'): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'FORBIDDEN' } });
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

/** The caller's session; for fields guarded by the `session` scope. */
export async function requireSession(ctx: RequestContext): Promise<Viewer & { sessionId: string }> {
  const viewer = await requireViewer(ctx);
  if (viewer.sessionId === null) throw forbidden('This needs a logged-in session, not an API token.');
  return viewer as Viewer & { sessionId: string };
}

/**
 * Whether the caller acts as an administrator: the role is read now (a demoted admin loses access on the
 * next request), and an API token needs the admin scope on top of its owner's role.
 */
export async function isAdmin(ctx: RequestContext, viewer: Viewer | null): Promise<boolean> {
  if (!viewer || !grants(viewer, 'admin')) return false;
  return (await ctx.services.accounts.findUser(viewer.userId))?.role === 'ADMIN';
}

export async function requireAdmin(ctx: RequestContext): Promise<void> {
  if (!(await isAdmin(ctx, await requireViewer(ctx)))) throw forbidden();
}
