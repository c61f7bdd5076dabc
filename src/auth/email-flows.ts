import { randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Database, EmailTokenPurpose, EmailTokenRecord, Transaction, UserRecord } from '../db/database.js';
import { UniqueConstraintError } from '../db/errors.js';
import type { AccessTokenService } from './access-tokens.js';
import { type AuthResult, authResultFor } from './accounts.js';
import type { Clock } from './clock.js';
import type { EmailSecrets } from './email-secrets.js';
import { AccountDisabledError, EmailTakenError, FeatureDisabledError, InvalidTokenError, ValidationError } from './errors.js';
import { accountLockKey, checkUnderLockout, type LoginLockout, nameLockKey } from './lockout.js';
import type { PasswordHasher } from './passwords.js';
import { reauthenticate } from './reauthenticate.js';
import type { ClientMeta, SessionService } from './sessions.js';
import { emailSchema, foldCase, passwordSchema, presentedPasswordSchema, validate } from './validation.js';

export type EmailVerificationMode = 'off' | 'optional' | 'required';

export interface EmailSettings {
  /** False (EMAIL_ENABLED=false): every email flow answers FEATURE_DISABLED and nothing is mailed. */
  readonly enabled: boolean;
  readonly verification: EmailVerificationMode;
  /** How long each kind of token can be redeemed. */
  readonly lifetimesMs: Readonly<Record<EmailTokenPurpose, number>>;
  /** Tries a typed code allows (right or wrong) before it is dead. */
  readonly maxCodeTries: number;
}

export interface EmailChangeRequested {
  /** The new address, which the confirmation went to. */
  readonly email: string;
  readonly expiresInSeconds: number;
}

const addressSchema = z.object({ email: emailSchema });
const resetSchema = z.object({ newPassword: passwordSchema });
const emailChangeSchema = z.object({ newEmail: emailSchema, currentPassword: presentedPasswordSchema });
const codeSchema = z.object({ email: emailSchema, code: z.string().regex(/^\d{6}$/, 'must be the 6 digits from the mail') });

/**
 * Verification, password reset, address change and sign-in by mail: the rules, free of GraphQL and of
 * delivery. Every request writes its mail to the outbox (db/stores/mail-outbox.ts) in the same commit
 * as its token; the outbox sender delivers it later (src/mail/outbox-sender.ts), so no answer waits on
 * SMTP and a crash loses nothing acknowledged. Requests made with an address alone (reset, sign-in code,
 * verification resend) are resolved by the sender (email-requests.ts): their answer is one insert,
 * whatever the address, so it says nothing about whether an account has it, in content or in timing.
 *
 * Redemption is the reverse: the token is used up inside the transaction that applies what it proves,
 * after checking it still matches the state it was issued for (the password for a reset, the address for
 * verification and address change). The links point at the app, never at this API, and nothing here is
 * reachable by GET: a mail scanner that follows a link changes nothing.
 */
export class EmailFlows {
  constructor(
    private readonly db: Database,
    private readonly secrets: EmailSecrets,
    private readonly settings: EmailSettings,
    private readonly deps: {
      readonly passwords: PasswordHasher;
      readonly lockout: LoginLockout;
      readonly sessions: SessionService;
      readonly accessTokens: AccessTokenService;
      readonly clock: Clock;
      /** Tells the local sender that mail was queued (other instances find it by polling). */
      readonly mailQueued: () => void;
    },
  ) {}

  /** Whether the email flows are on (EMAIL_ENABLED). */
  get enabled(): boolean {
    return this.settings.enabled;
  }

  get verificationMode(): EmailVerificationMode {
    return this.settings.enabled ? this.settings.verification : 'off';
  }

  // ---- Verification ------------------------------------------------------------------------------

  /**
   * Issues a verification token for the user's current address and queues its mail, inside `tx` (e.g.
   * the registration's). Nothing for a user without an address, or when verification is off.
   */
  async queueVerificationIn(tx: Transaction, user: UserRecord): Promise<void> {
    if (this.verificationMode === 'off' || user.email === null || user.emailKey === null) return;
    const tokenId = await this.issueIn(tx, 'verify_email', user.id, user.email, { boundEmailKey: user.emailKey });
    await this.db.mailOutbox.add(tx, { id: randomUUID(), kind: 'verify_email', recipient: user.email, userId: user.id, tokenId });
  }

  /** Wakes the sender after a commit that queued mail through queueVerificationIn. */
  mailQueued(): void {
    this.deps.mailQueued();
  }

