/**
 * The rows the stores hand to the auth services: plain data, whatever engine produced them. They mirror
 * the Prisma model (prisma/schema.prisma) column for column, but are not Prisma's generated types, so a
 * second engine (or a store that skips Prisma on a fast path) can produce them too.
 */

export type UserRole = 'USER' | 'ADMIN';

export interface UserRecord {
  readonly id: string;
  /** As typed at registration; shown to people. */
  readonly username: string;
  /** Case-folded username: uniqueness is case-insensitive. */
  readonly usernameKey: string;
  readonly email: string | null;
  /** Case-folded email, unique when present. */
  readonly emailKey: string | null;
  readonly fullname: string | null;
  readonly passwordHash: string;
  readonly role: UserRole;
  readonly disabledAt: Date | null;
  /** Bumped by every change that must end the user's sessions (see SessionService.startIfCurrent). */
  readonly credentialsVersion: number;
  /** When the current address was shown to reach its owner; null while it is not (or there is none). */
  readonly emailVerifiedAt: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface SessionRecord {
  readonly id: string;
  readonly userId: string;
  readonly createdAt: Date;
  readonly lastUsedAt: Date;
  readonly expiresAt: Date;
  /** Generation of the current refresh token. */
  readonly refreshCounter: number;
  /** When the current generation was issued. */
  readonly rotatedAt: Date;
  readonly userAgent: string | null;
  readonly ip: string | null;
  readonly revokedAt: Date | null;
  readonly revokedReason: string | null;
}

export interface ApiTokenRecord {
  readonly id: string;
  readonly userId: string;
  readonly name: string;
  /** Space-separated grants, e.g. "profile:read sessions:read". */
  readonly scopes: string;
  readonly secretHash: string;
  readonly createdAt: Date;
  readonly expiresAt: Date | null;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
}

export type EmailTokenPurpose = 'verify_email' | 'reset_password' | 'change_email' | 'sign_in';

export interface EmailTokenRecord {
  readonly id: string;
  readonly purpose: EmailTokenPurpose;
  /** Null only for a sign-in code asked for an address no account has (it can never sign anyone in). */
  readonly userId: string | null;
  /** The address the mail went to (change_email: the new address), as typed and case-folded. */
  readonly email: string;
  readonly emailKey: string;
  readonly secretHash: string;
  readonly codeHash: string | null;
  /** reset_password: the credentials version it was issued for. */
  readonly boundCredentialsVersion: number | null;
  /** verify_email, change_email: the user's email key when it was issued ("" for none). */
  readonly boundEmailKey: string | null;
  readonly failedAttempts: number;
  readonly createdAt: Date;
  readonly expiresAt: Date;
}

export type MailKind = 'verify_email' | 'reset_password' | 'confirm_email_change' | 'email_change_notice' | 'sign_in';
export type MailState = 'requested' | 'pending' | 'sent' | 'failed' | 'dropped';

export interface OutboxMailRecord {
  readonly id: string;
  readonly kind: MailKind;
  readonly state: MailState;
  readonly recipient: string;
  readonly userId: string | null;
  readonly tokenId: string | null;
  /** JSON of the template's non-secret variables. */
  readonly variables: string;
  readonly attempts: number;
  readonly nextAttemptAt: Date;
  readonly claimedUntil: Date | null;
  readonly lastError: string | null;
  readonly createdAt: Date;
  readonly finishedAt: Date | null;
}

/**
 * Whether `value` cannot be a stored key or id: it holds a NUL character. PostgreSQL's text cannot hold
 * one (a query that binds it fails with "invalid byte sequence"), and nothing the stores write has one
 * (ids are UUIDs, names and emails are validated). Lookups answer "no such row" for it on every engine.
 */
export const cannotBeStored = (value: string | undefined): boolean => value?.includes('\u0000') ?? false;
