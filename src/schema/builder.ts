import SchemaBuilder from '@pothos/core';
import ErrorsPlugin from '@pothos/plugin-errors';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { DateTimeResolver } from 'graphql-scalars';
import { grants, type Viewer } from '../auth/authenticate.js';
import type { ApiScope } from '../auth/scopes.js';
import type { RequestContext } from '../context.js';
import { forbidden, unauthenticated } from './error-translation.js';
import { isAdmin } from './guards.js';

// The caller each request's scopes were computed for, so a refusal can tell "who are you?"
// (UNAUTHENTICATED) from "not you" (FORBIDDEN).
const scopedViewers = new WeakMap<object, Viewer | null>();

export const builder = new SchemaBuilder<{
  Context: RequestContext;
  Scalars: { DateTime: { Input: Date; Output: Date } };
  DefaultFieldNullability: false;
  AuthScopes: {
    /** No credentials were sent. */
    anonymous: boolean;
    /** A logged-in session (not an API token): needed for whatever manages credentials. */
    session: boolean;
    /** The caller may use this API scope (a session may use them all). */
    scope: ApiScope;
    /** An administrator, through a session or an API token with the admin scope. */
    admin: boolean;
  };
}>({
  // scope-auth first, so no other plugin's wrapper runs before the authorization check.
  plugins: [ScopeAuthPlugin, ErrorsPlugin, RelayPlugin],
  // Fields are non-null unless marked: the contract is explicit about what can be missing.
  defaultFieldNullability: false,
  scopeAuth: {
    authScopes: async (ctx) => {
      // A bad token throws UNAUTHENTICATED here, before any scope is looked at.
      const viewer = await ctx.viewer();
      scopedViewers.set(ctx, viewer);
      return {
        anonymous: viewer === null,
        session: viewer?.sessionId != null,
        scope: (scope) => viewer !== null && grants(viewer, scope),
        // Loaded only when an admin field asks, so ordinary requests never pay for the role lookup.
        admin: () => isAdmin(ctx, viewer),
      };
    },
    unauthorizedError: (_parent, ctx) => (scopedViewers.get(ctx) ? forbidden() : unauthenticated('missing_token')),
  },
  errors: {
    // Deliberately empty: only the ExpectedFailure classes each field lists (error-translation.ts: failureUnion) become typed results. A generic
    // Error here would expose internal messages and bypass Yoga's masking.
    defaultTypes: [],
    directResult: true,
  },
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    // Users are fetched by plain id; no global Node lookup is offered.
    nodeQueryOptions: false,
    nodesQueryOptions: false,
  },
});

builder.addScalarType('DateTime', DateTimeResolver);
builder.queryType({});
builder.mutationType({});
