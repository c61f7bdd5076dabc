import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Database, UserRole, UserRecord } from '../db/database.js';
import { UniqueConstraintError } from '../db/errors.js';
import type { ProfileChanges } from '../db/stores/users.js';
import type { AccessTokenService } from './access-tokens.js';
import { type AdminActor, assertActorMayAdminister, OPERATOR } from './admin-actor.js';
import type { Clock } from './clock.js';
import type { EmailFlows } from './email-flows.js';
import {
  AccountDisabledError,
  EmailNotVerifiedError,
  AuthenticationError,
  ValidationError,
  EmailTakenError,
  InvalidCredentialsError,
  UsernameTakenError,
} from './errors.js';
import { accountLockKey, checkUnderLockout, type LoginLockout, nameLockKey } from './lockout.js';
import type { PasswordHasher } from './passwords.js';
import { reauthenticate } from './reauthenticate.js';
import type { ClientMeta, IssuedSession, SessionService } from './sessions.js';
import { emailSchema, foldCase, fullnameSchema, MAX_EMAIL_LENGTH, passwordSchema, presentedPasswordSchema, usernameSchema, validate } from './validation.js';

export interface RegisterRequest {
  readonly username: string;
  readonly password: string;
  readonly email?: string | null;
  readonly fullname?: string | null;
}

export type { UserRole } from '../db/database.js';

export interface ProfileUpdateRequest {
  readonly fullname?: string | null;
  readonly email?: string | null;
}

export interface PasswordChangeRequest {
  readonly currentPassword: string;
  readonly newPassword: string;
}

export interface LoginRequest {
  readonly username: string;
  readonly password: string;
}

export interface AuthResult {
  readonly accessToken: string;
  readonly refreshToken: string;
  /** Seconds the refresh token can be used (idle timeout or the session's absolute end, whichever is first). */
  readonly refreshTokenExpiresIn: number;
  readonly tokenType: 'Bearer';
  readonly expiresIn: number;
  readonly user: UserRecord;
  readonly sessionId: string;
}

const registerSchema = z
  .object({
    username: usernameSchema,
    password: passwordSchema,
    email: emailSchema.nullish(),
    fullname: fullnameSchema.nullish(),
  })
  .superRefine((input, ctx) => {
    if (input.password.toLowerCase() === input.username.toLowerCase()) {
      ctx.addIssue({ code: 'custom', path: ['password'], message: 'must not be the same as the username' });
    }
  });

const profileSchema = z.object({
  fullname: fullnameSchema.nullish(),
  email: emailSchema.nullish(),
});

const changePasswordSchema = z.object({
  currentPassword: presentedPasswordSchema,
  newPassword: passwordSchema,
});

const loginSchema = z.object({
  username: z.string().min(1, 'is required').max(MAX_EMAIL_LENGTH, 'is too long'),
  password: presentedPasswordSchema,
});

/** Registration, login and account look-ups: the account rules, free of GraphQL. */
export class AccountService {
  constructor(
    private readonly db: Database,
    private readonly passwords: PasswordHasher,
    private readonly sessions: SessionService,
    private readonly accessTokens: AccessTokenService,
    private readonly lockout: LoginLockout,
    private readonly email: EmailFlows,
    private readonly clock: Clock,
  ) {}

  /**
   * Open registration: creates the user and logs them in; with EMAIL_VERIFICATION=required no session is
   * started (login answers EMAIL_NOT_VERIFIED until the mailed link is followed) and the user is returned.
   */
  async register(input: RegisterRequest, meta: ClientMeta): Promise<AuthResult | { user: UserRecord; verificationRequired: true }> {
    const required = this.email.verificationMode === 'required';
    const { user, issued } = await this.#create(input, 'USER', required ? null : meta, null);
    this.email.mailQueued();
    if (required) return { user, verificationRequired: true };
    return this.#authResult(user, issued!);
  }

  /**
   * An account made by an administrator (admin registration mode: `actor` is the caller, checked again
   * where the account is inserted) or by the operator (CLI). No session is started.
   */
  async createUser(input: RegisterRequest, role: UserRole = 'USER', actor: AdminActor = OPERATOR): Promise<UserRecord> {
    const { user } = await this.#create(input, role, null, actor);
    this.email.mailQueued();
    return user;
  }

