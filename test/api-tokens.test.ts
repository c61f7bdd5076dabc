import { createHash } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { bearer, createTestApp, ManualClock, registerUser } from './support/app.js';
import { CREATE_API_TOKEN, createApiToken, errorCode, login, me, readTable, registerAdmin } from './support/accounts.js';
import { OPERATOR } from '../src/auth/admin-actor.js';
import { rawDb } from './support/raw-db.js';

const DAY = 86_400_000;
const clock = new ManualClock();
const app = await createTestApp({}, { clock });

const LIST = 'query { apiTokens { id name scopes createdAt expiresAt lastUsedAt } }';
const REVOKE = 'mutation ($id: ID!) { revokeApiToken(id: $id) }';
const MY_SESSIONS = 'query { mySessions { id current } }';
const USERS = 'query { users(first: 5) { edges { node { id } } } }';
const UPDATE_PROFILE = 'mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { __typename ... on User { fullname } } }';

async function create(accessToken: string, input: Record<string, unknown>) {
  const response = await app.gql(CREATE_API_TOKEN, { input }, bearer(accessToken));
  expect(response.errors).toBeUndefined();
  return response.data.createApiToken;
}

async function list(accessToken: string) {
  const response = await app.gql(LIST, {}, bearer(accessToken));
  expect(response.errors).toBeUndefined();
  return response.data.apiTokens as { id: string; name: string; lastUsedAt: string | null }[];
}

describe('createApiToken', () => {
  it('returns the secret once, with a gat_ prefix, and stores only a hash of it', async () => {
    const { accessToken, user } = await registerUser(app);
    const created = await create(accessToken, { name: 'deploy script', scopes: ['PROFILE_READ', 'SESSIONS_READ'] });
    expect(created.__typename).toBe('ApiTokenCreated');
    expect(created.token).toMatch(/^gat_[A-Za-z0-9_-]{43}$/);
    expect(created.apiToken).toMatchObject({ name: 'deploy script', expiresAt: null, lastUsedAt: null });
    expect([...created.apiToken.scopes].sort()).toEqual(['PROFILE_READ', 'SESSIONS_READ']);

    const rows = await readTable(app, 'SELECT * FROM ApiToken WHERE userId = ?', user.id);
    expect(rows).toHaveLength(1);
    const dump = JSON.stringify(rows);
    expect(dump).not.toContain(created.token);
    expect(dump).not.toContain(created.token.slice(4));
    expect(rows[0]!.secretHash).toBe(createHash('sha256').update(created.token).digest('hex'));

    // No field of the ApiToken type can reveal a secret afterwards.
    const fields = (await app.gql('{ __type(name: "ApiToken") { fields { name } } }')).data.__type.fields.map((field: { name: string }) => field.name);
    expect(fields.sort()).toEqual(['createdAt', 'expiresAt', 'id', 'lastUsedAt', 'name', 'scopes']);
  });

  it('sets an expiry from expiresInDays', async () => {
    const { accessToken } = await registerUser(app);
    const created = await create(accessToken, { name: 'week', scopes: ['PROFILE_READ'], expiresInDays: 7 });
    expect(new Date(created.apiToken.expiresAt).getTime()).toBe(new Date(created.apiToken.createdAt).getTime() + 7 * DAY);
  });

  it.each([
    ['an empty name', { name: '  ', scopes: ['PROFILE_READ'] }, 'name'],
    ['an overlong name', { name: 'x'.repeat(65), scopes: ['PROFILE_READ'] }, 'name'],
    ['no scopes', { name: 'none', scopes: [] }, 'scopes'],
    ['expiresInDays 0', { name: 'zero', scopes: ['PROFILE_READ'], expiresInDays: 0 }, 'expiresInDays'],
    ['expiresInDays over 3650', { name: 'long', scopes: ['PROFILE_READ'], expiresInDays: 3651 }, 'expiresInDays'],
  ])('answers %s with ValidationError and creates nothing', async (_label, input, field) => {
    const { accessToken, user } = await registerUser(app);
    const result = await create(accessToken, input);
    expect(result).toMatchObject({ __typename: 'ValidationError', code: 'VALIDATION_FAILED' });
    expect(result.fieldErrors.map((error: { field: string }) => error.field)).toContain(field);
    expect(await rawDb(app.services).apiToken.count({ where: { userId: user.id } })).toBe(0);
  });

  it('refuses the ADMIN scope to a user who is not an administrator', async () => {
    const { accessToken, user } = await registerUser(app);
    const result = await create(accessToken, { name: 'sneaky', scopes: ['PROFILE_READ', 'ADMIN'] });
    expect(result).toMatchObject({ __typename: 'ValidationError', code: 'VALIDATION_FAILED' });
    expect(result.fieldErrors.map((error: { field: string }) => error.field)).toContain('scopes');
    expect(await rawDb(app.services).apiToken.count({ where: { userId: user.id } })).toBe(0);
  });

  it('is UNAUTHENTICATED without a token', async () => {
    const response = await app.gql(CREATE_API_TOKEN, { input: { name: 'anon', scopes: ['PROFILE_READ'] } });
    expect(errorCode(response)).toBe('UNAUTHENTICATED');
  });
});

