import { NO_STORE_OBSERVER, type StoreObserver } from '../observer.js';
import { LRUCache } from 'lru-cache';
import type { Change } from '../change-feed/changes.js';
import type { ChangeFeed, MirroredCache } from '../change-feed/feed.js';
import type { StoreClock } from '../clock.js';
import { isPrismaRecordGone, translateUniqueViolation } from '../errors.js';
import type { User } from '../generated/sqlite/client.js';
import { type PreparedStatements, type SqlArgument, sqliteDate } from '../prepared-statements.js';
import { cannotBeStored, type UserRole, type UserRecord } from '../records.js';
import type { Engine, StoreClient } from '../store-client.js';
import { afterCommit, prismaIn, type Transaction } from '../transaction.js';
import { searchUserIds, type UserSearch } from './user-search.js';

export type { UserSearch } from './user-search.js';

/** What registration decides; the rest (timestamps, credentials version, disabled) starts at its default. */
export type NewUser = Pick<UserRecord, 'id' | 'username' | 'usernameKey' | 'email' | 'emailKey' | 'fullname' | 'passwordHash' | 'role'> & {
  readonly emailVerifiedAt?: Date | null;
};

/** Omitted fields stay; null clears. `emailKey` goes with `email`, and a new address is not verified. */
export interface ProfileChanges {
  readonly fullname?: string | null;
  readonly email?: string | null;
  readonly emailKey?: string | null;
  readonly emailVerifiedAt?: null;
}

export interface UserPageQuery {
  readonly after?: string;
  readonly before?: string;
  readonly limit: number;
  readonly descending: boolean;
}

export interface UserStoreOptions {
  readonly cache?: { readonly maxEntries: number; readonly ttlMs: number };
  /** The SQLite prepared-statement path for a login's look-up by name; without it the look-up goes through Prisma. */
  readonly prepared?: PreparedStatements;
  readonly observer?: StoreObserver;
}

/** The role column holds only what the stores write: USER or ADMIN. */
const toRecord = (user: User): UserRecord => user as UserRecord;
const toRecordOrNull = (user: User | null): UserRecord | null => user as UserRecord | null;

/**
 * Users: every query, and the in-memory copy of rows read on every request (`me`, the admin role check).
 * Every write here drops the cached copy, inside the transaction and again once it committed, and is
 * announced on the change feed, which drops it in every other process; a read that raced a write or an
 * announcement does not cache what it saw. While the feed is not live the copy is not used at all.
 */
export class UserStore implements MirroredCache {
  readonly #cache: LRUCache<string, UserRecord>;
  /** Moves on with every write: a read that began before it must not cache its (possibly older) row. */
  #writes = 0;

  readonly #prepared: PreparedStatements | undefined;
  readonly #observer: StoreObserver;

  constructor(
    private readonly prisma: StoreClient,
    clock: StoreClock,
    /** The dialect of the admin search's statement (user-search.ts). */
    private readonly engine: Engine,
    private readonly feed: ChangeFeed,
    { cache = { maxEntries: 10_000, ttlMs: 30_000 }, prepared, observer = NO_STORE_OBSERVER }: UserStoreOptions = {},
  ) {
    this.#observer = observer;
    this.#cache = new LRUCache({ max: cache.maxEntries, ttl: cache.ttlMs, perf: { now: () => clock.monotonicMs() } });
    this.#prepared = prepared;
    feed.register(this);
  }

