import { InvalidRefreshTokenError } from '../auth/errors.js';
import type { SessionRecord } from '../db/database.js';
import { AuthPayload } from './auth.js';
import { audited } from './audit.js';
import { builder } from './builder.js';
import { failureUnion } from './error-translation.js';
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

builder.mutationFields((t) => ({
  refresh: t.field({
    type: AuthPayload,
    description: 'Exchanges a refresh token for a new access token and a new refresh token.',
    args: { refreshToken: t.arg.string({ required: true }) },
    errors: failureUnion('RefreshResult', [InvalidRefreshTokenError]),
    resolve: audited(
      'refresh',
      async (_root, { refreshToken }, ctx) => {
        await enforceRateLimit(ctx, 'refresh');
        return ctx.services.accounts.refresh(refreshToken);
      },
      (result) => result.user.id,
    ),
  }),
  logout: t.boolean({
    description:
      'Ends the current session, or with allSessions every session of the caller. Their tokens stop working at once. Always true when it returns: the session is over (an already ended session is refused with UNAUTHENTICATED before this runs), so there is nothing more to tell.',
    args: { allSessions: t.arg.boolean({ required: true, defaultValue: false }) },
    authScopes: { session: true },
    resolve: audited('logout', async (_root, { allSessions }, ctx) => {
      const viewer = await requireSession(ctx);
      // With allSessions, a login racing the logout cannot add a session either (credentials version).
      if (allSessions) await ctx.services.sessions.endAllForUser(viewer.userId, 'logout_all');
      else await ctx.services.sessions.revoke(viewer.sessionId, 'logout');
      return true;
    }),
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