describe('apiTokens and revokeApiToken', () => {
  it("lists my working tokens, newest first, and not anyone else's", async () => {
    const alice = await registerUser(app);
    const bob = await registerUser(app);
    const first = await createApiToken(app, alice.accessToken, { name: 'first', scopes: ['PROFILE_READ'] });
    clock.advance(1000);
    const second = await createApiToken(app, alice.accessToken, { name: 'second', scopes: ['SESSIONS_READ'] });
    await createApiToken(app, bob.accessToken, { name: 'bobs', scopes: ['PROFILE_READ'] });

    const tokens = await list(alice.accessToken);
    expect(tokens.map((token) => token.id)).toEqual([second.apiToken.id, first.apiToken.id]);
    expect(JSON.stringify(tokens)).not.toContain(first.token);
    expect(JSON.stringify(tokens)).not.toContain(second.token);
    expect((await list(bob.accessToken)).map((token) => token.name)).toEqual(['bobs']);
  });

  it("revokes my token at once; another user's token id answers false, like an unknown one", async () => {
    const alice = await registerUser(app);
    const mallory = await registerUser(app);
    const { token, apiToken } = await createApiToken(app, alice.accessToken, { scopes: ['PROFILE_READ'] });
    expect((await me(app, token)).data.me.id).toBe(alice.user.id);

    const attempt = await app.gql(REVOKE, { id: apiToken.id }, bearer(mallory.accessToken));
    const unknown = await app.gql(REVOKE, { id: crypto.randomUUID() }, bearer(mallory.accessToken));
    expect(attempt).toEqual(unknown);
    expect(attempt.data.revokeApiToken).toBe(false);
    expect((await me(app, token)).data.me.id).toBe(alice.user.id);

    expect((await app.gql(REVOKE, { id: apiToken.id }, bearer(alice.accessToken))).data.revokeApiToken).toBe(true);
    const refused = await me(app, token);
    expect(errorCode(refused)).toBe('UNAUTHENTICATED');
    expect(refused.data?.me ?? null).toBeNull();
    expect(await list(alice.accessToken)).toEqual([]);
    // Still refused once the in-memory entry has gone and the row is read again.
    clock.advance(31_000);
    expect(errorCode(await me(app, token))).toBe('UNAUTHENTICATED');
    expect((await app.gql(REVOKE, { id: apiToken.id }, bearer(alice.accessToken))).data.revokeApiToken).toBe(false);
  });

  it('answers false for my own token once it has expired, as it no longer works', async () => {
    const { username, password, accessToken } = await registerUser(app);
    const { apiToken } = await createApiToken(app, accessToken, { scopes: ['PROFILE_READ'], expiresInDays: 1 });
    clock.advance(DAY + 1);
    const fresh = await login(app, username, password);
    expect((await app.gql(REVOKE, { id: apiToken.id }, bearer(fresh.accessToken))).data.revokeApiToken).toBe(false);
  });
});

