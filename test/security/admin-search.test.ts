import { randomUUID } from 'node:crypto';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { UserAdministration } from '../../src/auth/user-admin.js';
import { PrismaPg } from '@prisma/adapter-pg';
import { type Database, PostgresDatabase, SqliteDatabase } from '../../src/db/database.js';
import { PrismaClient as PostgresClient } from '../../src/db/generated/postgres/client.js';
import { PrismaClient } from '../../src/db/generated/sqlite/client.js';
import { isPostgresUrl } from '../../src/db/migrate.js';
import { bearer, createTestApp, type GraphQLResponse } from '../support/app.js';
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
const settings = { url, sessionIdleTimeoutMs: app.services.config.sessions.idleTimeoutMs };
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
const SCAN_LIMIT = 100;
const users = new UserAdministration(observedDb, app.services.sessions, app.services.apiTokens, app.services.clock, SCAN_LIMIT);

/** The usernameKey at a position of the whole table in key order, as the database has it. */
async function keyAt(target: typeof app, offset: number): Promise<string> {
  const [row] = await rawDb(target.services).user.findMany({ orderBy: { usernameKey: 'asc' }, skip: offset, take: 1, select: { usernameKey: true } });
  return row!.usernameKey;
}

/** Every match of `term`, following the search page by page as a client would; statements per page. */
async function search(term: string, limit = 21) {
  const usernames: string[] = [];
  const perPage: number[] = [];
  let after: string | undefined;
  for (;;) {
    statements = 0;
    const { users: found, resumeFrom } = await users.search({ limit, inverted: false, after }, term);
    perPage.push(statements);
    usernames.push(...found.map((user) => user.username));
    after = resumeFrom ?? (found.length === limit ? found.at(-1)!.usernameKey : undefined);
    if (after === undefined) return { usernames, perPage };
  }
}

describe('admin user search', () => {
  it('matches % and _ literally, in username, email and full name', async () => {
    expect((await search('%')).usernames).toEqual(['percent.fan']);
    const underscore = (await search('_', 100)).usernames;
    expect(underscore).toEqual(expect.arrayContaining(['under_score', 'mail.under', admin.username]));
    expect(underscore.filter((name) => name.startsWith('plain'))).toEqual([]);
    expect((await search('0% r')).usernames).toEqual(['percent.fan']);
  });

  it.each(['%', '_', '%_%', 'nothing-matches-this', 'plain0399x'])('looks at no more than the scan limit per page for %j', async (term) => {
    const { perPage } = await search(term);
    // Per page: the matches within a window of SCAN_LIMIT users, where that window ended, the rows; never
    // one statement per stretch of the table, and never more windows than the table has.
    for (const sent of perPage) {
      expect(sent).toBeGreaterThan(0);
      expect(sent).toBeLessThanOrEqual(3);
    }
    expect(perPage.length).toBeLessThanOrEqual(Math.ceil((ROWS + 4) / SCAN_LIMIT));
  });

  it('reads no row beyond the scan limit in one page: a term that matches nothing stops after one window', async () => {
    statements = 0;
    const { users: found, resumeFrom } = await users.search({ limit: 21, inverted: false }, 'nothing-matches-this');
    expect(found).toEqual([]);
    // The next window starts after the 100th user in key order.
    expect(resumeFrom).toBe(await keyAt(app, SCAN_LIMIT - 1));
  });

  it('still pages through a broad search in order', async () => {
    const first = await users.search({ limit: 3, inverted: false }, 'plain');
    expect(first.users.map((user) => user.username)).toEqual(['plain0000', 'plain0001', 'plain0002']);
    const next = await users.search({ limit: 3, inverted: false, after: first.users.at(-1)!.usernameKey }, 'plain');
    expect(next.users.map((user) => user.username)).toEqual(['plain0003', 'plain0004', 'plain0005']);
    const last = await users.search({ limit: 2, inverted: true }, 'plain');
    expect(last.users.map((user) => user.username)).toEqual(['plain0399', 'plain0398']);
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

describe('admin user search through the API, with a small scan limit', () => {
  it('answers partial pages with hasNextPage and an endCursor that continues the search, and finds every match', async () => {
    const small = await createTestApp({ ADMIN_SEARCH_SCAN_LIMIT: '100' });
    const smallAdmin = await createLoggedInAdmin(small);
    await rawDb(small.services).user.createMany({
      data: Array.from({ length: 250 }, (_, i) => {
        const name = `filler${String(i).padStart(4, '0')}`;
        return { id: randomUUID(), username: name, usernameKey: name, fullname: i === 240 ? 'Needle In Haystack' : null, passwordHash: 'not-a-hash' };
      }),
    });
    const query =
      'query ($search: String, $after: String) { users(first: 5, search: $search, after: $after) { edges { node { username } } pageInfo { hasNextPage endCursor } } }';
    const pages: { edges: { node: { username: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } }[] = [];
    let after: string | null = null;
    do {
      const response: GraphQLResponse<any> = await small.gql(query, { search: 'needle', after }, bearer(smallAdmin.accessToken));
      expect(response.errors).toBeUndefined();
      pages.push(response.data.users);
      after = response.data.users.pageInfo.hasNextPage ? response.data.users.pageInfo.endCursor : null;
    } while (after !== null && pages.length < 10);
    // 251 users in windows of 100: two empty pages that say where to go on, then the match.
    expect(pages.map((page) => page.edges.map((edge) => edge.node.username))).toEqual([[], [], ['filler0240']]);
    expect(pages[0]!.pageInfo).toEqual({ hasNextPage: true, endCursor: await keyAt(small, 99) });
    expect(pages.at(-1)!.pageInfo.hasNextPage).toBe(false);
  });
});
