import type { StoreClock } from '../clock.js';
import { cannotBeStored, type EmailTokenPurpose, type EmailTokenRecord } from '../records.js';
import type { StoreClient } from '../store-client.js';
import { prismaIn, type Transaction } from '../transaction.js';

export type NewEmailToken = Omit<EmailTokenRecord, 'failedAttempts'>;

const toRecord = (row: unknown): EmailTokenRecord => row as EmailTokenRecord;

/**
 * Single-use secrets sent by mail (src/auth/email-flows.ts has the rules). Nothing here is cached, so
 * nothing needs announcing: every use reads the row, and using one up is a conditional delete inside the
 * transaction that applies its effect, so of two racing redemptions exactly one commits.
 */
export class EmailTokenStore {
  constructor(
    private readonly prisma: StoreClient,
    private readonly clock: StoreClock,
  ) {}

  /**
   * Inserts `token` and ends every earlier one of the same purpose for the same account (or, for an
   * address without an account, the same address): only the newest mail works.
   */
  async issue(tx: Transaction, token: NewEmailToken): Promise<void> {
    const prisma = prismaIn(tx);
    await prisma.emailToken.deleteMany({
      where: token.userId === null ? { userId: null, purpose: token.purpose, emailKey: token.emailKey } : { userId: token.userId, purpose: token.purpose },
    });
    await prisma.emailToken.create({ data: token });
  }

  async find(id: string): Promise<EmailTokenRecord | null> {
    if (cannotBeStored(id)) return null;
    return toRecord(await this.prisma.emailToken.findUnique({ where: { id } })) ?? null;
  }

  /** The token whose link secret hashes to `secretHash`, used or not expired yet or not; null when none. */
  async findBySecretHash(secretHash: string): Promise<EmailTokenRecord | null> {
    if (cannotBeStored(secretHash)) return null;
    return toRecord(await this.prisma.emailToken.findUnique({ where: { secretHash } })) ?? null;
  }

  /** The newest token of `purpose` sent to the address (a typed code names the address, not the token). */
  async findNewestFor(purpose: EmailTokenPurpose, emailKey: string): Promise<EmailTokenRecord | null> {
    if (cannotBeStored(emailKey)) return null;
    return toRecord(await this.prisma.emailToken.findFirst({ where: { purpose, emailKey }, orderBy: { createdAt: 'desc' } })) ?? null;
  }

  /**
   * Counts one try of the token's code before it is compared, in one statement (so parallel tries cannot
   * overrun the limit). False when the token already had `maxTries` (it is dead) or is gone.
   */
  async chargeTry(id: string, maxTries: number): Promise<boolean> {
    const { count } = await this.prisma.emailToken.updateMany({ where: { id, failedAttempts: { lt: maxTries } }, data: { failedAttempts: { increment: 1 } } });
    return count === 1;
  }

  /**
   * Uses the token up, inside the transaction that applies what it proves: true when it was still there
   * and not expired. A rollback leaves it usable.
   */
  async consume(tx: Transaction, id: string): Promise<boolean> {
    const { count } = await prismaIn(tx).emailToken.deleteMany({ where: { id, expiresAt: { gt: new Date(this.clock.now()) } } });
    return count === 1;
  }

  /** Ends every outstanding token of the user of these purposes (e.g. the recovery links once the password changed). */
  async endForUser(tx: Transaction, userId: string, purposes: readonly EmailTokenPurpose[]): Promise<void> {
    await prismaIn(tx).emailToken.deleteMany({ where: { userId, purpose: { in: [...purposes] } } });
  }

  /** Deletes expired tokens; returns how many. */
  async purgeExpired(): Promise<number> {
    const { count } = await this.prisma.emailToken.deleteMany({ where: { expiresAt: { lte: new Date(this.clock.now()) } } });
    return count;
  }
}
