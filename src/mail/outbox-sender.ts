import type { StoreClock } from '../db/clock.js';
import type { MailKind, OutboxMailRecord } from '../db/database.js';
import { LeaseLostError, type MailOutboxStore, type ResolvedMail } from '../db/stores/mail-outbox.js';
import type { Logger } from '../logger.js';
import type { MailTemplates, MailVariables } from './templates.js';
import { MailSendError, type MailTransport } from './transport.js';

export type Dropped = { readonly dropped: string };

/** A mail's content before the template: who gets it and the variables (secrets included, never stored). */
export interface MailContent {
  readonly to: string;
  readonly kind: MailKind;
  readonly variables: Omit<MailVariables, 'productName' | 'appUrl'>;
}

/** What the sender asks of the rules (src/auth/email-requests.ts); it knows nothing of accounts itself. */
export interface OutboxSteps {
  /** A mail asked for by address: becomes a mail to an account, or is dropped (no such account…). */
  resolve(mail: OutboxMailRecord): Promise<{ resolved: ResolvedMail } | Dropped>;
  /** What a queued mail says, or why it is no longer worth sending. */
  compose(mail: OutboxMailRecord): Promise<MailContent | Dropped>;
}

/** Told each delivery outcome (the wiring passes the metrics here). */
export interface MailDeliveryObserver {
  mailOutcome(outcome: 'sent' | 'retry' | 'failed' | 'dropped'): void;
}

export interface OutboxSenderSettings {
  readonly from: string;
  readonly productName: string;
  readonly appUrl: string;
  /** How often the outbox is looked at for mail queued by other processes or due for a retry. */
  readonly pollIntervalMs: number;
  /** Attempts before a mail is marked failed. */
  readonly maxAttempts: number;
  /** Wait after the first failed attempt; doubled after each further one, up to retryMaxMs. */
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
}

// Rows taken per look. A claim lasts far longer than one delivery can (SMTP timeouts are ~10 s each), so
// a row is only ever taken over from a sender that died.
const BATCH_SIZE = 10;
const LEASE_MS = 120_000;

/**
 * Delivers the outbox: takes due rows (with a lease, so instances share the work), resolves requests,
 * renders and sends, and records the outcome. A failed attempt is retried with exponential backoff (and
 * jitter, so instances do not retry in step); after maxAttempts the mail is marked failed and logged.
 * Delivery is at least once: a process that dies after the SMTP server took a mail but before it was
 * marked sent leaves it to be sent again when its lease ends. Nothing here waits on a request: the API
 * answers once the row is committed.
 */
export class OutboxSender {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(
    private readonly outbox: MailOutboxStore,
    private readonly transport: MailTransport,
    private readonly templates: MailTemplates,
    private readonly steps: OutboxSteps,
    /** Wall-clock time for the stored next-attempt times (the auth services' clock). */
    private readonly clock: Pick<StoreClock, 'now'>,
    private readonly log: Logger,
    private readonly settings: OutboxSenderSettings,
    private readonly observer?: MailDeliveryObserver,
  ) {}

  /** Starts looking at the outbox now and every pollIntervalMs (pending mail of a previous run included). */
  start(): void {
    this.#timer = setInterval(() => this.wake(), this.settings.pollIntervalMs);
    this.#timer.unref();
    this.wake();
  }

