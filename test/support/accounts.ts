import Database from 'better-sqlite3';
import { expect } from 'vitest';
import { sqlitePath } from '../../src/db/client.js';
import { isPostgresUrl } from '../../src/db/migrate.js';
import { rawDb } from './raw-db.js';
import { bearer, LOGIN, registerUser, uniqueName, type GraphQLResponse, type TestApp } from './app.js';
import { OPERATOR } from '../../src/auth/admin-actor.js';

// Helpers shared by the accounts-and-administration tests.

export const USER_FIELDS = 'id username email fullname role createdAt';

/** The extensions.code of the first GraphQL error, if any. */
export function errorCode(response: GraphQLResponse<unknown>): unknown {
  return response.errors?.[0]?.extensions?.code;
}

/** Logs in and returns the AuthPayload, or the union member the login returned. */
export async function login(app: TestApp, username: string, password: string) {
  const response = await app.gql(LOGIN, { input: { username, password } });
  expect(response.errors).toBeUndefined();
  return response.data.login;
}

/** A registered (open mode) user promoted to administrator; their access token works as an admin at once. */
export async function registerAdmin(app: TestApp) {
  const registered = await registerUser(app);
  await app.services.users.setRole(registered.user.id, 'ADMIN', OPERATOR);
  return registered;
}

/** An administrator made through the service (works in any registration mode), logged in. */
export async function createLoggedInAdmin(app: TestApp) {
  const username = uniqueName('admin');
  const password = 'admin password that is long';
  const user = await app.services.accounts.createUser({ username, password }, 'ADMIN');
  const payload = await login(app, username, password);
  expect(payload.__typename).toBe('AuthPayload');
  return { username, password, user, accessToken: payload.accessToken as string, refreshToken: payload.refreshToken as string };
}

export const ME_QUERY = 'query { me { id username role } }';

export async function me(app: TestApp, token: string) {
  return app.gql(ME_QUERY, {}, bearer(token));
}

export const CREATE_API_TOKEN = /* GraphQL */ `
  mutation Create($input: CreateApiTokenInput!) {
    createApiToken(input: $input) {
      __typename
      ... on ApiTokenCreated { token apiToken { id name scopes createdAt expiresAt lastUsedAt } }
      ... on ValidationError { code message fieldErrors { field message } }
    }
  }
`;

/** Creates an API token through the API with the given session access token; fails the test otherwise. */
export async function createApiToken(app: TestApp, accessToken: string, input: { name?: string; scopes: string[]; expiresInDays?: number | null }) {
  const response = await app.gql(CREATE_API_TOKEN, { input: { name: input.name ?? 'script', ...input } }, bearer(accessToken));
  expect(response.errors).toBeUndefined();
  expect(response.data.createApiToken.__typename).toBe('ApiTokenCreated');
  return response.data.createApiToken as {
    token: string;
    apiToken: { id: string; name: string; scopes: string[]; expiresAt: string | null; lastUsedAt: string | null };
  };
}

/**
 * Reads raw rows the way someone holding the database would: the SQLite file read-only, or on PostgreSQL
 * (TEST_DATABASE=postgres) the same query through the raw client. Write the SQL in SQLite's spelling
 * (bare camelCase names, ? placeholders); for PostgreSQL the table and camelCase column names are quoted
 * and the placeholders numbered.
 */
export async function readTable(app: TestApp, sql: string, ...params: unknown[]): Promise<Record<string, unknown>[]> {
  if (isPostgresUrl(app.services.config.databaseUrl)) {
    let n = 0;
    const postgresSql = sql.replace(/(?<!")\b(User|Session|ApiToken|[a-z]+[A-Z][A-Za-z]*)\b(?!")/g, '"$1"').replace(/\?/g, () => `$${++n}`);
    return rawDb(app.services).$queryRawUnsafe<Record<string, unknown>[]>(postgresSql, ...params);
  }
  const raw = new Database(sqlitePath(app.services.config.databaseUrl), { readonly: true });
  try {
    return raw.prepare(sql).all(...params) as Record<string, unknown>[];
  } finally {
    raw.close();
  }
}
