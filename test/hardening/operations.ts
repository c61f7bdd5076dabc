// The operations a typical Gatehouse client sends: every field of the schema, written the way a client
// author would (named operations, variables, fragments, a fragment on the Error interface). The
// hardening limits must leave every one of them working at their defaults.

export const FRAGMENTS = /* GraphQL */ `
  fragment Failure on Error { __typename code message }
  fragment FieldErrors on ValidationError { fieldErrors { field message } }
  fragment UserFields on User { id username email fullname role createdAt }
  fragment Tokens on AuthPayload { accessToken refreshToken tokenType expiresIn user { ...UserFields } }
  fragment SessionFields on Session { id current createdAt lastUsedAt expiresAt userAgent ip }
  fragment ApiTokenFields on ApiToken { id name scopes createdAt expiresAt lastUsedAt }
`;

/** One document, one operation per entry (operationName = key). Every fragment goes with each. */
export const CLIENT_OPERATIONS = {
  UserExists: /* GraphQL */ `query UserExists($username: String!) { userExists(username: $username) }`,
  Register: /* GraphQL */ `mutation Register($input: RegisterInput!) {
    register(input: $input) {
      __typename ...Tokens ...Failure ...FieldErrors
      ... on UserCreated { user { ...UserFields } }
    }
  }`,
  Login: /* GraphQL */ `mutation Login($input: LoginInput!) {
    login(input: $input) {
      __typename ...Tokens ...Failure ...FieldErrors
      ... on InvalidCredentialsError { retryAfter }
    }
  }`,
  Me: /* GraphQL */ `query Me { me { ...UserFields } }`,
  PublicUser: /* GraphQL */ `query PublicUser($id: ID!) { user(id: $id) { id username fullname } }`,
  Account: /* GraphQL */ `query Account {
    me { ...UserFields }
    mySessions { ...SessionFields }
    apiTokens { ...ApiTokenFields }
  }`,
  Refresh: /* GraphQL */ `mutation Refresh($refreshToken: String!) {
    refresh(refreshToken: $refreshToken) { __typename ...Tokens ...Failure }
  }`,
  UpdateProfile: /* GraphQL */ `mutation UpdateProfile($input: UpdateProfileInput!) {
    updateProfile(input: $input) { __typename ... on User { ...UserFields } ...Failure ...FieldErrors }
  }`,
  ChangePassword: /* GraphQL */ `mutation ChangePassword($currentPassword: String!, $newPassword: String!) {
    changePassword(currentPassword: $currentPassword, newPassword: $newPassword) {
      __typename ... on PasswordChanged { endedSessions } ...Failure ...FieldErrors
      ... on InvalidCredentialsError { retryAfter }
    }
  }`,
  CreateApiToken: /* GraphQL */ `mutation CreateApiToken($input: CreateApiTokenInput!) {
    createApiToken(input: $input) {
      __typename ... on ApiTokenCreated { token apiToken { ...ApiTokenFields } } ...Failure ...FieldErrors
    }
  }`,
  RevokeApiToken: /* GraphQL */ `mutation RevokeApiToken($id: ID!) { revokeApiToken(id: $id) }`,
  RevokeSession: /* GraphQL */ `mutation RevokeSession($id: ID!) { revokeSession(id: $id) }`,
  // An admin screen: the largest page the connection serves (maxSize 100), every field, both directions.
  Users: /* GraphQL */ `query Users($search: String, $after: String) {
    users(first: 100, after: $after, search: $search) {
      edges { cursor node { ...UserFields } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }`,
  UsersBackwards: /* GraphQL */ `query UsersBackwards($before: String) {
    users(last: 100, before: $before) {
      edges { cursor node { ...UserFields } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }`,
  SetUserRole: /* GraphQL */ `mutation SetUserRole($id: ID!, $role: Role!) {
    setUserRole(id: $id, role: $role) { __typename ... on User { ...UserFields } ...Failure }
  }`,
  DisableUser: /* GraphQL */ `mutation DisableUser($id: ID!) {
    disableUser(id: $id) { __typename ... on User { ...UserFields } ...Failure }
  }`,
  EnableUser: /* GraphQL */ `mutation EnableUser($id: ID!) {
    enableUser(id: $id) { __typename ... on User { ...UserFields } ...Failure }
  }`,
  DeleteUser: /* GraphQL */ `mutation DeleteUser($id: ID!) {
    deleteUser(id: $id) { __typename ... on User { ...UserFields } ...Failure }
  }`,
  Logout: /* GraphQL */ `mutation Logout($allSessions: Boolean!) { logout(allSessions: $allSessions) }`,
  DeleteAccount: /* GraphQL */ `mutation DeleteAccount($password: String!) {
    deleteAccount(password: $password) { __typename ... on AccountDeleted { id } ...Failure ...FieldErrors }
  }`,
} as const;

export type ClientOperation = keyof typeof CLIENT_OPERATIONS;

/** The whole client document: every operation and every fragment, as a generated client would ship it. */
export const CLIENT_DOCUMENT = `${Object.values(CLIENT_OPERATIONS).join('\n')}\n${FRAGMENTS}`;

/** Only the fragments an operation uses (unused fragments are a validation error). */
export function documentFor(name: ClientOperation): string {
  const operation = CLIENT_OPERATIONS[name];
  const needed = new Set<string>();
  const definitions = new Map([...FRAGMENTS.matchAll(/fragment (\w+) on \w+ \{[^\n]*\}/g)].map((match) => [match[1]!, match[0]]));
  const visit = (text: string) => {
    for (const [, fragment] of text.matchAll(/\.\.\.(\w+)/g)) {
      if (!needed.has(fragment!) && definitions.has(fragment!)) {
        needed.add(fragment!);
        visit(definitions.get(fragment!)!);
      }
    }
  };
  visit(operation);
  return `${operation}\n${[...needed].map((fragment) => definitions.get(fragment)).join('\n')}`;
}

/** X-Forwarded-For as the one trusted proxy would set it (the app must run with TRUST_PROXY=true). */
export const fromIp = (ip: string) => ({ 'x-forwarded-for': ip });
