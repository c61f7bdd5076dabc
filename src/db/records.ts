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

/**
 * Whether `value` cannot be a stored key or id: it holds a NUL character. PostgreSQL's text cannot hold
 * one (a query that binds it fails with "invalid byte sequence"), and nothing the stores write has one
 * (ids are UUIDs, names and emails are validated). Lookups answer "no such row" for it on every engine.
 */
export const cannotBeStored = (value: string | undefined): boolean => value?.includes('\u0000') ?? false;
