import type { Database, UserRecord } from './client.js';
import { Prisma } from './generated/sqlite/client.js';

export interface UserSearch {
  readonly after?: string;
  readonly before?: string;
  readonly limit: number;
  readonly descending: boolean;
  /** Already case-folded; matched as a literal substring. */
  readonly term: string;
}

/**
 * A page of users, ordered by usernameKey, whose usernameKey, emailKey or full name (ASCII letters folded,
 * like LIKE did) contains `term` literally. instr(), not LIKE: in LIKE, % and _ are wildcards, and Prisma's
 * `contains` does not escape them on SQLite, so a search for "%" matched every row and the caller had to
 * walk the table filtering in JavaScript. Here the SQL means what the search means, and each page is two
 * statements whatever the term: the ids of at most `limit` matches, then those rows.
 */
export async function searchUsers(db: Database, { after, before, limit, descending, term }: UserSearch): Promise<UserRecord[]> {
  const conditions = [
    Prisma.sql`(instr("usernameKey", ${term}) > 0 OR instr(coalesce("emailKey", ''), ${term}) > 0 OR instr(lower(coalesce("fullname", '')), ${term}) > 0)`,
  ];
  if (after) conditions.push(Prisma.sql`"usernameKey" > ${after}`);
  if (before) conditions.push(Prisma.sql`"usernameKey" < ${before}`);
  const direction = descending ? Prisma.raw('DESC') : Prisma.raw('ASC');
  const matches = await db.$queryRaw<{ id: string }[]>`
    SELECT "id" FROM "User" WHERE ${Prisma.join(conditions, ' AND ')} ORDER BY "usernameKey" ${direction} LIMIT ${limit}`;
  if (matches.length === 0) return [];
  return db.user.findMany({ where: { id: { in: matches.map((match) => match.id) } }, orderBy: { usernameKey: descending ? 'desc' : 'asc' } });
}
