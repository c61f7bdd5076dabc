import type { Database, MailKind, OutboxMailRecord, UserRecord } from '../db/database.js';
import type { ResolvedMail } from '../db/stores/mail-outbox.js';
import type { Dropped, MailContent } from '../mail/outbox-sender.js';
import type { Clock } from './clock.js';
import type { EmailFlows, EmailSettings } from './email-flows.js';
import type { EmailSecrets } from './email-secrets.js';
import { foldCase } from './validation.js';

export interface MailLinkSettings {
  /** Where each kind of link points: the app's page (APP_URL + path), which calls the mutation. */
  readonly links: Readonly<Record<Exclude<MailKind, 'email_change_notice'>, string>>;
}

const PURPOSE_OF = { verify_email: 'verify_email', reset_password: 'reset_password', confirm_email_change: 'change_email', sign_in: 'sign_in' } as const;

/**
 * The outbox sender's two questions, answered by the rules: what becomes of a mail asked for by address
 * (resolve), and what a queued mail says (compose). The sender itself knows nothing of accounts.
 */
export class EmailRequests {
  constructor(
    private readonly db: Database,
    private readonly flows: EmailFlows,
    private readonly secrets: EmailSecrets,
    private readonly settings: MailLinkSettings & Pick<EmailSettings, 'lifetimesMs'>,
    private readonly clock: Clock,
  ) {}

  /**
   * A request by address: finds the account and, in one commit, issues its token and turns the row into
   * a mail to send, or says why nothing is sent (no account, disabled, already verified). A sign-in code
   * for an address no account has still gets a token (never mailed, never redeemable), so that a wrong
   * code costs the same there as for a real account (EmailFlows.signInWithCode).
   */
  async resolve(mail: OutboxMailRecord): Promise<{ resolved: ResolvedMail } | Dropped> {
    // Found by its address key, so the account has an address (email and emailKey are set).
    const user = await this.db.users.findByEmailKey(foldCase(mail.recipient));
    const unusable = user === null ? 'no_account' : user.disabledAt !== null ? 'account_disabled' : null;
    switch (mail.kind) {
      case 'sign_in':
        if (unusable !== null) {
          await this.db.transaction((tx) => this.flows.issueIn(tx, 'sign_in', null, mail.recipient, {}));
          return { dropped: unusable };
        }
        return this.#resolveWithToken(mail, user!, { boundEmailKey: user!.emailKey! });
      case 'reset_password':
        if (unusable !== null) return { dropped: unusable };
        return this.#resolveWithToken(mail, user!, { boundCredentialsVersion: user!.credentialsVersion });
      case 'verify_email':
        if (unusable !== null) return { dropped: unusable };
        if (user!.emailVerifiedAt !== null) return { dropped: 'already_verified' };
        if (this.flows.verificationMode === 'off') return { dropped: 'verification_off' };
        return this.#resolveWithToken(mail, user!, { boundEmailKey: user!.emailKey! });
      default:
        return { dropped: 'not_a_request' };
    }
  }

  async #resolveWithToken(
    mail: OutboxMailRecord,
    user: UserRecord,
    bound: { boundEmailKey?: string; boundCredentialsVersion?: number },
  ): Promise<{ resolved: ResolvedMail }> {
    const purpose = PURPOSE_OF[mail.kind as keyof typeof PURPOSE_OF];
    // The account's own spelling of its address, not the one typed into the request.
    const recipient = user.email!;
    const resolved: ResolvedMail = await this.db.transaction(async (tx) => {
      const tokenId = await this.flows.issueIn(tx, purpose, user.id, recipient, bound);
      const mailToSend = { recipient, userId: user.id, tokenId };
      await this.db.mailOutbox.resolve(tx, mail, mailToSend);
      return mailToSend;
    });
    return { resolved };
  }

  /**
   * The content of a queued mail, with its link and code derived from the token's id (the secrets are put
   * in here, at send time, never stored). Dropped when the
   * account is gone, or the token was used, replaced by a newer one or expired before the mail went out:
   * a dead link is not worth a mail.
   */
  async compose(mail: OutboxMailRecord): Promise<MailContent | Dropped> {
    const user = mail.userId === null ? null : await this.db.users.find(mail.userId);
    if (!user) return { dropped: 'no_account' };
    const variables = JSON.parse(mail.variables) as { newEmail?: string };
    const base = { username: user.username, email: mail.recipient };
    if (mail.kind === 'email_change_notice') {
      // The notice's lifetime is the confirmation's: how long the change can still be confirmed.
      const expiresInMinutes = Math.round(this.settings.lifetimesMs.change_email / 60_000);
      return { to: mail.recipient, kind: mail.kind, variables: { ...base, newEmail: variables.newEmail ?? '', expiresInMinutes } };
    }
    const token = mail.tokenId === null ? null : await this.db.emailTokens.find(mail.tokenId);
    if (!token || token.expiresAt.getTime() <= this.clock.now()) return { dropped: 'token_ended' };
    const link = new URL(this.settings.links[mail.kind]);
    link.searchParams.set('token', this.secrets.linkToken(token.id));
    const purpose = PURPOSE_OF[mail.kind];
    return {
      to: mail.recipient,
      kind: mail.kind,
      variables: {
        ...base,
        link: link.href,
        expiresInMinutes: Math.round(this.settings.lifetimesMs[purpose] / 60_000),
        ...(mail.kind === 'sign_in' ? { code: this.secrets.code(token.id) } : {}),
        ...(mail.kind === 'confirm_email_change' ? { newEmail: token.email } : {}),
      },
    };
  }
}
