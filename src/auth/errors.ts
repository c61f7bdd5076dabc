// Expected failures of the auth services. They carry a stable code and a message that is safe to show;
// the schema turns them into typed members of result unions. Anything else stays masked by Yoga.

export type ErrorCode =
  | 'VALIDATION_FAILED'
  | 'USERNAME_TAKEN'
  | 'EMAIL_TAKEN'
  | 'INVALID_CREDENTIALS'
  | 'LOGIN_LOCKED'
  | 'ACCOUNT_DISABLED'
  | 'REFRESH_TOKEN_INVALID'
  | 'REFRESH_TOKEN_EXPIRED'
  | 'REFRESH_TOKEN_REVOKED'
  | 'REFRESH_TOKEN_REUSED'
  | 'USER_NOT_FOUND'
  | 'LAST_ADMIN';

export abstract class AuthError extends Error {
  abstract readonly code: ErrorCode;
}

export interface FieldError {
  readonly field: string;
  readonly message: string;
}

export class ValidationError extends AuthError {
  readonly code = 'VALIDATION_FAILED';
  constructor(readonly fieldErrors: readonly FieldError[]) {
    super(`Invalid input: ${fieldErrors.map((error) => `${error.field}: ${error.message}`).join('; ')}`);
  }
}

export class UsernameTakenError extends AuthError {
  readonly code = 'USERNAME_TAKEN';
  constructor() {
    super('That username is already taken.');
  }
}

export class EmailTakenError extends AuthError {
  readonly code = 'EMAIL_TAKEN';
  constructor() {
    super('That email address is already registered.');
  }
}

/** Unknown user or wrong password (deliberately the same), or too many failures for the name. */
export class InvalidCredentialsError extends AuthError {
  constructor(
    readonly code: 'INVALID_CREDENTIALS' | 'LOGIN_LOCKED' = 'INVALID_CREDENTIALS',
    /** Seconds until the name may be tried again; LOGIN_LOCKED only. */
    readonly retryAfter: number | null = null,
  ) {
    super(code === 'LOGIN_LOCKED' ? `Too many failed attempts; try again in ${retryAfter} s.` : 'Invalid username or password.');
  }

  /** The lock applies to names that do not exist too, so it says nothing about existence. */
  static locked(retryAfter: number): InvalidCredentialsError {
    return new InvalidCredentialsError('LOGIN_LOCKED', retryAfter);
  }
}

/** Only ever returned after the correct password was given, so it reveals nothing to a guesser. */
export class AccountDisabledError extends AuthError {
  readonly code = 'ACCOUNT_DISABLED';
  constructor() {
    super('This account is disabled.');
  }
}

export type RefreshFailure = 'REFRESH_TOKEN_INVALID' | 'REFRESH_TOKEN_EXPIRED' | 'REFRESH_TOKEN_REVOKED' | 'REFRESH_TOKEN_REUSED';

const refreshMessages: Record<RefreshFailure, string> = {
  REFRESH_TOKEN_INVALID: 'The refresh token is not valid.',
  REFRESH_TOKEN_EXPIRED: 'The session has expired; log in again.',
  REFRESH_TOKEN_REVOKED: 'The session has been ended; log in again.',
  REFRESH_TOKEN_REUSED: 'The refresh token was already used; the session has been ended for safety. Log in again.',
};

export class InvalidRefreshTokenError extends AuthError {
  constructor(readonly code: RefreshFailure) {
    super(refreshMessages[code]);
  }
}

export class UserNotFoundError extends AuthError {
  readonly code = 'USER_NOT_FOUND';
  constructor() {
    super('No such user.');
  }
}

/** Refuses the change that would leave no active administrator to undo it. */
export class LastAdminError extends AuthError {
  readonly code = 'LAST_ADMIN';
  constructor() {
    super('This is the last active administrator; make another user an administrator first.');
  }
}

/** A presented access token that cannot be accepted. `reason` is safe to show to the client. */
export class AuthenticationError extends Error {
  constructor(
    readonly reason: 'malformed' | 'invalid' | 'expired' | 'session_ended' | 'user_unavailable' | 'token_revoked',
    message: string,
  ) {
    super(message);
  }
}
