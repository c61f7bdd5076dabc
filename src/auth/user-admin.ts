import type { Database, UserRole, Transaction, UserRecord } from '../db/database.js';
import type { ApiTokenService } from './api-tokens.js';
import { type AdminActor, assertActorMayAdminister } from './admin-actor.js';
import type { Clock } from './clock.js';
import { AuthenticationError, InvalidCredentialsError, LastAdminError, UserNotFoundError } from './errors.js';
import type { SessionService } from './sessions.js';
import { foldCase } from './validation.js';

// How long the outbox keeps a finished mail's row (what was sent when, what failed and why) for the operator.
const MAIL_RECORD_DAYS = 30;

export interface UserPage {
  readonly after?: string;
  readonly before?: string;
  readonly limit: number;
  /** Walk backwards from `before` (a "last" page). */
  readonly inverted: boolean;
}

export interface UserSearchPage {
  readonly users: UserRecord[];
  /**
   * Set when the search looked at as many users as it may per page before filling it: where the next page
   * continues (after it, or before it when inverted), although this one holds fewer than `limit` users.
   */
  readonly resumeFrom: string | null;
}

const MAX_SEARCH_LENGTH = 100;

/**
 * What administrators do to accounts. Every change that could remove the last active administrator is
 * checked inside the same transaction as the change itself (transactions behave as if run one at a time,
 * see Database.transaction), so two admins cannot demote, disable or delete each other into a system
 * nobody can administer. The same transaction checks the change's author again (admin-actor.ts): an
 * administrator demoted, disabled or logged out after their request was let in cannot complete it.
 */
export class UserAdministration {
  constructor(
    private readonly db: Database,
    private readonly sessions: SessionService,
    private readonly apiTokens: ApiTokenService,
    private readonly clock: Clock,
    /** Users one search page may look at, matching or not: what bounds a search's work (user-search.ts). */
    private readonly searchScanLimit: number,
  ) {}

  /**
   * A page of users ordered by username (case-folded): one indexed query.
   */
  page({ after, before, limit, inverted }: UserPage): Promise<UserRecord[]> {
    return this.db.users.page({ after, before, limit, descending: inverted });
  }

  /**
   * A page of users whose username, email or full name contains `search` literally, in username order.
   * Bounded whatever the term: no more than `searchScanLimit` users are looked at, so a page may hold
   * fewer matches than `limit` and say where the next one resumes. A blank term is a plain page.
   */
  async search(page: UserPage, search: string): Promise<UserSearchPage> {
    const term = foldCase(search.trim().slice(0, MAX_SEARCH_LENGTH));
    if (!term) return { users: await this.page(page), resumeFrom: null };
    const { after, before, limit, inverted } = page;
    return this.db.users.search({ after, before, limit, descending: inverted, term, scanLimit: this.searchScanLimit });
  }

  async findByUsername(username: string): Promise<UserRecord> {
    const user = await this.db.users.findByUsernameKey(foldCase(username));
    if (!user) throw new UserNotFoundError();
    return user;
  }

  /** Makes `id` an administrator or a regular user. The admin CLI passes OPERATOR; the API passes the caller. */
  async setRole(id: string, role: UserRole, actor: AdminActor): Promise<UserRecord> {
    return this.db.transaction(async (tx) => {
      await assertActorMayAdminister(this.db, tx, actor);
      const user = await this.#find(tx, id);
      if (role !== 'ADMIN') await this.#keepAnAdmin(tx, user);
      return this.db.users.setRole(tx, id, role);
    });
  }

  /** Disables the account and ends its sessions and API tokens, and any login racing it, in one commit. */
  async disable(id: string, actor: AdminActor): Promise<UserRecord> {
    return this.db.transaction(async (tx) => {
      await assertActorMayAdminister(this.db, tx, actor);
      const found = await this.#find(tx, id);
      await this.#keepAnAdmin(tx, found);
      await this.#endAccess(tx, id, 'user_disabled');
      return this.db.users.setDisabledAt(tx, id, found.disabledAt ?? new Date(this.clock.now()));
    });
  }

  /**
   * Allows login again. Nothing of the account's earlier access comes back: disabling ended every session
   * and token, and a login that raced the disable could not insert one (SessionService.startIfCurrent).
   */
  async enable(id: string, actor: AdminActor): Promise<UserRecord> {
    return this.db.transaction(async (tx) => {
      await assertActorMayAdminister(this.db, tx, actor);
      await this.#find(tx, id);
      return this.db.users.setDisabledAt(tx, id, null);
    });
  }

  /** Deletes the account with everything it owns; its tokens stop working on the next request. */
  async delete(id: string, actor: AdminActor): Promise<UserRecord> {
    return this.db.transaction(async (tx) => {
      await assertActorMayAdminister(this.db, tx, actor);
      return this.#deleteIn(tx, await this.#find(tx, id));
    });
  }

  /**
   * The owner deletes their own account, after re-entering the password (checked against credentials
   * version `verifiedVersion`). Decided inside the transaction: the caller's session must still be in
   * force, so of parallel deletions one wins and the others find their session ended; and a password
   * changed since the check refuses the old one.
   */
  async deleteOwnAccount(userId: string, sessionId: string, verifiedVersion: number): Promise<UserRecord> {
    return this.db.transaction(async (tx) => {
      if (!(await this.sessions.isInForce(tx, sessionId, userId))) throw AuthenticationError.sessionEnded();
      const found = await this.#find(tx, userId);
      if (found.credentialsVersion !== verifiedVersion) throw new InvalidCredentialsError();
      return this.#deleteIn(tx, found);
    });
  }

  /**
   * Deletes what can never be used again: ended sessions, expired or revoked API tokens, expired mailed
   * tokens, and outbox rows finished (sent, failed, dropped) more than MAIL_RECORD_DAYS ago. Returns counts.
   */
  async purge(): Promise<{ sessions: number; apiTokens: number; emailTokens: number; mails: number }> {
    return {
      sessions: await this.sessions.purgeEnded(),
      apiTokens: await this.apiTokens.purgeEnded(),
      emailTokens: await this.db.emailTokens.purgeExpired(),
      mails: await this.db.mailOutbox.purgeFinished(new Date(this.clock.now() - MAIL_RECORD_DAYS * 86_400_000)),
    };
  }

  async #deleteIn(tx: Transaction, found: UserRecord): Promise<UserRecord> {
    await this.#keepAnAdmin(tx, found);
    // Revoked before the rows go, in the same transaction: that marks the user's sessions and tokens
    // as ended in this process's caches, which a cascade delete alone would not.
    await this.#endAccess(tx, found.id, 'user_deleted');
    await this.db.users.delete(tx, found.id);
    return found;
  }

  /** Ends the user's sessions and API tokens, and bumps the credentials version so no racing login adds one. */
  async #endAccess(tx: Transaction, userId: string, reason: string): Promise<void> {
    await this.sessions.endForCredentialChange(tx, userId, reason);
    await this.apiTokens.revokeAllForUser(tx, userId);
  }

  async #find(tx: Transaction, id: string): Promise<UserRecord> {
    const user = await this.db.users.findIn(tx, id);
    if (!user) throw new UserNotFoundError();
    return user;
  }

  /** Refuses to take away the last active administrator. */
  async #keepAnAdmin(tx: Transaction, user: UserRecord): Promise<void> {
    if (user.role !== 'ADMIN' || user.disabledAt) return;
    const others = await this.db.users.countOtherActiveAdmins(tx, user.id);
    if (others === 0) throw new LastAdminError();
  }
}
