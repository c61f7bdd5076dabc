import { Prisma } from '../generated/sqlite/client.js';
import type { Engine, StoreClient } from '../store-client.js';

export interface UserSearch {
  readonly after?: string;
  readonly before?: string;
  readonly limit: number;
  readonly descending: boolean;
  /** Already case-folded; matched as a literal substring. */
  readonly term: string;
  /** At most this many users are looked at, matching or not (see searchUserIds). */
  readonly scanLimit: number;
}

export interface UserSearchIds {
  /** At most `limit` matches, in order. */
  readonly ids: string[];
  /**
   * Set when the scan stopped at `scanLimit` users with fewer than `limit` matches and more users follow:
   * the usernameKey of the last user looked at. The next page starts after (before, descending) it.
   */
  readonly resumeFrom: string | null;
}

/**
 * The ids of a page of users, ordered by usernameKey, whose usernameKey, emailKey or full name (ASCII
 * letters folded) contains `term` literally. instr() on SQLite, strpos() on PostgreSQL, not LIKE: in LIKE,
 * % and _ are wildcards, and Prisma's `contains` does not escape them on SQLite.
 *
 * No index can answer "contains", so a term that matches few users or none would make SQLite read the
 * whole table for every page. The scan is therefore a window: the next `scanLimit` users in key order
 * (an index range), of which the matches are kept. A page may then hold fewer matches than asked for,
 * with `resumeFrom` telling the caller where the next window starts. Two statements whatever the term:
 * the matches within the window, and, only when they fill no page, where the window ended.
 */
export async function searchUserIds(
  prisma: Pick<StoreClient, '$queryRaw'>,
  engine: Engine,
  { after, before, limit, descending, term, scanLimit }: UserSearch,
): Promise<UserSearchIds> {
  const range: Prisma.Sql[] = [];
  if (after) range.push(Prisma.sql`"usernameKey" > ${after}`);
  if (before) range.push(Prisma.sql`"usernameKey" < ${before}`);
  const where = range.length > 0 ? Prisma.sql`WHERE ${Prisma.join(range, ' AND ')}` : Prisma.empty;
  const direction = descending ? Prisma.raw('DESC') : Prisma.raw('ASC');
  const matches = await prisma.$queryRaw<{ id: string }[]>`
    SELECT "id" FROM (
      SELECT "id", "usernameKey", "emailKey", "fullname" FROM "User" ${where} ORDER BY "usernameKey" ${direction} LIMIT ${scanLimit}
    ) AS "scanned"
    WHERE ${engine === 'postgresql' ? containsOnPostgres(term) : containsOnSqlite(term)}
    ORDER BY "usernameKey" ${direction} LIMIT ${limit}`;
  const ids = matches.map((match) => match.id);
  if (ids.length === limit) return { ids, resumeFrom: null };
  // The window's last user, and whether any user follows it: two index entries past scanLimit - 1.
  const edge = await prisma.$queryRaw<{ usernameKey: string }[]>`
    SELECT "usernameKey" FROM "User" ${where} ORDER BY "usernameKey" ${direction} LIMIT 2 OFFSET ${scanLimit - 1}`;
  return { ids, resumeFrom: edge.length === 2 ? edge[0]!.usernameKey : null };
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
