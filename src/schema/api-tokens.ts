import { ValidationError } from '../auth/errors.js';
import { API_SCOPES, type ApiScope } from '../auth/scopes.js';
import type { ApiTokenRecord } from '../db/database.js';
import { audited } from './audit.js';
import { builder } from './builder.js';
import { boundedId } from './ids.js';
import { requireSession } from './guards.js';
import { failureUnion, withCommitTimeRefusals } from './error-translation.js';

const scopeNames: Record<ApiScope, { name: string; description: string }> = {
  'profile:read': { name: 'PROFILE_READ', description: '`me`: read your own profile.' },
  'profile:write': { name: 'PROFILE_WRITE', description: '`updateProfile`.' },
  'sessions:read': { name: 'SESSIONS_READ', description: '`mySessions`.' },
  admin: { name: 'ADMIN', description: 'Administration, and only while the owner is an administrator.' },
};

const ApiTokenScope = builder.enumType('ApiTokenScope', {
  description: 'What an API token may do. Tokens can never manage tokens, passwords or sessions.',
  values: Object.fromEntries(API_SCOPES.map((scope) => [scopeNames[scope].name, { value: scope, description: scopeNames[scope].description }])) as {
    [K in ApiScope]: { value: K; description: string };
  },
});

const ApiToken = builder.objectRef<ApiTokenRecord>('ApiToken').implement({
  description: 'A long-lived credential for scripts. Its secret was shown once, at creation.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    scopes: t.field({ type: [ApiTokenScope], resolve: (token) => token.scopes.split(' ') as ApiScope[] }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true }),
    lastUsedAt: t.expose('lastUsedAt', { type: 'DateTime', nullable: true, description: 'Updated at most once a minute.' }),
  }),
});

const ApiTokenCreated = builder.objectRef<{ token: string; apiToken: ApiTokenRecord }>('ApiTokenCreated').implement({
  fields: (t) => ({
    token: t.exposeString('token', { description: 'Send as `Authorization: Bearer <token>`. Shown only now; it cannot be recovered.' }),
    apiToken: t.field({ type: ApiToken, resolve: (created) => created.apiToken }),
  }),
});

const CreateApiTokenInput = builder.inputType('CreateApiTokenInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: 'What the token is for, 1-64 characters.' }),
    scopes: t.field({ type: [ApiTokenScope], required: true }),
    expiresInDays: t.int({ required: false, description: '1-3650; omitted: the token does not expire.' }),
  }),
});

builder.queryFields((t) => ({
  apiTokens: t.field({
    type: [ApiToken],
    description: "The caller's API tokens that still work, newest first.",
    authScopes: { session: true },
    resolve: async (_root, _args, ctx) => ctx.services.apiTokens.list((await requireSession(ctx)).userId),
  }),
}));

builder.mutationFields((t) => ({
  createApiToken: t.field({
    type: ApiTokenCreated,
    args: { input: t.arg({ type: CreateApiTokenInput, required: true }) },
    authScopes: { session: true },
    errors: failureUnion('CreateApiTokenResult', [ValidationError]),
    resolve: audited('createApiToken', async (_root, { input }, ctx) => {
      const viewer = await requireSession(ctx);
      const { token, record } = await withCommitTimeRefusals(() => ctx.services.apiTokens.create(viewer.userId, viewer.sessionId, input));
      return { token, apiToken: record };
    }),
  }),
  revokeApiToken: t.boolean({
    description: "Revokes one of the caller's API tokens at once. false when no such working token of the caller exists.",
    args: { id: t.arg.id({ required: true }) },
    authScopes: { session: true },
    resolve: audited('revokeApiToken', async (_root, { id }, ctx) => {
      const viewer = await requireSession(ctx);
      // Scoped to the caller: another user's token id answers exactly like an unknown one.
      return ctx.services.apiTokens.revoke(viewer.userId, boundedId(id));
    }),
  }),
}));
