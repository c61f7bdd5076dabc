// Errors the auth services throw on purpose. Turning them into GraphQL answers or CLI messages is done in
// one place, src/schema/error-translation.ts; nothing here knows about GraphQL.

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
  | 'REFRESH_TOKEN_MISSING'
  | 'USER_NOT_FOUND'
  | 'LAST_ADMIN'
  | 'TOKEN_INVALID'
  | 'TOKEN_EXPIRED'
  | 'EMAIL_NOT_VERIFIED';

/**
 * An expected failure: the request broke a rule the caller can see and act on (invalid input, username
 * taken, wrong password, last administrator…), not a fault. It carries a stable code and a message that is
 * safe to show; GraphQL returns it as a typed member of a result union, the CLI prints its message.
 * Anything that is not an ExpectedFailure (or one of the cross-cutting refusals below) stays masked.
 */
export abstract class ExpectedFailure extends Error {
  abstract readonly code: ErrorCode;
}

export interface FieldError {
  readonly field: string;
  readonly message: string;
}

export class ValidationError extends ExpectedFailure {
  readonly code = 'VALIDATION_FAILED';
  constructor(readonly fieldErrors: readonly FieldError[]) {
    super(`Invalid input: ${fieldErrors.map((error) => `${error.field}: ${error.message}`).join('; ')}`);
  }
}

export class UsernameTakenError extends ExpectedFailure {
  readonly code = 'USERNAME_TAKEN';
  constructor() {
    super('That username is already taken.');
  }
}

export class EmailTakenError extends ExpectedFailure {
  readonly code = 'EMAIL_TAKEN';
  constructor() {
    super('That email address is already registered.');
  }
}

/** Unknown user or wrong password (deliberately the same), or too many failures for the name. */
export class InvalidCredentialsError extends ExpectedFailure {
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

  /** A signed-in caller typed their current password wrong: the account is known, so the message may say so. */
  static wrongCurrentPassword(): InvalidCredentialsError {
    const error = new InvalidCredentialsError();
    error.message = 'The current password is wrong.';
    return error;
  }
}

/** Only ever returned after the correct password was given, so it reveals nothing to a guesser. */
export class AccountDisabledError extends ExpectedFailure {
  readonly code = 'ACCOUNT_DISABLED';
  constructor() {
    super('This account is disabled.');
  }
}

export type RefreshFailure = 'REFRESH_TOKEN_INVALID' | 'REFRESH_TOKEN_EXPIRED' | 'REFRESH_TOKEN_REVOKED' | 'REFRESH_TOKEN_REUSED' | 'REFRESH_TOKEN_MISSING';

const refreshMessages: Record<RefreshFailure, string> = {
  REFRESH_TOKEN_INVALID: 'The refresh token is not valid.',
  REFRESH_TOKEN_EXPIRED: 'The session has expired; log in again.',
  REFRESH_TOKEN_REVOKED: 'The session has been ended; log in again.',
  REFRESH_TOKEN_REUSED: 'The refresh token was already used; the session has been ended for safety. Log in again.',
  REFRESH_TOKEN_MISSING: 'No refresh token was sent; log in again.',
};

export class InvalidRefreshTokenError extends ExpectedFailure {
  constructor(readonly code: RefreshFailure) {
    super(refreshMessages[code]);
  }
}

export class UserNotFoundError extends ExpectedFailure {
  readonly code = 'USER_NOT_FOUND';
  constructor() {
    super('No such user.');
  }
}

/** Refuses the change that would leave no active administrator to undo it. */
export class LastAdminError extends ExpectedFailure {
  readonly code = 'LAST_ADMIN';
  constructor() {
    super('This is the last active administrator; make another user an administrator first.');
  }
}

/**
 * A mailed link's token or a typed code that cannot be redeemed. TOKEN_EXPIRED only for a secret that
 * was right but is past its lifetime; anything else (unknown, used, replaced by a newer one, issued for
 * another purpose or for a state that has changed since, a wrong code) is TOKEN_INVALID.
 */
export class InvalidTokenError extends ExpectedFailure {
  constructor(readonly code: 'TOKEN_INVALID' | 'TOKEN_EXPIRED' = 'TOKEN_INVALID') {
    super(
      code === 'TOKEN_EXPIRED'
        ? 'This link or code has expired; ask for a new one.'
        : 'This link or code is not valid (it may have been used or replaced by a newer one).',
    );
  }

  static expired(): InvalidTokenError {
    return new InvalidTokenError('TOKEN_EXPIRED');
  }
}

/** With EMAIL_VERIFICATION=required; only ever returned after the correct password, like ACCOUNT_DISABLED. */
export class EmailNotVerifiedError extends ExpectedFailure {
  readonly code = 'EMAIL_NOT_VERIFIED';
  constructor() {
    super('Verify your email address first: follow the link in the verification mail, or ask for a new one.');
  }
}

/** A feature the operator turned off (EMAIL_ENABLED=false). Cross-cutting: GraphQL answers FEATURE_DISABLED. */
export class FeatureDisabledError extends Error {
  constructor(readonly feature: string) {
    super(`${feature} is turned off on this server.`);
  }
}

export type AuthenticationFailure = 'malformed' | 'invalid' | 'expired' | 'session_ended' | 'user_unavailable' | 'token_revoked';

/**
 * Presented credentials that cannot be accepted, or a session or account that ended under the request.
 * Cross-cutting (GraphQL answers it as UNAUTHENTICATED, not as a union member). `reason` is safe to show.
 */
export class AuthenticationError extends Error {
  constructor(
    readonly reason: AuthenticationFailure,
    message: string,
  ) {
    super(message);
  }

  /** The caller's session was logged out, revoked or expired. */
  static sessionEnded(): AuthenticationError {
    return new AuthenticationError('session_ended', 'The session has ended; log in again.');
  }

  /** The caller's account was disabled or deleted. */
  static accountUnavailable(): AuthenticationError {
    return new AuthenticationError('user_unavailable', 'The account is not available.');
  }
}