  /** The signed-in user asks for a (new) verification mail. True also when the address is verified already (nothing is sent). */
  async requestVerification(userId: string): Promise<boolean> {
    this.#assertEnabled();
    const user = await this.db.users.find(userId);
    if (!user) return true;
    if (user.email === null) throw new ValidationError([{ field: 'email', message: 'the account has no email address' }]);
    if (user.emailVerifiedAt !== null) return true;
    await this.db.transaction((tx) => this.queueVerificationIn(tx, user));
    this.deps.mailQueued();
    return true;
  }

  /** Someone not signed in (e.g. refused with EMAIL_NOT_VERIFIED) asks for a new verification mail. */
  async requestVerificationByAddress(email: string): Promise<boolean> {
    return this.#requestByAddress('verify_email', email);
  }

  async verifyEmail(linkToken: string): Promise<UserRecord> {
    this.#assertEnabled();
    const { token, user } = await this.#redeemable(linkToken, 'verify_email');
    await this.db.transaction(async (tx) => {
      if (!(await this.db.emailTokens.consume(tx, token.id))) throw new InvalidTokenError();
      // The address changed since the mail was sent: the link proves nothing about the new one.
      if (!(await this.db.users.markEmailVerified(tx, user.id, token.boundEmailKey ?? '', new Date(this.deps.clock.now())))) throw new InvalidTokenError();
    });
    return this.#current(user.id);
  }

  // ---- Password reset ----------------------------------------------------------------------------

  /** Always true: queues a reset mail if an account has the address (decided later, email-requests.ts). */
  async requestPasswordReset(email: string): Promise<boolean> {
    return this.#requestByAddress('reset_password', email);
  }

