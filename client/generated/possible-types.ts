
      export type PossibleTypesResultData = {
  "possibleTypes": {
    "ChangePasswordResult": [
      "InvalidCredentialsError",
      "PasswordChanged",
      "ValidationError"
    ],
    "ConfirmEmailChangeResult": [
      "EmailTakenError",
      "InvalidTokenError",
      "User"
    ],
    "CreateApiTokenResult": [
      "ApiTokenCreated",
      "ValidationError"
    ],
    "DeleteAccountResult": [
      "AccountDeleted",
      "InvalidCredentialsError",
      "LastAdminError",
      "ValidationError"
    ],
    "DeleteUserResult": [
      "LastAdminError",
      "User",
      "UserNotFoundError"
    ],
    "DisableUserResult": [
      "LastAdminError",
      "User",
      "UserNotFoundError"
    ],
    "EnableUserResult": [
      "User",
      "UserNotFoundError"
    ],
    "Error": [
      "AccountDisabledError",
      "EmailNotVerifiedError",
      "EmailTakenError",
      "InvalidCredentialsError",
      "InvalidRefreshTokenError",
      "InvalidTokenError",
      "LastAdminError",
      "UsernameTakenError",
      "UserNotFoundError",
      "ValidationError"
    ],
    "LoginResult": [
      "AccountDisabledError",
      "AuthPayload",
      "EmailNotVerifiedError",
      "InvalidCredentialsError",
      "InvalidTokenError",
      "ValidationError"
    ],
    "RefreshResult": [
      "AuthPayload",
      "InvalidRefreshTokenError"
    ],
    "RegisterResult": [
      "AuthPayload",
      "EmailTakenError",
      "UserCreated",
      "UsernameTakenError",
      "ValidationError",
      "VerificationPending"
    ],
    "RequestEmailChangeResult": [
      "EmailChangeRequested",
      "InvalidCredentialsError",
      "ValidationError"
    ],
    "ResetPasswordResult": [
      "AccountDisabledError",
      "AuthPayload",
      "InvalidTokenError",
      "ValidationError"
    ],
    "SetUserRoleResult": [
      "LastAdminError",
      "User",
      "UserNotFoundError"
    ],
    "UpdateProfileResult": [
      "EmailTakenError",
      "User",
      "ValidationError"
    ],
    "VerifyEmailResult": [
      "InvalidTokenError",
      "User"
    ]
  }
};
      const result: PossibleTypesResultData = {
  "possibleTypes": {
    "ChangePasswordResult": [
      "InvalidCredentialsError",
      "PasswordChanged",
      "ValidationError"
    ],
    "ConfirmEmailChangeResult": [
      "EmailTakenError",
      "InvalidTokenError",
      "User"
    ],
    "CreateApiTokenResult": [
      "ApiTokenCreated",
      "ValidationError"
    ],
    "DeleteAccountResult": [
      "AccountDeleted",
      "InvalidCredentialsError",
      "LastAdminError",
      "ValidationError"
    ],
    "DeleteUserResult": [
      "LastAdminError",
      "User",
      "UserNotFoundError"
    ],
    "DisableUserResult": [
      "LastAdminError",
      "User",
      "UserNotFoundError"
    ],
    "EnableUserResult": [
      "User",
      "UserNotFoundError"
    ],
    "Error": [
      "AccountDisabledError",
      "EmailNotVerifiedError",
      "EmailTakenError",
      "InvalidCredentialsError",
      "InvalidRefreshTokenError",
      "InvalidTokenError",
      "LastAdminError",
      "UsernameTakenError",
      "UserNotFoundError",
      "ValidationError"
    ],
    "LoginResult": [
      "AccountDisabledError",
      "AuthPayload",
      "EmailNotVerifiedError",
      "InvalidCredentialsError",
      "InvalidTokenError",
      "ValidationError"
    ],
    "RefreshResult": [
      "AuthPayload",
      "InvalidRefreshTokenError"
    ],
    "RegisterResult": [
      "AuthPayload",
      "EmailTakenError",
      "UserCreated",
      "UsernameTakenError",
      "ValidationError",
      "VerificationPending"
    ],
    "RequestEmailChangeResult": [
      "EmailChangeRequested",
      "InvalidCredentialsError",
      "ValidationError"
    ],
    "ResetPasswordResult": [
      "AccountDisabledError",
      "AuthPayload",
      "InvalidTokenError",
      "ValidationError"
    ],
    "SetUserRoleResult": [
      "LastAdminError",
      "User",
      "UserNotFoundError"
    ],
    "UpdateProfileResult": [
      "EmailTakenError",
      "User",
      "ValidationError"
    ],
    "VerifyEmailResult": [
      "InvalidTokenError",
      "User"
    ]
  }
};
      export default result;
    