  async #create(
    input: RegisterRequest,
    role: UserRole,
    meta: ClientMeta | null,
    /** Who creates the account: null for open registration (the new user), else an administrator or the operator. */
    actor: AdminActor | null,
  ): Promise<{ user: UserRecord; issued: IssuedSession | null }> {
    // Validation (including the password length bound) happens before any hashing.
    const valid = validate(registerSchema, input);
    if (this.email.verificationMode === 'required' && !valid.email) {
      throw new ValidationError([{ field: 'email', message: 'is required (this server requires a verified email address)' }]);
    }
    const usernameKey = foldCase(valid.username);
    const emailKey = valid.email ? foldCase(valid.email) : null;
    await this.#assertAvailable(usernameKey, emailKey);

    const passwordHash = await this.passwords.hash(valid.password);
    try {
      return await this.db.transaction(async (tx) => {
        if (actor !== null) await assertActorMayAdminister(this.db, tx, actor);
        // The operator (admin CLI) vouches for the address it types: no verification mail, verified at once,
        // so that EMAIL_VERIFICATION=required cannot lock out the administrator it is creating.
        const vouched = actor === OPERATOR && emailKey !== null;
        const user = await this.db.users.create(tx, {
          id: randomUUID(),
          username: valid.username,
          usernameKey,
          email: valid.email ?? null,
          emailKey,
          fullname: valid.fullname ?? null,
          passwordHash,
          role,
          emailVerifiedAt: vouched ? new Date(this.clock.now()) : null,
        });
        // Otherwise the verification mail is queued in the same commit as the account: it cannot be lost.
        if (!vouched) await this.email.queueVerificationIn(tx, user);
        return { user, issued: meta ? await this.sessions.start(tx, user.id, meta) : null };
      });
    } catch (error) {
      // Lost a race with a parallel registration of the same name: the unique index decided.
      if (error instanceof UniqueConstraintError) await this.#assertAvailable(usernameKey, emailKey);
      throw error;
    }
  }

  async login(input: LoginRequest, meta: ClientMeta): Promise<AuthResult> {
    const valid = validate(loginSchema, input);
    const typedName = foldCase(valid.username);
    // The lookup comes first (both kinds of name cost one indexed read), then the lock, then the hash:
    // a locked name, known or not, is answered without hashing and alike.
    const user = typedName.includes('@') ? await this.db.users.findByEmailKey(typedName) : await this.db.users.findByUsernameKey(typedName);
    const lockKey = user ? accountLockKey(user.id) : nameLockKey(typedName);
    // Same work and same answer whether the user is unknown or the password wrong.
    const passwordMatches = await checkUnderLockout(this.lockout, lockKey, meta, () =>
      user ? this.passwords.verify(user.passwordHash, valid.password) : this.passwords.verifyAgainstDummy(valid.password),
    );
    if (!user || !passwordMatches) throw new InvalidCredentialsError();
    if (user.disabledAt) throw new AccountDisabledError();
    // Told only to someone who gave the right password, like ACCOUNT_DISABLED.
    if (this.email.verificationMode === 'required' && user.emailVerifiedAt === null) throw new EmailNotVerifiedError();
    // The password was checked against this version of the credentials; a change that committed since
    // (password, disable, delete, logout everywhere) refuses the session instead of letting it outlive it.
    const issued = await this.sessions.startIfCurrent(user.id, meta, user.credentialsVersion);
    if (issued === 'disabled') throw new AccountDisabledError();
    if (issued === 'credentials_changed') throw new InvalidCredentialsError();
    return this.#authResult(user, issued);
  }

  /** Exchanges a refresh token for new tokens (rotation with reuse detection lives in SessionService). */
  async refresh(refreshToken: string): Promise<AuthResult> {
    const rotated = await this.sessions.rotate(refreshToken);
    return this.#authResult(rotated.user, rotated);
  }

  /** For sign-up forms. Invalid names cannot exist, so they answer false without a query. */
  async usernameExists(username: string): Promise<boolean> {
    if (!usernameSchema.safeParse(username).success) return false;
    return (await this.db.users.idByUsernameKey(foldCase(username))) !== null;
  }

  findUser(id: string): Promise<UserRecord | null> {
    return this.db.users.findCached(id);
  }

  /** Changes the caller's own name and email. Omitted fields stay; null clears. */
  async updateProfile(userId: string, input: ProfileUpdateRequest): Promise<UserRecord> {
    const valid = validate(profileSchema, input);
    const data: { -readonly [K in keyof ProfileChanges]: ProfileChanges[K] } = {};
    if (valid.fullname !== undefined) data.fullname = valid.fullname;
    if (valid.email !== undefined) {
      const emailKey = valid.email === null ? null : foldCase(valid.email);
      const current = await this.db.users.find(userId);
      // Password resets and sign-in codes go to the address: with email on, replacing it takes the current
      // password and a confirmation from the new address (requestEmailChange), or a stolen access token
      // would be a stolen account. Spelling the same address differently is not a change.
      if (current !== null && current.emailKey !== emailKey && this.email.enabled) {
        throw new ValidationError([
          { field: 'email', message: 'changes through requestEmailChange (the current password, then a confirmation from the new address)' },
        ]);
      }
      if (emailKey) {
        const ownerId = await this.db.users.idByEmailKey(emailKey);
        if (ownerId !== null && ownerId !== userId) throw new EmailTakenError();
      }
      data.email = valid.email;
      data.emailKey = emailKey;
      // Email off: the address is only data; nothing verified it.
      if (current?.emailKey !== emailKey) data.emailVerifiedAt = null;
    }
    let user: UserRecord | null;
    try {
      user = await this.db.users.updateProfile(userId, data);
    } catch (error) {
      if (error instanceof UniqueConstraintError) throw new EmailTakenError();
      throw error;
    }
    // Deleted while this request was on its way: the caller's credentials are gone with it.
    if (!user) throw AuthenticationError.accountUnavailable();
    return user;
  }

  /**
   * Replaces the password after checking the current one, and ends every other session: whoever else
   * knew the old password is logged out, the caller stays in. Returns how many sessions were ended.
   *
   * One transaction writes the new hash, bumps the credentials version and revokes the other sessions:
   * a crash leaves either all of it or none. It applies only if the credentials are still those the
   * current password was checked against (a parallel change wins once; the other is refused) and the
   * caller's session is still in force.
   */
  async changePassword(
    userId: string,
    keepSessionId: string,
    input: PasswordChangeRequest,
    meta: Pick<ClientMeta, 'ip' | 'network'> = { ip: null, network: null },
  ): Promise<number> {
    const valid = validate(changePasswordSchema, input);
    const user = await this.#reauthenticate(userId, valid.currentPassword, meta);
    const fieldErrors = [];
    if (valid.newPassword.toLowerCase() === user.usernameKey) fieldErrors.push({ field: 'newPassword', message: 'must not be the same as the username' });
    if (valid.newPassword === valid.currentPassword) fieldErrors.push({ field: 'newPassword', message: 'must differ from the current password' });
    if (fieldErrors.length > 0) throw new ValidationError(fieldErrors);
    const passwordHash = await this.passwords.hash(valid.newPassword);
    return this.db.transaction(async (tx) => {
      if (!(await this.sessions.isInForce(tx, keepSessionId, userId))) throw AuthenticationError.sessionEnded();
      // The password changed since it was checked: the one presented may no longer be the current one.
      if (!(await this.db.users.setPasswordIfCurrent(tx, userId, user.credentialsVersion, passwordHash))) throw new InvalidCredentialsError();
      return this.sessions.endForCredentialChange(tx, userId, 'password_changed', keepSessionId);
    });
  }

  #reauthenticate(userId: string, password: string, meta: Pick<ClientMeta, 'ip' | 'network'>): Promise<UserRecord> {
    return reauthenticate({ db: this.db, passwords: this.passwords, lockout: this.lockout }, userId, password, meta);
  }

  /** Checks a password the caller typed again, e.g. before deleting their account. */
  async verifyPassword(userId: string, password: string, meta: Pick<ClientMeta, 'ip' | 'network'> = { ip: null, network: null }): Promise<UserRecord> {
    return this.#reauthenticate(userId, validate(presentedPasswordSchema, password), meta);
  }

  async #assertAvailable(usernameKey: string, emailKey: string | null): Promise<void> {
    const [byName, byEmail] = await Promise.all([this.db.users.idByUsernameKey(usernameKey), emailKey ? this.db.users.idByEmailKey(emailKey) : null]);
    if (byName) throw new UsernameTakenError();
    if (byEmail) throw new EmailTakenError();
  }

  #authResult(user: UserRecord, issued: IssuedSession): Promise<AuthResult> {
    return authResultFor(this.accessTokens, user, issued);
  }
}

/** The tokens of a session just started or rotated, as every way of signing in answers them. */
export async function authResultFor(accessTokens: AccessTokenService, user: UserRecord, issued: IssuedSession): Promise<AuthResult> {
  return {
    accessToken: await accessTokens.sign(user.id, issued.sessionId),
    refreshToken: issued.refreshToken,
    refreshTokenExpiresIn: issued.refreshTokenExpiresIn,
    tokenType: 'Bearer',
    expiresIn: accessTokens.ttlSeconds,
    user,
    sessionId: issued.sessionId,
  };
}
