import { grants, type Viewer } from '../auth/authenticate.js';
import type { RequestContext } from '../context.js';
import { forbidden, unauthenticated } from './error-translation.js';

// Authorization guards for resolvers: each returns what the field may act on, or throws the
// cross-cutting refusal (UNAUTHENTICATED, FORBIDDEN) built in error-translation.ts.

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