  /**
   * Sets a new password with a reset token and signs the user in. One commit uses the token up, replaces
   * the password (only if it is still the one the token was issued for, sent to the current address), ends
   * every session, API token and other mailed link of the user, and counts the address as verified.
   */
  async resetPassword(linkToken: string, newPassword: string, meta: ClientMeta): Promise<AuthResult> {
    this.#assertEnabled();
    const valid = validate(resetSchema, { newPassword });
    const { token, user } = await this.#redeemable(linkToken, 'reset_password');
    if (valid.newPassword.toLowerCase() === user.usernameKey)
      throw new ValidationError([{ field: 'newPassword', message: 'must not be the same as the username' }]);
    const issuedFor = token.boundCredentialsVersion;
    // Sent to an address the account no longer has (a confirmed change since): the new owner of the old
    // mailbox must not be able to take the account.
    if (issuedFor === null || user.credentialsVersion !== issuedFor || user.emailKey !== token.emailKey) throw new InvalidTokenError();
    if (user.disabledAt) throw new AccountDisabledError();
    const passwordHash = await this.deps.passwords.hash(valid.newPassword);
    const issued = await this.db.transaction(async (tx) => {
      if (!(await this.db.emailTokens.consume(tx, token.id))) throw new InvalidTokenError();
      // Disabling and address changes move the credentials version on, so either since is refused here.
      if (!(await this.db.users.setPasswordIfCurrent(tx, user.id, issuedFor, passwordHash))) throw new InvalidTokenError();
      await this.#endRecoveryTokens(tx, user.id);
      // A reset is a recovery: whoever knew the old password may have made sessions and API tokens. All end.
      await this.deps.sessions.endForCredentialChange(tx, user.id, 'password_reset');
      await this.db.apiTokens.revokeAllForUser(tx, user.id);
      await this.db.users.markEmailVerified(tx, user.id, token.emailKey, new Date(this.deps.clock.now()));
      return this.deps.sessions.start(tx, user.id, meta);
    });
    return authResultFor(this.deps.accessTokens, await this.#current(user.id), issued);
  }

  // ---- Address change ----------------------------------------------------------------------------

  /**
   * After the password, mails a confirmation to the new address and a notice to the old one. Whether
   * another account has the new address is not told here (that would let any user probe addresses); the
   * confirmation fails with EMAIL_TAKEN instead.
   */
  async requestEmailChange(userId: string, input: { newEmail: string; currentPassword: string }, meta: ClientMeta): Promise<EmailChangeRequested> {
    this.#assertEnabled();
    const valid = validate(emailChangeSchema, input);
    const user = await reauthenticate({ db: this.db, ...this.deps }, userId, valid.currentPassword, meta);
    const newEmailKey = foldCase(valid.newEmail);
    if (newEmailKey === user.emailKey) throw new ValidationError([{ field: 'newEmail', message: 'is the current address already' }]);
    await this.db.transaction(async (tx) => {
      // Bound to the password too: a password change (the notice tells the owner to make one), a reset or a
      // disable after the request ends it, so someone who knew the old password cannot finish the change.
      const tokenId = await this.issueIn(tx, 'change_email', user.id, valid.newEmail, {
        boundEmailKey: user.emailKey ?? '',
        boundCredentialsVersion: user.credentialsVersion,
      });
      await this.db.mailOutbox.add(tx, { id: randomUUID(), kind: 'confirm_email_change', recipient: valid.newEmail, userId: user.id, tokenId });
      if (user.email !== null) {
        await this.db.mailOutbox.add(tx, {
          id: randomUUID(),
          kind: 'email_change_notice',
          recipient: user.email,
          userId: user.id,
          tokenId: null,
          variables: { newEmail: valid.newEmail },
        });
      }
    });
    this.deps.mailQueued();
    return { email: valid.newEmail, expiresInSeconds: Math.floor(this.settings.lifetimesMs.change_email / 1000) };
  }

  /** Replaces the address with the confirmed one (verified: the link came from it). */
  async confirmEmailChange(linkToken: string): Promise<UserRecord> {
    this.#assertEnabled();
    const { token, user } = await this.#redeemable(linkToken, 'change_email');
    try {
      await this.db.transaction(async (tx) => {
        if (!(await this.db.emailTokens.consume(tx, token.id))) throw new InvalidTokenError();
        const expected = { emailKey: token.boundEmailKey === '' ? null : token.boundEmailKey, credentialsVersion: token.boundCredentialsVersion ?? -1 };
        const change = { email: token.email, emailKey: token.emailKey, verifiedAt: new Date(this.deps.clock.now()) };
        // The address or the password changed meanwhile, or the account was disabled: the token was for the old state.
        if (!(await this.db.users.changeEmailIfCurrent(tx, user.id, expected, change))) throw new InvalidTokenError();
        // Links already sent to the old address (a reset, a sign-in) must not outlive the move.
        await this.#endRecoveryTokens(tx, user.id);
      });
    } catch (error) {
      // Taken since the request: the rollback leaves the token usable should the address become free.
      if (error instanceof UniqueConstraintError) throw new EmailTakenError();
      throw error;
    }
    return this.#current(user.id);
  }

  // ---- Sign-in by mail ---------------------------------------------------------------------------

  /** Always true: queues a sign-in link and code if an account has the address (email-requests.ts). */
  async requestSignInCode(email: string): Promise<boolean> {
    return this.#requestByAddress('sign_in', email);
  }

  async signInWithLink(linkToken: string, meta: ClientMeta): Promise<AuthResult> {
    this.#assertEnabled();
    const { token, user } = await this.#redeemable(linkToken, 'sign_in');
    return this.#signIn(token, user, meta);
  }

  /**
   * The typed code, under the login lockout (wrong codes count toward the account's lock). Each try is
   * counted on the token before the comparison, so a code allows `maxCodeTries` tries however many arrive
   * at once. An address no account has has its own (undeliverable) token after a request, so a wrong code
   * costs the same work whether or not the address exists.
   */
  async signInWithCode(email: string, code: string, meta: ClientMeta): Promise<AuthResult> {
    this.#assertEnabled();
    const valid = validate(codeSchema, { email, code });
    const emailKey = foldCase(valid.email);
    const owner = await this.db.users.idByEmailKey(emailKey);
    let token: EmailTokenRecord | null = null;
    const matches = await checkUnderLockout(this.deps.lockout, owner ? accountLockKey(owner) : nameLockKey(emailKey), meta, async () => {
      token = await this.db.emailTokens.findNewestFor('sign_in', emailKey);
      if (!token || !(await this.db.emailTokens.chargeTry(token.id, this.settings.maxCodeTries))) return false;
      return this.secrets.codeMatches(token, valid.code);
    });
    const found = token as EmailTokenRecord | null;
    if (!matches || !found || found.userId === null) throw new InvalidTokenError();
    if (found.expiresAt.getTime() <= this.deps.clock.now()) throw InvalidTokenError.expired();
    const user = await this.db.users.find(found.userId);
    if (!user) throw new InvalidTokenError();
    return this.#signIn(found, user, meta);
  }

  /** Starts a session from a sign-in token; the mail reached the address, so it counts as verified. */
  async #signIn(token: EmailTokenRecord, user: UserRecord, meta: ClientMeta): Promise<AuthResult> {
    if (user.disabledAt) throw new AccountDisabledError();
    // The first proof that this mailbox's owner holds the account: whoever registered with the address
    // before may not have been its owner, so the password they chose is replaced by one nobody knows (the
    // owner sets their own with a reset), and their sessions and API tokens end. Hashed before the
    // transaction, which must not wait on argon2.
    const replacementHash = user.emailVerifiedAt === null ? await this.deps.passwords.hash(randomBytes(32).toString('base64url')) : null;
    const issued = await this.db.transaction(async (tx) => {
      if (!(await this.db.emailTokens.consume(tx, token.id))) throw new InvalidTokenError();
      // Read again where the session is inserted: a disable (or a verification) that committed since counts.
      const current = await this.db.users.findIn(tx, user.id);
      if (!current || current.disabledAt !== null) throw new AccountDisabledError();
      if (!(await this.db.users.markEmailVerified(tx, user.id, token.boundEmailKey ?? '', new Date(this.deps.clock.now())))) throw new InvalidTokenError();
      if (current.emailVerifiedAt === null && replacementHash !== null) {
        await this.db.users.setPasswordIfCurrent(tx, user.id, current.credentialsVersion, replacementHash);
        await this.deps.sessions.endForCredentialChange(tx, user.id, 'email_verified_by_sign_in');
        await this.db.apiTokens.revokeAllForUser(tx, user.id);
      }
      return this.deps.sessions.start(tx, user.id, meta);
    });
    return authResultFor(this.deps.accessTokens, await this.#current(user.id), issued);
  }

  // ---- Shared ------------------------------------------------------------------------------------

  /**
   * Inserts a token of `purpose` for the account `userId` (null: an address no account has), ending the
   * previous ones, and returns its id. Also used by the outbox's resolution of requests (email-requests.ts).
   */
  async issueIn(
    tx: Transaction,
    purpose: EmailTokenPurpose,
    userId: string | null,
    email: string,
    bound: { boundEmailKey?: string; boundCredentialsVersion?: number },
  ): Promise<string> {
    const id = randomUUID();
    const now = this.deps.clock.now();
    await this.db.emailTokens.issue(tx, {
      id,
      purpose,
      userId,
      email,
      emailKey: foldCase(email),
      secretHash: this.secrets.linkTokenHash(this.secrets.linkToken(id)),
      codeHash: purpose === 'sign_in' ? this.secrets.codeHash(id, this.secrets.code(id)) : null,
      boundCredentialsVersion: bound.boundCredentialsVersion ?? null,
      boundEmailKey: bound.boundEmailKey ?? null,
      createdAt: new Date(now),
      expiresAt: new Date(now + this.settings.lifetimesMs[purpose]),
    });
    return id;
  }

  /**
   * One insert, whatever the address: what becomes of it is decided by the sender. The sender is not
   * woken for it: it finds the row at its next poll (MAIL_POLL_INTERVAL_SECONDS), so the work that differs
   * between a registered and an unregistered address does not follow the answer at once, where the
   * client's next request could time it.
   */
  async #requestByAddress(kind: 'verify_email' | 'reset_password' | 'sign_in', email: string): Promise<boolean> {
    this.#assertEnabled();
    const valid = validate(addressSchema, { email });
    await this.db.mailOutbox.addRequest({ id: randomUUID(), kind, recipient: valid.email });
    return true;
  }