  /** Looks at the outbox soon (a mail was just queued here). */
  wake(): void {
    // Not started (the admin CLI queues mail but leaves delivery to the servers), or stopped.
    if (this.#stopped || this.#timer === undefined) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#drain().finally(() => {
      this.#running = undefined;
    });
  }

  /** Stops looking and waits for the deliveries under way (their rows are recorded before it resolves). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
    await this.transport.close();
  }

  async #drain(): Promise<void> {
    do {
      this.#again = false;
      let batch: OutboxMailRecord[];
      try {
        batch = await this.outbox.claimDue(BATCH_SIZE, LEASE_MS);
      } catch (error) {
        // The database is unreachable: the next poll tries again; the rows are safe where they are.
        this.log.warn({ component: 'mail', err: error }, 'could not read the mail outbox');
        return;
      }
      await Promise.all(batch.map((mail) => this.#deliver(mail)));
      if (batch.length === BATCH_SIZE) this.#again = true;
    } while (this.#again && !this.#stopped);
  }

  async #deliver(claimed: OutboxMailRecord): Promise<void> {
    const event = { component: 'mail', mailId: claimed.id, kind: claimed.kind };
    let mail = claimed;
    let sent = false;
    try {
      if (mail.state === 'requested') {
        const outcome = await this.steps.resolve(mail);
        if ('dropped' in outcome) return await this.#drop(mail, outcome.dropped, 'mail_request');
        const { recipient, userId, tokenId, variables } = outcome.resolved;
        mail = { ...mail, recipient, userId, tokenId, variables: JSON.stringify(variables ?? {}), state: 'pending' };
        this.log.info({ ...event, event: 'mail_request', outcome: 'queued', userId: mail.userId }, 'mail request: queued');
      }
      const content = await this.steps.compose(mail);
      if ('dropped' in content) return await this.#drop(mail, content.dropped, 'mail_send');
      const rendered = this.templates.render(content.kind, { ...content.variables, productName: this.settings.productName, appUrl: this.settings.appUrl });
      await this.transport.send({ id: mail.id, to: content.to, from: this.settings.from, ...rendered, link: content.variables.link });
      sent = true;
      await this.#recorded(mail, this.outbox.finish(mail, 'sent', null, mail.attempts + 1));
      this.observer?.mailOutcome('sent');
      this.log.info({ ...event, event: 'mail_send', outcome: 'sent', userId: mail.userId, attempt: mail.attempts + 1 }, 'mail sent');
    } catch (error) {
      if (error instanceof LeaseLostError) return this.#leaseLost(mail);
      if (sent) {
        // Delivered, but not recorded: it will be sent again once the lease ends (at least once).
        this.log.error({ ...event, event: 'mail_send', outcome: 'sent_unrecorded', err: error }, 'mail sent but not recorded; it may be sent twice');
        return;
      }
      await this.#failed(mail, error);
    }
  }

  /** Whether a write under the claim applied; when the claim was lost, says so (the other sender has the row). */
  async #recorded(mail: OutboxMailRecord, write: Promise<boolean>): Promise<boolean> {
    if (await write) return true;
    this.#leaseLost(mail);
    return false;
  }

  #leaseLost(mail: OutboxMailRecord): void {
    this.log.warn(
      { component: 'mail', event: 'mail_send', mailId: mail.id, kind: mail.kind, outcome: 'lease_lost' },
      'outbox row taken over by another sender; its outcome is theirs to record',
    );
  }

  async #drop(mail: OutboxMailRecord, reason: string, event: string): Promise<void> {
    if (!(await this.#recorded(mail, this.outbox.finish(mail, 'dropped', reason)))) return;
    this.observer?.mailOutcome('dropped');
    this.log.info({ component: 'mail', event, mailId: mail.id, kind: mail.kind, outcome: `dropped:${reason}`, userId: mail.userId }, `mail dropped: ${reason}`);
  }

  async #failed(mail: OutboxMailRecord, error: unknown): Promise<void> {
    const attempts = mail.attempts + 1;
    // The transport's message (connection refused, the server's reply); never the mail, which holds the token.
    const reason = error instanceof Error ? error.message : String(error);
    const event = { component: 'mail', event: 'mail_send', mailId: mail.id, kind: mail.kind, userId: mail.userId, attempt: attempts, reason };
    try {
      // A permanent refusal (5xx: no such mailbox, message refused) will not change by retrying.
      const permanent = error instanceof MailSendError && error.permanent;
      if (permanent || attempts >= this.settings.maxAttempts) {
        if (!(await this.#recorded(mail, this.outbox.finish(mail, 'failed', reason, attempts)))) return;
        this.observer?.mailOutcome('failed');
        this.log.error(
          { ...event, outcome: 'failed', permanent },
          permanent ? 'mail refused by the SMTP server; not retried' : `mail failed after ${attempts} attempts; not retried`,
        );
        return;
      }
      const delay = Math.min(this.settings.retryMaxMs, this.settings.retryBaseMs * 2 ** (attempts - 1)) * (0.8 + Math.random() * 0.4);
      if (!(await this.#recorded(mail, this.outbox.retryLater(mail, attempts, new Date(this.clock.now() + delay), reason)))) return;
      this.observer?.mailOutcome('retry');
      this.log.warn({ ...event, outcome: 'retry', retryInMs: Math.round(delay) }, 'mail not sent; will retry');
    } catch (recordError) {
      // Could not even record the failure (database down): the lease runs out and the row is tried again.
      this.log.error({ ...event, outcome: 'unrecorded', err: recordError }, 'mail not sent, and the failure could not be recorded');
    }
  }
}
