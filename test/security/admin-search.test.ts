import { randomUUID } from 'node:crypto';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { UserAdministration } from '../../src/auth/user-admin.js';
import { PrismaPg } from '@prisma/adapter-pg';
import { type Database, PostgresDatabase, SqliteDatabase } from '../../src/db/database.js';
import { PrismaClient as PostgresClient } from '../../src/db/generated/postgres/client.js';
import { PrismaClient } from '../../src/db/generated/sqlite/client.js';
import { isPostgresUrl } from '../../src/db/migrate.js';
import { bearer, createTestApp } from '../support/app.js';
import { createLoggedInAdmin } from '../support/accounts.js';
import { rawDb } from '../support/raw-db.js';

// The admin user search must do bounded work whatever the search string. SQL's LIKE reads % and _ as
// wildcards, so a search for "%" used to match every row in SQL and be filtered in JavaScript, one page
// of rows after another: a walk of the whole table per request. Here each statement the search sends to
// SQLite is counted through Prisma's query events, on a client of its own over the same database (file, or PostgreSQL database).

const app = await createTestApp();
const admin = await createLoggedInAdmin(app);

const ROWS = 400;
const people = Array.from({ length: ROWS }, (_, i) => {
  const n = String(i).padStart(4, '0');
  return { username: `plain${n}`, email: `plain${n}@example.com`, fullname: `Plain Person ${n}` };
});
people.push(
  { username: 'percent.fan', email: 'pf@example.com', fullname: '100% Real' },
  { username: 'under_score', email: 'us@example.com', fullname: 'Under Score' },
  { username: 'mail.under', email: 'mail_under@example.com', fullname: 'Mail Under' },
);
await rawDb(app.services).user.createMany({
  data: people.map((person) => ({
    id: randomUUID(),
    username: person.username,
    usernameKey: person.username.toLowerCase(),
    email: person.email,
    emailKey: person.email.toLowerCase(),
    fullname: person.fullname,
    passwordHash: 'not-a-hash',
  })),
});

const url = app.services.config.databaseUrl;
const settings = { sessionIdleTimeoutMs: app.services.config.sessions.idleTimeoutMs };
const log = [{ emit: 'event', level: 'query' }] as const;
let statements = 0;
const countStatement = () => {
  statements += 1;
};
let observedDb: Database;
if (isPostgresUrl(url)) {
  const observed = new PostgresClient({ adapter: new PrismaPg({ connectionString: url }), log: [...log] });
  observed.$on('query', countStatement);
  observedDb = new PostgresDatabase(observed, app.services.clock, settings);
} else {
  const observed = new PrismaClient({ adapter: new PrismaBetterSqlite3({ url }), log: [...log] });
  observed.$on('query', countStatement);
  observedDb = new SqliteDatabase(observed, app.services.clock, settings);
}
afterAll(() => observedDb.close());
const users = new UserAdministration(observedDb, app.services.sessions, app.services.apiTokens, app.services.clock);

async function search(term: string, limit = 21) {
  statements = 0;
  const page = await users.page({ limit, inverted: false, search: term });
  return { usernames: page.map((user) => user.username), statements };
}

describe('admin user search', () => {
  it('matches % and _ literally, in username, email and full name', async () => {
    expect((await search('%')).usernames).toEqual(['percent.fan']);
    const underscore = (await search('_', 100)).usernames;
    expect(underscore).toEqual(expect.arrayContaining(['under_score', 'mail.under', admin.username]));
    expect(underscore.filter((name) => name.startsWith('plain'))).toEqual([]);
    expect((await search('0% r')).usernames).toEqual(['percent.fan']);
  });

  it.each(['%', '_', '%_%', 'nothing-matches-this', 'plain0399x'])('sends a bounded number of statements for %j', async (term) => {
    const { statements: sent } = await search(term);
    // One to find at most a page of ids, one to load them; never one per page of the table.
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThanOrEqual(2);
  });

  it('still pages through a broad search in order', async () => {
    const first = await users.page({ limit: 3, inverted: false, search: 'plain' });
    expect(first.map((user) => user.username)).toEqual(['plain0000', 'plain0001', 'plain0002']);
    const next = await users.page({ limit: 3, inverted: false, search: 'plain', after: first.at(-1)!.usernameKey });
    expect(next.map((user) => user.username)).toEqual(['plain0003', 'plain0004', 'plain0005']);
    const last = await users.page({ limit: 2, inverted: true, search: 'plain' });
    expect(last.map((user) => user.username)).toEqual(['plain0399', 'plain0398']);
  });

  it('answers through the API with the literal matches only', async () => {
    const response = await app.gql(
      'query ($search: String) { users(first: 50, search: $search) { edges { node { username } } pageInfo { hasNextPage } } }',
      { search: '%' },
      bearer(admin.accessToken),
    );
    expect(response.errors).toBeUndefined();
    expect(response.data.users).toEqual({ edges: [{ node: { username: 'percent.fan' } }], pageInfo: { hasNextPage: false } });
  });
});
