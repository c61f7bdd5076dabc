import { Prisma } from '../generated/sqlite/client.js';
import type { Engine, StoreClient } from '../store-client.js';

export interface UserSearch {
  readonly after?: string;
  readonly before?: string;
  readonly limit: number;
  readonly descending: boolean;
  /** Already case-folded; matched as a literal substring. */
  readonly term: string;
}

/**
 * The ids of a page of users, ordered by usernameKey, whose usernameKey, emailKey or full name (ASCII
 * letters folded, like LIKE did) contains `term` literally. instr(), not LIKE: in LIKE, % and _ are
 * wildcards, and Prisma's `contains` does not escape them on SQLite, so a search for "%" matched every
 * row and the caller had to walk the table filtering in JavaScript. Here the SQL means what the search
 * means: one statement for at most `limit` ids (UserStore.search then loads those rows).
 */
export async function searchUserIds(
  prisma: Pick<StoreClient, '$queryRaw'>,
  engine: Engine,
  { after, before, limit, descending, term }: UserSearch,
): Promise<string[]> {
  const conditions = [engine === 'postgresql' ? containsOnPostgres(term) : containsOnSqlite(term)];
  if (after) conditions.push(Prisma.sql`"usernameKey" > ${after}`);
  if (before) conditions.push(Prisma.sql`"usernameKey" < ${before}`);
  const direction = descending ? Prisma.raw('DESC') : Prisma.raw('ASC');
  const matches = await prisma.$queryRaw<{ id: string }[]>`
    SELECT "id" FROM "User" WHERE ${Prisma.join(conditions, ' AND ')} ORDER BY "usernameKey" ${direction} LIMIT ${limit}`;
  return matches.map((match) => match.id);
}

const containsOnSqlite = (term: string) =>
  Prisma.sql`(instr("usernameKey", ${term}) > 0 OR instr(coalesce("emailKey", ''), ${term}) > 0 OR instr(lower(coalesce("fullname", '')), ${term}) > 0)`;

/**
 * strpos() is PostgreSQL's instr(): a literal substring, no wildcards. SQLite's lower() folds ASCII letters
 * only; PostgreSQL's folds by the database's locale, so a full name with non-ASCII capitals can match a
 * little more there. The CAST types the parameter, which PostgreSQL would otherwise have to infer.
 */
const containsOnPostgres = (term: string) =>
  Prisma.sql`(strpos("usernameKey", CAST(${term} AS TEXT)) > 0 OR strpos(coalesce("emailKey", ''), CAST(${term} AS TEXT)) > 0 OR strpos(lower(coalesce("fullname", '')), CAST(${term} AS TEXT)) > 0)`;
