import { resolveCursorConnection, type ResolveCursorConnectionArgs } from '@pothos/plugin-relay';
import { LastAdminError, UserNotFoundError } from '../auth/errors.js';
import type { UserRecord } from '../db/client.js';
import { audited } from './audit.js';
import { builder } from './builder.js';
import { boundedId } from './ids.js';
import { Role, User } from './user.js';

// Administration. Every field here needs the `admin` scope: an administrator's session, or an API
// token with the admin scope whose owner is still an administrator.

builder.queryFields((t) => ({
  users: t.connection({
    type: User,
    description: 'All accounts, ordered by username. search matches part of the username, email or full name.',
    authScopes: { admin: true },
    args: { search: t.arg.string({ required: false }) },
    resolve: (_root, args, ctx) =>
      resolveCursorConnection(
        { args, toCursor: (user: UserRecord) => user.usernameKey, defaultSize: 20, maxSize: 100 },
        (page: ResolveCursorConnectionArgs) => ctx.services.users.page({ ...page, search: args.search }),
      ),
  }, { name: 'UserConnection' }, { name: 'UserEdge' }),
}));

const adminResult = (name: string, extra: readonly (typeof LastAdminError)[] = []) => ({
  types: [UserNotFoundError, ...extra],
  union: { name },
});

builder.mutationFields((t) => ({
  setUserRole: t.field({
    type: User,
    args: { id: t.arg.id({ required: true }), role: t.arg({ type: Role, required: true }) },
    authScopes: { admin: true },
    errors: adminResult('SetUserRoleResult', [LastAdminError]),
    resolve: audited('setUserRole', (_root, { id, role }, ctx) => ctx.services.users.setRole(boundedId(id), role)),
  }),
  disableUser: t.field({
    type: User,
    description: "Blocks login and ends the user's sessions and API tokens at once.",
    args: { id: t.arg.id({ required: true }) },
    authScopes: { admin: true },
    errors: adminResult('DisableUserResult', [LastAdminError]),
    resolve: audited('disableUser', (_root, { id }, ctx) => ctx.services.users.disable(boundedId(id))),
  }),
  enableUser: t.field({
    type: User,
    args: { id: t.arg.id({ required: true }) },
    authScopes: { admin: true },
    errors: adminResult('EnableUserResult'),
    resolve: audited('enableUser', (_root, { id }, ctx) => ctx.services.users.enable(boundedId(id))),
  }),
  deleteUser: t.field({
    type: User,
    description: 'Deletes the account with its sessions and API tokens; returns it as it was.',
    args: { id: t.arg.id({ required: true }) },
    authScopes: { admin: true },
    errors: adminResult('DeleteUserResult', [LastAdminError]),
    resolve: audited('deleteUser', (_root, { id }, ctx) => ctx.services.users.delete(boundedId(id))),
  }),
}));
