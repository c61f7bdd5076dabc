import type { UserRecord } from '../db/database.js';
import { builder } from './builder.js';
import { AuthenticationError } from '../auth/errors.js';
import { throwAsGraphQL } from './error-translation.js';
import { enforceRateLimit } from './rate-limits.js';

export const Role = builder.enumType('Role', {
  values: {
    USER: { value: 'USER', description: 'A regular account.' },
    ADMIN: { value: 'ADMIN', description: 'May administer other accounts.' },
  } as const,
});

export const User = builder.objectRef<UserRecord>('User').implement({
  description: 'An account. Only its owner sees it whole.',
  // Whatever field returns a User (me, updateProfile, an admin's users and changes): an API token the
  // request acted with reads it only with PROFILE_READ, or as an administrator (ADMIN scope, owner still
  // an admin). Without this a PROFILE_WRITE-only token read the whole profile back from updateProfile's
  // result; such a token can still ask for `__typename` and the error members. Only a viewer the request
  // has already authenticated is looked at: login, register and refresh answer with the account the
  // caller just proved, and a stale Authorization header sent along with them must not fail them (the
  // refresh would be committed and its new token lost). Sessions have every scope.
  authScopes: (_user, ctx) => (ctx.authenticatedViewer()?.apiTokenId ? { $any: { scope: 'profile:read', admin: true } } : true),
  fields: (t) => ({
    id: t.exposeID('id'),
    username: t.exposeString('username', { description: 'As typed at registration; unique regardless of case.' }),
    email: t.exposeString('email', { nullable: true }),
    emailVerified: t.boolean({
      description: 'Whether the current address was shown to reach its owner (a mailed link or code from it was used). False without an address.',
      resolve: (user) => user.emailVerifiedAt !== null && user.email !== null,
    }),
    fullname: t.exposeString('fullname', { nullable: true }),
    role: t.field({ type: Role, resolve: (user) => (user.role === 'ADMIN' ? 'ADMIN' : 'USER') }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

builder.queryFields((t) => ({
  me: t.field({
    type: User,
    nullable: true,
    description: 'The caller. null without an Authorization header; UNAUTHENTICATED with a bad one.',
    authScopes: { $any: { anonymous: true, scope: 'profile:read' } },
    resolve: async (_root, _args, ctx) => {
      const viewer = await ctx.viewer();
      if (!viewer) return null;
      // The authenticator has just checked the account is available; only a deletion in between is left.
      const user = await ctx.services.accounts.findUser(viewer.userId);
      if (!user) throwAsGraphQL(AuthenticationError.accountUnavailable());
      return user;
    },
  }),
  userExists: t.boolean({
    description: 'Whether a username is registered (for sign-up forms). Rate limited.',
    args: { username: t.arg.string({ required: true }) },
    resolve: async (_root, { username }, ctx) => {
      await enforceRateLimit(ctx, 'userExists');
      return ctx.services.accounts.usernameExists(username);
    },
  }),
}));
