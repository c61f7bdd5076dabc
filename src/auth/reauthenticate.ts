import type { Database, UserRecord } from '../db/database.js';
import { AuthenticationError, InvalidCredentialsError } from './errors.js';
import { accountLockKey, checkUnderLockout, type LoginLockout } from './lockout.js';
import type { PasswordHasher } from './passwords.js';
import type { ClientMeta } from './sessions.js';

/**
 * Checks a password the signed-in caller typed again (change password or address, delete account). It
 * counts toward the same lockout as login, keyed by the account: a stolen access token gives no fresh
 * guesses, and a locked account refuses re-authentication with LOGIN_LOCKED. Returns the user as read
 * for the check (its credentialsVersion is what the password was checked against).
 */
export async function reauthenticate(
  deps: { readonly db: Database; readonly passwords: PasswordHasher; readonly lockout: LoginLockout },
  userId: string,
  password: string,
  meta: Pick<ClientMeta, 'ip' | 'network'>,
): Promise<UserRecord> {
  const user = await deps.db.users.find(userId);
  if (!user) throw AuthenticationError.accountUnavailable();
  const matches = await checkUnderLockout(deps.lockout, accountLockKey(userId), meta, () => deps.passwords.verify(user.passwordHash, password));
  if (!matches) throw InvalidCredentialsError.wrongCurrentPassword();
  return user;
}
