import type { Database, UserRecord } from '../db/client.js';
import type { Role } from './accounts.js';
import type { ApiTokenService } from './api-tokens.js';
import type { Clock } from './clock.js';
import { LastAdminError, UserNotFoundError } from './errors.js';
import type { SessionService } from './sessions.js';
import type { UserCache } from './user-cache.js';
import { foldCase } from './validation.js';

type Transaction = Parameters<Parameters<Database['$transaction']>[0]>[0];

export interface UserPage {
  readonly after?: string;
  readonly before?: string;
  readonly limit: number;
  /** Walk backwards from `before` (a "last" page). */
  readonly inverted: boolean;
  readonly search?: string | null;
}

const MAX_SEARCH_LENGTH = 100;

function containsLiterally(user: UserRecord, term: string): boolean {
  return user.usernameKey.includes(term) || (user.emailKey?.includes(term) ?? false) || (user.fullname?.toLowerCase().includes(term) ?? false);
}

/**
 * What administrators do to accounts. Every change that could remove the last active administrator is
 * checked inside the same transaction as the change itself (transactions run one at a time, see
 * db/serialized-adapter.ts), so two admins cannot demote, disable or delete each other into a system
 * nobody can administer.
 */
export class UserAdministration {
  constructor(
    private readonly db: Database,
    private readonly sessions: SessionService,
    private readonly apiTokens: ApiTokenService,
    private readonly clock: Clock,
    private readonly users: UserCache,
  ) {}

  /** A page of users ordered by username (case-folded), optionally filtered by a substring. */
  async page({ after, before, limit, inverted, search }: UserPage): Promise<UserRecord[]> {
    const term = search ? foldCase(search.trim().slice(0, MAX_SEARCH_LENGTH)) : '';
    // SQL's LIKE (what `contains` becomes) reads _ and % as wildcards, and _ is allowed in usernames: the
    // query only narrows the candidates, and the literal substring test below decides.
    const narrowing = term ? { OR: [{ usernameKey: { contains: term } }, { emailKey: { contains: term } }, { fullname: { contains: term } }] } : {};
    const matches: UserRecord[] = [];
    let range = { after, before };
    for (;;) {
      const batch = await this.db.user.findMany({
        where: { ...narrowing, usernameKey: { ...(range.after ? { gt: range.after } : {}), ...(range.before ? { lt: range.before } : {}) } },
        orderBy: { usernameKey: inverted ? 'desc' : 'asc' },
        take: limit,
      });
      matches.push(...batch.filter((user) => !term || containsLiterally(user, term)));
      if (matches.length >= limit || batch.length < limit) return matches.slice(0, limit);
      const last = batch.at(-1)!.usernameKey;
      range = inverted ? { after, before: last } : { after: last, before };
    }
  }

  async findByUsername(username: string): Promise<UserRecord> {
    const user = await this.db.user.findUnique({ where: { usernameKey: foldCase(username) } });
    if (!user) throw new UserNotFoundError();
    return user;
  }

  async setRole(id: string, role: Role): Promise<UserRecord> {
    return this.db.$transaction(async (tx) => {
      const user = await this.#find(tx, id);
      if (role !== 'ADMIN') await this.#keepAnAdmin(tx, user);
      // Reads of the row wait for this transaction, so nothing can cache the old role meanwhile.
      this.users.forget(id);
      return tx.user.update({ where: { id }, data: { role } });
    });
  }

  /** Disables the account and ends its sessions and API tokens at once. */
  async disable(id: string): Promise<UserRecord> {
    return this.db.$transaction(async (tx) => {
      const found = await this.#find(tx, id);
      await this.#keepAnAdmin(tx, found);
      this.users.forget(id);
      await this.#endAccess(tx, id, 'user_disabled');
      return found.disabledAt ? found : tx.user.update({ where: { id }, data: { disabledAt: new Date(this.clock.now()) } });
    });
  }

  async enable(id: string): Promise<UserRecord> {
    await this.#find(this.db, id);
    const user = await this.db.user.update({ where: { id }, data: { disabledAt: null } });
    this.users.forget(id);
    return user;
  }

  /** Deletes the account with everything it owns; its tokens stop working on the next request. */
  async delete(id: string): Promise<UserRecord> {
    return this.db.$transaction(async (tx) => {
      const found = await this.#find(tx, id);
      await this.#keepAnAdmin(tx, found);
      // Revoked before the rows go, in the same transaction: that marks the user's sessions and tokens
      // as ended in this process's caches, which a cascade delete alone would not.
      await this.#endAccess(tx, id, 'user_deleted');
      await tx.user.delete({ where: { id } });
      this.users.forget(id);
      return found;
    });
  }

  /** Deletes expired and revoked sessions and API tokens; returns how many rows went. */
  async purge(): Promise<{ sessions: number; apiTokens: number }> {
    return { sessions: await this.sessions.purgeEnded(), apiTokens: await this.apiTokens.purgeEnded() };
  }

  async #endAccess(tx: Transaction, userId: string, reason: string): Promise<void> {
    await this.sessions.revokeAllForUser(userId, reason, undefined, tx);
    await this.apiTokens.revokeAllForUser(userId, tx);
  }

  async #find(db: Pick<Database, 'user'>, id: string): Promise<UserRecord> {
    const user = await db.user.findUnique({ where: { id } });
    if (!user) throw new UserNotFoundError();
    return user;
  }

  /** Refuses to take away the last active administrator. */
  async #keepAnAdmin(tx: Transaction, user: UserRecord): Promise<void> {
    if (user.role !== 'ADMIN' || user.disabledAt) return;
    const others = await tx.user.count({ where: { role: 'ADMIN', disabledAt: null, id: { not: user.id } } });
    if (others === 0) throw new LastAdminError();
  }
}
