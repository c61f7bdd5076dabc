import { Prisma, type PrismaClient } from '../generated/sqlite/client.js';

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
export async function searchUserIds(prisma: Pick<PrismaClient, '$queryRaw'>, { after, before, limit, descending, term }: UserSearch): Promise<string[]> {
  const conditions = [
    Prisma.sql`(instr("usernameKey", ${term}) > 0 OR instr(coalesce("emailKey", ''), ${term}) > 0 OR instr(lower(coalesce("fullname", '')), ${term}) > 0)`,
  ];
  if (after) conditions.push(Prisma.sql`"usernameKey" > ${after}`);
  if (before) conditions.push(Prisma.sql`"usernameKey" < ${before}`);
  const direction = descending ? Prisma.raw('DESC') : Prisma.raw('ASC');
  const matches = await prisma.$queryRaw<{ id: string }[]>`
    SELECT "id" FROM "User" WHERE ${Prisma.join(conditions, ' AND ')} ORDER BY "usernameKey" ${direction} LIMIT ${limit}`;
  return matches.map((match) => match.id);
}