describe('authenticating with an API token', () => {
  it('PROFILE_READ allows me and nothing else', async () => {
    const { accessToken, user } = await registerUser(app);
    const { token } = await createApiToken(app, accessToken, { scopes: ['PROFILE_READ'] });
    const response = await me(app, token);
    expect(response.errors).toBeUndefined();
    expect(response.data.me).toMatchObject({ id: user.id, role: 'USER' });
    expect(errorCode(await app.gql(UPDATE_PROFILE, { input: { fullname: 'X' } }, bearer(token)))).toBe('FORBIDDEN');
    expect(errorCode(await app.gql(MY_SESSIONS, {}, bearer(token)))).toBe('FORBIDDEN');
    expect(errorCode(await app.gql(USERS, {}, bearer(token)))).toBe('FORBIDDEN');
  });

  it('PROFILE_WRITE allows updateProfile but not me', async () => {
    const { accessToken, user } = await registerUser(app);
    const { token } = await createApiToken(app, accessToken, { scopes: ['PROFILE_WRITE'] });
    // Reading the User back needs PROFILE_READ (test/security/scopes.test.ts); the outcome does not.
    const updateOutcome = 'mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { __typename } }';
    const response = await app.gql(updateOutcome, { input: { fullname: 'Scripted Name' } }, bearer(token));
    expect(response.errors).toBeUndefined();
    expect(response.data.updateProfile).toEqual({ __typename: 'User' });
    expect((await rawDb(app.services).user.findUniqueOrThrow({ where: { id: user.id } })).fullname).toBe('Scripted Name');
    expect(errorCode(await me(app, token))).toBe('FORBIDDEN');
    expect(errorCode(await app.gql(MY_SESSIONS, {}, bearer(token)))).toBe('FORBIDDEN');
  });

  it('SESSIONS_READ allows mySessions, with no session marked current', async () => {
    const { accessToken } = await registerUser(app);
    const { token } = await createApiToken(app, accessToken, { scopes: ['SESSIONS_READ'] });
    const response = await app.gql(MY_SESSIONS, {}, bearer(token));
    expect(response.errors).toBeUndefined();
    expect(response.data.mySessions).toHaveLength(1);
    expect(response.data.mySessions[0].current).toBe(false);
    expect(errorCode(await me(app, token))).toBe('FORBIDDEN');
    expect(errorCode(await app.gql(UPDATE_PROFILE, { input: { fullname: 'X' } }, bearer(token)))).toBe('FORBIDDEN');
  });

  it('ADMIN works for admin fields only while the owner is an administrator', async () => {
    const admin = await registerAdmin(app);
    const otherAdmin = await registerAdmin(app);
    const { token } = await createApiToken(app, admin.accessToken, { scopes: ['ADMIN'] });
    const allowed = await app.gql(USERS, {}, bearer(token));
    expect(allowed.errors).toBeUndefined();
    expect(allowed.data.users.edges.length).toBeGreaterThan(0);
    // Only its scopes: ADMIN is not PROFILE_READ.
    expect(errorCode(await me(app, token))).toBe('FORBIDDEN');

    await app.services.users.setRole(admin.user.id, 'USER', OPERATOR);
    expect(errorCode(await app.gql(USERS, {}, bearer(token)))).toBe('FORBIDDEN');
    // The other administrator is unaffected.
    expect((await app.gql(USERS, {}, bearer(otherAdmin.accessToken))).errors).toBeUndefined();
  });

  it('never manages credentials, whatever its scopes', async () => {
    const admin = await registerAdmin(app);
    await registerAdmin(app); // so nothing is refused for being the last administrator
    const { token, apiToken } = await createApiToken(app, admin.accessToken, { scopes: ['PROFILE_READ', 'PROFILE_WRITE', 'SESSIONS_READ', 'ADMIN'] });
    const sessionId = (await app.gql(MY_SESSIONS, {}, bearer(admin.accessToken))).data.mySessions[0].id;

    const attempts: [string, Record<string, unknown>][] = [
      [CREATE_API_TOKEN, { input: { name: 'child', scopes: ['PROFILE_READ'] } }],
      [LIST, {}],
      [REVOKE, { id: apiToken.id }],
      [`mutation { changePassword(currentPassword: ${JSON.stringify(admin.password)}, newPassword: "another new password") { __typename } }`, {}],
      [`mutation { deleteAccount(password: ${JSON.stringify(admin.password)}) { __typename } }`, {}],
      ['mutation { logout }', {}],
      ['mutation { logout(allSessions: true) }', {}],
      ['mutation ($id: ID!) { revokeSession(id: $id) }', { id: sessionId }],
    ];
    for (const [query, variables] of attempts) {
      const response = await app.gql(query, variables, bearer(token));
      expect(errorCode(response), query).toBe('FORBIDDEN');
    }
    // Nothing happened: one token, the account and its session intact, the token still works.
    expect(await rawDb(app.services).apiToken.count({ where: { userId: admin.user.id } })).toBe(1);
    expect((await me(app, admin.accessToken)).data.me.id).toBe(admin.user.id);
    expect((await login(app, admin.username, admin.password)).__typename).toBe('AuthPayload');
    expect((await me(app, token)).data.me.id).toBe(admin.user.id);
  });

  it('refuses unknown and malformed API tokens with UNAUTHENTICATED', async () => {
    const { accessToken } = await registerUser(app);
    const { token } = await createApiToken(app, accessToken, { scopes: ['PROFILE_READ'] });
    const forged = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    for (const candidate of [forged, 'gat_short', `gat_${'A'.repeat(43)}`, `${token}x`]) {
      expect(errorCode(await me(app, candidate))).toBe('UNAUTHENTICATED');
    }
  });

  it('stops working once expired', async () => {
    const { accessToken, user } = await registerUser(app);
    const { token } = await createApiToken(app, accessToken, { scopes: ['PROFILE_READ'], expiresInDays: 2 });
    clock.advance(2 * DAY - 60_000);
    expect((await me(app, token)).data.me).not.toBeNull();
    clock.advance(60_001);
    expect(errorCode(await me(app, token))).toBe('UNAUTHENTICATED');
    // Still dead once the in-memory entry is gone and the row is read again.
    clock.advance(DAY);
    expect(errorCode(await me(app, token))).toBe('UNAUTHENTICATED');
    // No longer listed as a working token.
    expect(await app.services.apiTokens.list(user.id)).toEqual([]);
  });
});

