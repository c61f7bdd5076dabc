import { InvalidRefreshTokenError } from '../auth/errors.js';
import type { RequestContext } from '../context.js';
import type { SessionRecord } from '../db/database.js';
import { AuthPayload, handOverSession } from './auth.js';
import { audited } from './audit.js';
import { builder } from './builder.js';
import { failureUnion, outcomeCodeOf } from './error-translation.js';
import { boundedId } from './ids.js';
import { requireSession, requireViewer } from './guards.js';
import { enforceRateLimit } from './rate-limits.js';

interface SessionView {
  readonly record: SessionRecord;
  readonly current: boolean;
}

const Session = builder.objectRef<SessionView>('Session').implement({
  description: 'One signed-in device or browser of the caller.',
  fields: (t) => ({
    id: t.id({ resolve: ({ record }) => record.id }),
    current: t.boolean({ description: 'Whether this is the session of the calling access token.', resolve: ({ current }) => current }),
    createdAt: t.field({ type: 'DateTime', resolve: ({ record }) => record.createdAt }),
    lastUsedAt: t.field({ type: 'DateTime', description: 'Last login or refresh.', resolve: ({ record }) => record.lastUsedAt }),
    expiresAt: t.field({ type: 'DateTime', description: 'Absolute end; idle sessions end sooner.', resolve: ({ record }) => record.expiresAt }),
    userAgent: t.string({ nullable: true, resolve: ({ record }) => record.userAgent }),
    ip: t.string({ nullable: true, resolve: ({ record }) => record.ip }),
  }),
});

builder.queryFields((t) => ({
  mySessions: t.field({
    type: [Session],
    description: "The caller's sessions that can still be refreshed, newest first.",
    authScopes: { scope: 'sessions:read' },
    resolve: async (_root, _args, ctx) => {
      const viewer = await requireViewer(ctx);
      const sessions = await ctx.services.sessions.listActive(viewer.userId);
      return sessions.map((record) => ({ record, current: record.id === viewer.sessionId }));
    },
  }),
}));

const logoutBySession = audited('logout', async (_root: unknown, { allSessions }: { allSessions: boolean }, ctx: RequestContext) => {
  const viewer = await requireSession(ctx);
  // With allSessions, a login racing the logout cannot add a session either (credentials version).
  if (allSessions) await ctx.services.sessions.endAllForUser(viewer.userId, 'logout_all');
  else await ctx.services.sessions.revoke(viewer.sessionId, 'logout');
  return true;
});

/** Logged here rather than by audited(): the subject is the token's user, and no viewer is resolved. */
async function logoutByRefreshToken(token: string, allSessions: boolean, ctx: RequestContext): Promise<boolean> {
  try {
    await enforceRateLimit(ctx, 'refresh');
  } catch (error) {
    ctx.audit('logout', outcomeCodeOf(error), null);
    throw error;
  }
  const ended = await ctx.services.sessions.endByRefreshToken(token, allSessions);
  if (ended.outcome === 'reused') ctx.audit('refresh', 'REFRESH_TOKEN_REUSED', ended.userId);
  if (ended.outcome === 'not_active') ctx.audit('logout', 'NO_ACTIVE_SESSION', null);
  else ctx.audit('logout', 'success:refresh_token', ended.userId, 'info');
  return ended.outcome !== 'not_active';
}

builder.mutationFields((t) => ({
  refresh: t.field({
    type: AuthPayload,
    description:
      'Exchanges a refresh token for a new access token and a new refresh token. Without the argument, the refresh cookie is used (REFRESH_TOKEN_TRANSPORT cookie or both); with neither, REFRESH_TOKEN_MISSING. With cookie transport the new token replaces the cookie, and a refused cookie token is cleared.',
    // The field's description covers the argument; without one the signature stays on one line in schema.graphql.
    args: { refreshToken: t.arg.string({ required: false }) },
    errors: failureUnion('RefreshResult', [InvalidRefreshTokenError]),
    resolve: audited(
      'refresh',
      async (_root, { refreshToken }, ctx) => {
        await enforceRateLimit(ctx, 'refresh');
        const fromCookie = refreshToken === null || refreshToken === undefined;
        const token = fromCookie ? ctx.refreshCookie.read() : refreshToken;
        if (token === null) throw new InvalidRefreshTokenError('REFRESH_TOKEN_MISSING');
        try {
          return handOverSession(ctx, await ctx.services.accounts.refresh(token));
        } catch (error) {
          // A refused cookie can never work again: take it off the browser.
          if (fromCookie && error instanceof InvalidRefreshTokenError) ctx.refreshCookie.clear();
          throw error;
        }
      },
      (result) => result.user.id,
    ),
  }),
  logout: t.boolean({
    description: [
      'Ends a session. With a refresh token (the argument, or else the refresh cookie under REFRESH_TOKEN_TRANSPORT cookie or both) it ends the session of that token and needs no access token, so it works after the access token expired; otherwise the session of the access token (not an API token). allSessions ends every session of the user instead.',
      'The token is not rotated. An exchanged (older) refresh token counts as reuse, as at `refresh`: its session ends, but allSessions is not honoured for it.',
      'With cookie transport the cookie is cleared in every case.',
      'Returns true when the session ended; false when the refresh token matched no active session (unknown, expired, already ended). With an access token it is always true when it returns: an ended session is refused with UNAUTHENTICATED before this runs.',
    ].join(' '),
    args: {
      allSessions: t.arg.boolean({ required: true, defaultValue: false }),
      refreshToken: t.arg.string({ required: false }),
    },
    // No authScopes: a refresh token alone may end its session. The access-token path checks the session below.
    resolve: async (root, args, ctx) => {
      ctx.refreshCookie.clear();
      const token = args.refreshToken ?? ctx.refreshCookie.read();
      return token === null ? logoutBySession(root, args, ctx) : logoutByRefreshToken(token, args.allSessions, ctx);
    },
  }),
  revokeSession: t.boolean({
    description: "Ends one of the caller's sessions. false when no such session of the caller is active.",
    args: { id: t.arg.id({ required: true }) },
    authScopes: { session: true },
    resolve: audited('revokeSession', async (_root, { id }, ctx) => {
      const viewer = await requireSession(ctx);
      // Scoped to the caller: another user's session id answers exactly like an unknown one.
      return ctx.services.sessions.revoke(boundedId(id), 'revoked_by_user', viewer.userId);
    }),
  }),
}));
