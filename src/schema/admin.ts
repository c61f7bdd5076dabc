import { resolveCursorConnection, type ResolveCursorConnectionArgs } from '@pothos/plugin-relay';
import { type AdminActor, adminActor } from '../auth/admin-actor.js';
import { LastAdminError, UserNotFoundError } from '../auth/errors.js';
import type { RequestContext } from '../context.js';
import type { UserRecord } from '../db/database.js';
import { audited } from './audit.js';
import { builder } from './builder.js';
import { requireViewer } from './guards.js';
import { boundedId } from './ids.js';
import { badUserInput, failureUnion, withCommitTimeRefusals } from './error-translation.js';
import { Role, User } from './user.js';

// Administration. Every field here needs the `admin` scope: an administrator's session, or an API
// token with the admin scope whose owner is still an administrator. That scope is checked when the
// request starts (from caches); every change checks its author again inside its own transaction
// (auth/admin-actor.ts), and answers FORBIDDEN if the author lost the right meanwhile.

/** An admin change made by the caller, with the refusals decided at commit time turned into GraphQL errors. */
function adminChange<Args>(event: string, change: (args: Args, actor: AdminActor, ctx: RequestContext) => Promise<UserRecord>) {
  return audited(event, async (_root: unknown, args: Args, ctx: RequestContext) => {
    const actor = adminActor(await requireViewer(ctx));
    return withCommitTimeRefusals(() => change(args, actor, ctx));
  });
}

builder.queryFields((t) => ({
  users: t.connection(
    {
      type: User,
      description: 'All accounts, ordered by username. search matches part of the username, email or full name.',
      authScopes: { admin: true },
      args: { search: t.arg.string({ required: false }) },
      resolve: (_root, args, ctx) =>
        args.search
          ? searchConnection(ctx, args, args.search)
          : resolveCursorConnection(
              { args, toCursor: (user: UserRecord) => user.usernameKey, defaultSize: PAGE_SIZE.default, maxSize: PAGE_SIZE.max },
              (page: ResolveCursorConnectionArgs) => ctx.services.users.page(page),
            ),
    },
    { name: 'UserConnection' },
    { name: 'UserEdge' },
  ),
}));

const PAGE_SIZE = { default: 20, max: 100 } as const;

interface ConnectionArgs {
  readonly first?: number | null;
  readonly last?: number | null;
  readonly after?: string | null;
  readonly before?: string | null;
}

/**
 * A search page, built here rather than by resolveCursorConnection: a search looks at a bounded number of
 * users per page (UserAdministration.search), so a page may hold fewer matches than asked for while more
 * may follow. hasNextPage (hasPreviousPage, paging backwards) then stays true, and endCursor (startCursor)
 * is where the search stopped looking, so following it continues the search.
 */
async function searchConnection(ctx: RequestContext, args: ConnectionArgs, search: string) {
  const backward = args.last != null && args.first == null;
  const requested = (backward ? args.last : args.first) ?? PAGE_SIZE.default;
  if (requested < 0 || requested > PAGE_SIZE.max) throw badUserInput(`first and last must be between 0 and ${PAGE_SIZE.max}.`);
  // One more than asked for tells whether a full page is followed by more.
  const page = { after: args.after ?? undefined, before: args.before ?? undefined, limit: requested + 1, inverted: backward };
  const { users, resumeFrom } = await ctx.services.users.search(page, search);
  const full = users.length > requested;
  const nodes = users.slice(0, requested);
  const edges = (backward ? nodes.reverse() : nodes).map((user) => ({ cursor: user.usernameKey, node: user }));
  const more = full || resumeFrom !== null;
  const resume = full ? null : resumeFrom;
  return {
    edges,
    pageInfo: {
      hasNextPage: !backward && more,
      hasPreviousPage: backward && more,
      startCursor: (backward ? resume : null) ?? edges[0]?.cursor ?? null,
      endCursor: (backward ? null : resume) ?? edges.at(-1)?.cursor ?? null,
    },
  };
}

const adminResult = (name: string, extra: readonly (typeof LastAdminError)[] = []) => failureUnion(name, [UserNotFoundError, ...extra]);

builder.mutationFields((t) => ({
  setUserRole: t.field({
    type: User,
    args: { id: t.arg.id({ required: true }), role: t.arg({ type: Role, required: true }) },
    authScopes: { admin: true },
    errors: adminResult('SetUserRoleResult', [LastAdminError]),
    resolve: adminChange('setUserRole', ({ id, role }, actor, ctx) => ctx.services.users.setRole(boundedId(id), role, actor)),
  }),
  disableUser: t.field({
    type: User,
    description: "Blocks login and ends the user's sessions and API tokens at once.",
    args: { id: t.arg.id({ required: true }) },
    authScopes: { admin: true },
    errors: adminResult('DisableUserResult', [LastAdminError]),
    resolve: adminChange('disableUser', ({ id }, actor, ctx) => ctx.services.users.disable(boundedId(id), actor)),
  }),
  enableUser: t.field({
    type: User,
    args: { id: t.arg.id({ required: true }) },
    authScopes: { admin: true },
    errors: adminResult('EnableUserResult'),
    resolve: adminChange('enableUser', ({ id }, actor, ctx) => ctx.services.users.enable(boundedId(id), actor)),
  }),
  deleteUser: t.field({
    type: User,
    description: 'Deletes the account with its sessions and API tokens; returns it as it was.',
    args: { id: t.arg.id({ required: true }) },
    authScopes: { admin: true },
    errors: adminResult('DeleteUserResult', [LastAdminError]),
    resolve: adminChange('deleteUser', ({ id }, actor, ctx) => ctx.services.users.delete(boundedId(id), actor)),
  }),
}));