describe('lastUsedAt', () => {
  it('is recorded, but written at most once a minute however many requests come', async () => {
    const { accessToken } = await registerUser(app);
    const { token, apiToken } = await createApiToken(app, accessToken, { scopes: ['PROFILE_READ'] });
    const writes = vi.spyOn(rawDb(app.services).apiToken, 'update');
    try {
      for (let i = 0; i < 20; i++) expect((await me(app, token)).data.me).not.toBeNull();
      expect(writes.mock.calls.length).toBe(1);
      await vi.waitFor(async () => expect((await list(accessToken))[0]!.lastUsedAt).not.toBeNull());
      const firstUse = (await list(accessToken))[0]!.lastUsedAt;

      clock.advance(61_000);
      expect((await me(app, token)).data.me).not.toBeNull();
      expect(writes.mock.calls.length).toBe(2);
      await vi.waitFor(async () => expect((await list(accessToken)).find((t) => t.id === apiToken.id)!.lastUsedAt).not.toBe(firstUse));
      const secondUse = (await list(accessToken))[0]!.lastUsedAt!;
      expect(new Date(secondUse).getTime() - new Date(firstUse!).getTime()).toBeGreaterThanOrEqual(61_000);
    } finally {
      writes.mockRestore();
    }
  });

  it('is not written once per request when requests arrive in parallel', async () => {
    const { accessToken } = await registerUser(app);
    const { token } = await createApiToken(app, accessToken, { scopes: ['PROFILE_READ'] });
    const writes = vi.spyOn(rawDb(app.services).apiToken, 'update');
    try {
      const responses = await Promise.all(Array.from({ length: 20 }, () => me(app, token)));
      for (const response of responses) expect(response.data.me).not.toBeNull();
      // The first use is recorded (lastUsedAt was empty), once for all twenty.
      expect(writes.mock.calls.length).toBe(1);
    } finally {
      writes.mockRestore();
    }
  });
});