  /** The user, from memory when this process read it recently and the change feed is live. */
  async findCached(id: string): Promise<UserRecord | null> {
    if (!this.feed.trusted) {
      this.#observer.cacheLookup('users', 'bypass');
      return this.find(id);
    }
    const cached = this.#cache.get(id);
    this.#observer.cacheLookup('users', cached ? 'hit' : 'miss');
    if (cached) return cached;
    const writesBefore = this.#writes;
    const user = await this.find(id);
    if (user && writesBefore === this.#writes) this.#cache.set(id, user);
    return user;
  }

  /** The row as the database has it now (not from memory): for checks of credentials. */
  async find(id: string): Promise<UserRecord | null> {
    if (cannotBeStored(id)) return null;
    return toRecordOrNull(await this.prisma.user.findUnique({ where: { id } }));
  }

  /** The row as `tx` sees it. */
  async findIn(tx: Transaction, id: string): Promise<UserRecord | null> {
    if (cannotBeStored(id)) return null;
    return toRecordOrNull(await prismaIn(tx).user.findUnique({ where: { id } }));
  }

  /** The row as the database has it now (a login checks the password against it). */
  async findByUsernameKey(usernameKey: string): Promise<UserRecord | null> {
    if (cannotBeStored(usernameKey)) return null;
    if (this.#prepared?.available) return this.#preparedFind('usernameKey', usernameKey);
    return toRecordOrNull(await this.prisma.user.findUnique({ where: { usernameKey } }));
  }

  /** The row as the database has it now (a login checks the password against it). */
  async findByEmailKey(emailKey: string): Promise<UserRecord | null> {
    if (cannotBeStored(emailKey)) return null;
    if (this.#prepared?.available) return this.#preparedFind('emailKey', emailKey);
    return toRecordOrNull(await this.prisma.user.findUnique({ where: { emailKey } }));
  }

  /** The same look-up as the Prisma call beside it, as a prepared statement (prepared-statements.ts): every login makes it. */
  async #preparedFind(column: 'usernameKey' | 'emailKey', key: SqlArgument): Promise<UserRecord | null> {
    const [row] = await this.#prepared!.read<SqliteUserRow>(`SELECT ${USER_COLUMNS} FROM "User" WHERE "${column}" = ?`, [key]);
    return row ? userFromSqliteRow(row) : null;
  }

  /** The id of the user with this username key, if any; reads nothing else. */
  async idByUsernameKey(usernameKey: string): Promise<string | null> {
    if (cannotBeStored(usernameKey)) return null;
    return (await this.prisma.user.findUnique({ where: { usernameKey }, select: { id: true } }))?.id ?? null;
  }

  /** The id of the user with this email key, if any; reads nothing else. */
  async idByEmailKey(emailKey: string): Promise<string | null> {
    if (cannotBeStored(emailKey)) return null;
    return (await this.prisma.user.findUnique({ where: { emailKey }, select: { id: true } }))?.id ?? null;
  }

  /** Inserts a user. Throws UniqueConstraintError when the username or email key is taken. */
  async create(tx: Transaction, user: NewUser): Promise<UserRecord> {
    try {
      return toRecord(await prismaIn(tx).user.create({ data: user }));
    } catch (error) {
      translateUniqueViolation(error);
    }
  }

  /**
   * Changes name and email. Returns null when the user no longer exists; throws UniqueConstraintError
   * when the email key belongs to someone else.
   */
  async updateProfile(id: string, changes: ProfileChanges): Promise<UserRecord | null> {
    this.#forget(id);
    try {
      return toRecord(
        await this.feed.write(
          this.prisma,
          (client) => client.user.update({ where: { id }, data: changes }),
          () => ({ kind: 'user', id }),
        ),
      );
    } catch (error) {
      if (isPrismaRecordGone(error)) return null;
      translateUniqueViolation(error);
    } finally {
      this.#forget(id);
    }
  }

  /** Replaces the password hash if the credentials are still at `credentialsVersion`; false when they moved on. */
  async setPasswordIfCurrent(tx: Transaction, id: string, credentialsVersion: number, passwordHash: string): Promise<boolean> {
    await this.#forgetIn(tx, id);
    const { count } = await prismaIn(tx).user.updateMany({ where: { id, credentialsVersion }, data: { passwordHash } });
    return count === 1;
  }

  /**
   * Records that the user's address reached them, if it is still `emailKey` (a link sent to an address
   * the user has since replaced proves nothing about the new one). False when it changed.
   */
  async markEmailVerified(tx: Transaction, id: string, emailKey: string, at: Date): Promise<boolean> {
    await this.#forgetIn(tx, id);
    const { count } = await prismaIn(tx).user.updateMany({ where: { id, emailKey }, data: { emailVerifiedAt: at } });
    return count === 1;
  }

  /**
   * Replaces the address, verified at `verifiedAt` (the confirmation came from it), if the account is still
   * as it was when the change was asked for: address `expected.emailKey` (null: none), credentials at
   * `expected.credentialsVersion`, not disabled. False otherwise; throws UniqueConstraintError when another
   * account has the new address.
   */
  async changeEmailIfCurrent(
    tx: Transaction,
    id: string,
    expected: { emailKey: string | null; credentialsVersion: number },
    change: { email: string; emailKey: string; verifiedAt: Date },
  ): Promise<boolean> {
    await this.#forgetIn(tx, id);
    try {
      const { count } = await prismaIn(tx).user.updateMany({
        where: { id, emailKey: expected.emailKey, credentialsVersion: expected.credentialsVersion, disabledAt: null },
        data: { email: change.email, emailKey: change.emailKey, emailVerifiedAt: change.verifiedAt },
      });
      return count === 1;
    } catch (error) {
      translateUniqueViolation(error);
    }
  }

  /** Moves the credentials version on, so a login checked against the old one cannot start a session. */
  async bumpCredentialsVersion(tx: Transaction, id: string): Promise<void> {
    await this.#forgetIn(tx, id);
    // updateMany: a user deleted meanwhile is not an error here; there is nothing left to protect.
    await prismaIn(tx).user.updateMany({ where: { id }, data: { credentialsVersion: { increment: 1 } } });
  }

  async setRole(tx: Transaction, id: string, role: UserRole): Promise<UserRecord> {
    await this.#forgetIn(tx, id);
    return toRecord(await prismaIn(tx).user.update({ where: { id }, data: { role } }));
  }

  /** Disables (a date) or enables (null) the account. */
  async setDisabledAt(tx: Transaction, id: string, disabledAt: Date | null): Promise<UserRecord> {
    await this.#forgetIn(tx, id);
    return toRecord(await prismaIn(tx).user.update({ where: { id }, data: { disabledAt } }));
  }

  /** Deletes the user; their sessions and API tokens go with them (cascade). */
  async delete(tx: Transaction, id: string): Promise<void> {
    await this.#forgetIn(tx, id);
    await prismaIn(tx).user.delete({ where: { id } });
  }

  /** How many enabled administrators there are besides `id`. */
  countOtherActiveAdmins(tx: Transaction, id: string): Promise<number> {
    return prismaIn(tx).user.count({ where: { role: 'ADMIN', disabledAt: null, id: { not: id } } });
  }

  /** A page of users ordered by usernameKey, after/before the given keys. */
  async page({ after, before, limit, descending }: UserPageQuery): Promise<UserRecord[]> {
    if (cannotBeStored(after) || cannotBeStored(before)) return [];
    const users = await this.prisma.user.findMany({
      where: { usernameKey: { ...(after ? { gt: after } : {}), ...(before ? { lt: before } : {}) } },
      orderBy: { usernameKey: descending ? 'desc' : 'asc' },
      take: limit,
    });
    return users.map(toRecord);
  }

  /**
   * Like page, filtered by a literal substring of username, email or full name, looking at no more than
   * `scanLimit` users (user-search.ts): at most three statements whatever the term.
   */
  async search(query: UserSearch): Promise<{ users: UserRecord[]; resumeFrom: string | null }> {
    if (cannotBeStored(query.term) || cannotBeStored(query.after) || cannotBeStored(query.before)) return { users: [], resumeFrom: null };
    const { ids, resumeFrom } = await searchUserIds(this.prisma, this.engine, query);
    if (ids.length === 0) return { users: [], resumeFrom };
    const users = await this.prisma.user.findMany({ where: { id: { in: ids } }, orderBy: { usernameKey: query.descending ? 'desc' : 'asc' } });
    return { users: users.map(toRecord), resumeFrom };
  }

  count(): Promise<number> {
    return this.prisma.user.count();
  }

  /** For the change feed: another process changed the user (or ended their sessions or tokens). */
  forget(change: Change): void {
    if (change.kind === 'user') this.#forget(change.id);
  }

  forgetAll(): void {
    this.#writes++;
    this.#cache.clear();
  }

  #forget(id: string): void {
    this.#writes++;
    this.#cache.delete(id);
  }

  /**
   * Dropped now (reads outside the transaction wait for it) and again once it committed, and announced to
   * the other processes with the commit.
   */
  async #forgetIn(tx: Transaction, id: string): Promise<void> {
    this.#forget(id);
    afterCommit(tx, () => this.#forget(id));
    await this.feed.announceIn(tx, { kind: 'user', id });
  }
}

const USER_COLUMNS = [
  'id',
  'username',
  'usernameKey',
  'email',
  'emailKey',
  'fullname',
  'passwordHash',
  'role',
  'disabledAt',
  'credentialsVersion',
  'emailVerifiedAt',
  'createdAt',
  'updatedAt',
]
  .map((column) => `"${column}"`)
  .join(', ');

/** A User row as better-sqlite3 returns it on the adapter's connection (integers as bigint, dates as text). */
interface SqliteUserRow {
  id: string;
  username: string;
  usernameKey: string;
  email: string | null;
  emailKey: string | null;
  fullname: string | null;
  passwordHash: string;
  role: string;
  disabledAt: string | number | bigint | null;
  credentialsVersion: number | bigint;
  emailVerifiedAt: string | number | bigint | null;
  createdAt: string | number | bigint;
  updatedAt: string | number | bigint;
}

/** The record Prisma's findUnique gives for the same row (a test compares the two). */
function userFromSqliteRow(row: SqliteUserRow): UserRecord {
  return {
    id: row.id,
    username: row.username,
    usernameKey: row.usernameKey,
    email: row.email,
    emailKey: row.emailKey,
    fullname: row.fullname,
    passwordHash: row.passwordHash,
    role: row.role as UserRole,
    disabledAt: row.disabledAt === null ? null : sqliteDate(row.disabledAt),
    credentialsVersion: Number(row.credentialsVersion),
    emailVerifiedAt: row.emailVerifiedAt === null ? null : sqliteDate(row.emailVerifiedAt),
    createdAt: sqliteDate(row.createdAt),
    updatedAt: sqliteDate(row.updatedAt),
  };
}