  /** Ends the links and codes that recover or move the account (after a reset or an address change). */
  async #endRecoveryTokens(tx: Transaction, userId: string): Promise<void> {
    await this.db.emailTokens.endForUser(tx, userId, ['reset_password', 'sign_in', 'change_email']);
  }

  /** The token behind a presented link and its user, if it can still be redeemed for `purpose`. */
  async #redeemable(linkToken: string, purpose: EmailTokenPurpose): Promise<{ token: EmailTokenRecord; user: UserRecord }> {
    if (!this.secrets.isLinkTokenShaped(linkToken)) throw new InvalidTokenError();
    const token = await this.db.emailTokens.findBySecretHash(this.secrets.linkTokenHash(linkToken));
    // Issued for another purpose: refused without using it up (it still works where it belongs).
    if (!token || token.purpose !== purpose || token.userId === null) throw new InvalidTokenError();
    if (token.expiresAt.getTime() <= this.deps.clock.now()) throw InvalidTokenError.expired();
    const user = await this.db.users.find(token.userId);
    if (!user) throw new InvalidTokenError();
    return { token, user };
  }

  async #current(userId: string): Promise<UserRecord> {
    const user = await this.db.users.find(userId);
    if (!user) throw new InvalidTokenError();
    return user;
  }

  #assertEnabled(): void {
    if (!this.settings.enabled) throw new FeatureDisabledError('Email (verification, password reset, sign-in by mail)');
  }
}
