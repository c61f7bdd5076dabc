import {
  AccountDisabledError,
  type ExpectedFailure,
  EmailTakenError,
  InvalidCredentialsError,
  InvalidRefreshTokenError,
  UsernameTakenError,
  ValidationError,
  UserNotFoundError,
  LastAdminError,
  InvalidTokenError,
  EmailNotVerifiedError,
  type ErrorCode as ErrorCodeValue,
  type FieldError,
} from '../auth/errors.js';
import { builder } from './builder.js';

const errorCodes: Record<ErrorCodeValue, string> = {
  VALIDATION_FAILED: 'The input broke a rule; see fieldErrors.',
  USERNAME_TAKEN: 'The username is registered already (compared case-insensitively).',
  EMAIL_TAKEN: 'The email address is registered already (compared case-insensitively).',
  INVALID_CREDENTIALS: 'Unknown user or wrong password; deliberately indistinguishable.',
  LOGIN_LOCKED: 'Too many failed logins for this name; wait retryAfter seconds. Says nothing about whether the account exists.',
  ACCOUNT_DISABLED: 'The password was right but an administrator disabled the account.',
  REFRESH_TOKEN_INVALID: 'The refresh token is malformed, forged or of a session that no longer exists.',
  REFRESH_TOKEN_EXPIRED: 'The session passed its idle timeout or absolute lifetime.',
  REFRESH_TOKEN_REVOKED: 'The session was logged out or revoked.',
  REFRESH_TOKEN_REUSED: 'An already used refresh token was presented; the session has been revoked.',
  REFRESH_TOKEN_MISSING: 'Neither the refreshToken argument nor (with REFRESH_TOKEN_TRANSPORT cookie or both) the refresh cookie was sent.',
  USER_NOT_FOUND: 'No user has that id.',
  LAST_ADMIN: 'The change would leave no active administrator.',
  TOKEN_INVALID:
    'The mailed link or code is unknown, used, replaced by a newer one, meant for something else, or no longer matches the account (e.g. the password or address changed since).',
  TOKEN_EXPIRED: 'The mailed link or code was right but is past its lifetime; ask for a new one.',
  EMAIL_NOT_VERIFIED: 'The password was right, but EMAIL_VERIFICATION=required and the address is not verified yet.',
};

export const ErrorCode = builder.enumType('ErrorCode', {
  description: 'Stable machine-readable reason of an expected failure.',
  values: Object.fromEntries(Object.entries(errorCodes).map(([code, description]) => [code, { value: code, description }])) as {
    [K in ErrorCodeValue]: { value: K; description: string };
  },
});

export const ErrorInterface = builder.interfaceRef<ExpectedFailure>('Error').implement({
  description: 'An expected failure, returned as a member of a result union.',
  fields: (t) => ({
    message: t.exposeString('message'),
    code: t.field({ type: ErrorCode, resolve: (error) => error.code }),
  }),
});

const FieldErrorType = builder.objectRef<FieldError>('FieldError').implement({
  description: 'What is wrong with one input field.',
  fields: (t) => ({
    field: t.exposeString('field', { description: 'Path of the field in the input, e.g. "password".' }),
    message: t.exposeString('message'),
  }),
});

builder.objectType(ValidationError, {
  name: 'ValidationError',
  interfaces: [ErrorInterface],
  fields: (t) => ({ fieldErrors: t.field({ type: [FieldErrorType], resolve: (error) => error.fieldErrors }) }),
});

builder.objectType(InvalidCredentialsError, {
  name: 'InvalidCredentialsError',
  interfaces: [ErrorInterface],
  fields: (t) => ({
    retryAfter: t.exposeInt('retryAfter', { nullable: true, description: 'With LOGIN_LOCKED: seconds until this name may be tried again.' }),
  }),
});

for (const [errorClass, name] of [
  [UsernameTakenError, 'UsernameTakenError'],
  [EmailTakenError, 'EmailTakenError'],
  [AccountDisabledError, 'AccountDisabledError'],
  [InvalidRefreshTokenError, 'InvalidRefreshTokenError'],
  [UserNotFoundError, 'UserNotFoundError'],
  [LastAdminError, 'LastAdminError'],
  [InvalidTokenError, 'InvalidTokenError'],
  [EmailNotVerifiedError, 'EmailNotVerifiedError'],
] as const) {
  builder.objectType(errorClass, { name, interfaces: [ErrorInterface], fields: () => ({}) });
}
