import type { StoreClock } from '../clock.js';
import type { MailKind, MailState, OutboxMailRecord } from '../records.js';
import type { StoreClient } from '../store-client.js';
import { prismaIn, type Transaction } from '../transaction.js';

export interface NewOutboxMail {
  readonly id: string;
  readonly kind: MailKind;
  readonly recipient: string;
  readonly userId: string | null;
  readonly tokenId: string | null;
  /** The template's non-secret variables. */
  readonly variables?: Readonly<Record<string, string>>;
}

/** What a sender decided about a requested mail once it looked the address up. */
export interface ResolvedMail {
  readonly recipient: string;
  readonly userId: string;
  readonly tokenId: string | null;
  readonly variables?: Readonly<Record<string, string>>;
}

const WAITING: MailState[] = ['requested', 'pending'];

/** A row as a sender claimed it: its writes apply only while that claim still holds (see `held`). */
export type OutboxClaim = Pick<OutboxMailRecord, 'id' | 'claimedUntil'>;

/**
 * The row, only while it is still held by this claim. A sender that stalled past its lease (and whose row
 * another sender took over) must not overwrite what the other one recorded: its writes then match nothing.
 */
const held = (claim: OutboxClaim) => ({ id: claim.id, claimedUntil: claim.claimedUntil });

/** The claim on a row ran out and another sender holds it now; the work done under it is to be dropped. */
export class LeaseLostError extends Error {
  constructor() {
    super('the claim on the outbox row ran out; another sender holds it');
  }
}
const toRecord = (row: unknown): OutboxMailRecord => row as OutboxMailRecord;
// lastError is for the operator; bounded so a chatty SMTP server cannot grow rows without limit.
const MAX_ERROR_LENGTH = 500;

/**
 * The mail outbox: rows written in the same transaction as what they announce, taken by senders with a
 * lease (claim) so that several processes share the work without sending a row twice while its lease
 * runs, and so that a sender that died leaves its rows to the others once the lease ran out.
 */
export class MailOutboxStore {
  constructor(
    private readonly prisma: StoreClient,
    private readonly clock: StoreClock,
  ) {}

  /** Queues a mail ready to send, inside the transaction that made what it carries. */
  async add(tx: Transaction, mail: NewOutboxMail): Promise<void> {
    await prismaIn(tx).mailOutbox.create({ data: this.#row(mail, 'pending') });
  }

  /**
   * Queues a mail asked for by address alone (reset, sign-in code, verification resend), to be resolved
   * by a sender: one insert, whatever the address, so the answer takes the same time for every address.
   */
  async addRequest(mail: Omit<NewOutboxMail, 'userId' | 'tokenId'>): Promise<void> {
    await this.prisma.mailOutbox.create({ data: this.#row({ ...mail, userId: null, tokenId: null }, 'requested') });
  }

  #row(mail: NewOutboxMail, state: MailState) {
    const now = new Date(this.clock.now());
    return {
      id: mail.id,
      kind: mail.kind,
      state,
      recipient: mail.recipient,
      userId: mail.userId,
      tokenId: mail.tokenId,
      variables: JSON.stringify(mail.variables ?? {}),
      nextAttemptAt: now,
      createdAt: now,
    };
  }

  /**
   * Takes up to `limit` rows that are due and not held by another sender, holding each for `leaseMs`.
   * Each claim is a conditional update, so two senders racing for a row cannot both get it.
   */
  async claimDue(limit: number, leaseMs: number): Promise<OutboxMailRecord[]> {
    const now = new Date(this.clock.now());
    const free = { OR: [{ claimedUntil: null }, { claimedUntil: { lte: now } }] };
    const due = await this.prisma.mailOutbox.findMany({
      where: { state: { in: WAITING }, nextAttemptAt: { lte: now }, ...free },
      orderBy: { nextAttemptAt: 'asc' },
      take: limit,
      select: { id: true },
    });
    const claimedUntil = new Date(now.getTime() + leaseMs);
    const claimed: OutboxMailRecord[] = [];
    for (const { id } of due) {
      const { count } = await this.prisma.mailOutbox.updateMany({ where: { id, state: { in: WAITING }, ...free }, data: { claimedUntil } });
      if (count === 1) {
        const row = await this.prisma.mailOutbox.findUnique({ where: { id } });
        if (row) claimed.push(toRecord(row));
      }
    }
    return claimed;
  }

  /**
   * A requested mail found its account: it becomes a mail ready to send, still held by the caller. Throws
   * LeaseLostError (rolling `tx` back) when the caller's claim ran out and another sender took the row.
   */
  async resolve(tx: Transaction, claim: OutboxClaim, resolved: ResolvedMail): Promise<void> {
    const { count } = await prismaIn(tx).mailOutbox.updateMany({
      where: held(claim),
      data: {
        state: 'pending',
        recipient: resolved.recipient,
        userId: resolved.userId,
        tokenId: resolved.tokenId,
        variables: JSON.stringify(resolved.variables ?? {}),
      },
    });
    if (count !== 1) throw new LeaseLostError();
  }

  /**
   * Done with the row: delivered, given up, or not to be sent (e.g. no account has the address). `attempts`,
   * when the row ends with a delivery attempt (sent, failed), counts that last attempt too: only retryLater
   * recorded attempts before, so a mail failed after 2 attempts read 1.
   */
  async finish(claim: OutboxClaim, state: 'sent' | 'failed' | 'dropped', reason: string | null = null, attempts?: number): Promise<boolean> {
    const { count } = await this.prisma.mailOutbox.updateMany({
      where: held(claim),
      data: {
        state,
        claimedUntil: null,
        finishedAt: new Date(this.clock.now()),
        lastError: reason?.slice(0, MAX_ERROR_LENGTH) ?? null,
        ...(attempts === undefined ? {} : { attempts }),
      },
    });
    return count === 1;
  }

  /** The attempt failed: released, to be tried again at `nextAttemptAt`. False when the claim was lost. */
  async retryLater(claim: OutboxClaim, attempts: number, nextAttemptAt: Date, reason: string): Promise<boolean> {
    const { count } = await this.prisma.mailOutbox.updateMany({
      where: held(claim),
      data: { attempts, nextAttemptAt, claimedUntil: null, lastError: reason.slice(0, MAX_ERROR_LENGTH) },
    });
    return count === 1;
  }

  /** How many mails wait to be sent (requested or pending). */
  countWaiting(): Promise<number> {
    return this.prisma.mailOutbox.count({ where: { state: { in: WAITING } } });
  }

  /** Deletes rows finished before `before`; returns how many. */
  async purgeFinished(before: Date): Promise<number> {
    const { count } = await this.prisma.mailOutbox.deleteMany({ where: { state: { in: ['sent', 'failed', 'dropped'] }, finishedAt: { lt: before } } });
    return count;
  }
}
