/* eslint-disable */
import * as types from './graphql.js';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "fragment SessionUser on User {\n  id\n  username\n  email\n  emailVerified\n  fullname\n  role\n}\n\nfragment Tokens on AuthPayload {\n  accessToken\n  refreshToken\n  expiresIn\n  user {\n    ...SessionUser\n  }\n}\n\nmutation Register($input: RegisterInput!) {\n  register(input: $input) {\n    __typename\n    ...Tokens\n    ... on Error {\n      code\n      message\n    }\n    ... on ValidationError {\n      fieldErrors {\n        field\n        message\n      }\n    }\n  }\n}\n\nmutation Login($input: LoginInput!) {\n  login(input: $input) {\n    __typename\n    ...Tokens\n    ... on Error {\n      code\n      message\n    }\n    ... on ValidationError {\n      fieldErrors {\n        field\n        message\n      }\n    }\n  }\n}\n\nmutation Refresh($refreshToken: String) {\n  refresh(refreshToken: $refreshToken) {\n    __typename\n    ...Tokens\n    ... on Error {\n      code\n      message\n    }\n  }\n}\n\nmutation Logout($allSessions: Boolean! = false, $refreshToken: String) {\n  logout(allSessions: $allSessions, refreshToken: $refreshToken)\n}\n\nquery Me {\n  me {\n    ...SessionUser\n  }\n}\n\nquery MySessions {\n  mySessions {\n    id\n    createdAt\n    lastUsedAt\n    expiresAt\n    ip\n    userAgent\n    current\n  }\n}": typeof types.SessionUserFragmentDoc,
};
const documents: Documents = {
    "fragment SessionUser on User {\n  id\n  username\n  email\n  emailVerified\n  fullname\n  role\n}\n\nfragment Tokens on AuthPayload {\n  accessToken\n  refreshToken\n  expiresIn\n  user {\n    ...SessionUser\n  }\n}\n\nmutation Register($input: RegisterInput!) {\n  register(input: $input) {\n    __typename\n    ...Tokens\n    ... on Error {\n      code\n      message\n    }\n    ... on ValidationError {\n      fieldErrors {\n        field\n        message\n      }\n    }\n  }\n}\n\nmutation Login($input: LoginInput!) {\n  login(input: $input) {\n    __typename\n    ...Tokens\n    ... on Error {\n      code\n      message\n    }\n    ... on ValidationError {\n      fieldErrors {\n        field\n        message\n      }\n    }\n  }\n}\n\nmutation Refresh($refreshToken: String) {\n  refresh(refreshToken: $refreshToken) {\n    __typename\n    ...Tokens\n    ... on Error {\n      code\n      message\n    }\n  }\n}\n\nmutation Logout($allSessions: Boolean! = false, $refreshToken: String) {\n  logout(allSessions: $allSessions, refreshToken: $refreshToken)\n}\n\nquery Me {\n  me {\n    ...SessionUser\n  }\n}\n\nquery MySessions {\n  mySessions {\n    id\n    createdAt\n    lastUsedAt\n    expiresAt\n    ip\n    userAgent\n    current\n  }\n}": types.SessionUserFragmentDoc,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "fragment SessionUser on User {\n  id\n  username\n  email\n  emailVerified\n  fullname\n  role\n}\n\nfragment Tokens on AuthPayload {\n  accessToken\n  refreshToken\n  expiresIn\n  user {\n    ...SessionUser\n  }\n}\n\nmutation Register($input: RegisterInput!) {\n  register(input: $input) {\n    __typename\n    ...Tokens\n    ... on Error {\n      code\n      message\n    }\n    ... on ValidationError {\n      fieldErrors {\n        field\n        message\n      }\n    }\n  }\n}\n\nmutation Login($input: LoginInput!) {\n  login(input: $input) {\n    __typename\n    ...Tokens\n    ... on Error {\n      code\n      message\n    }\n    ... on ValidationError {\n      fieldErrors {\n        field\n        message\n      }\n    }\n  }\n}\n\nmutation Refresh($refreshToken: String) {\n  refresh(refreshToken: $refreshToken) {\n    __typename\n    ...Tokens\n    ... on Error {\n      code\n      message\n    }\n  }\n}\n\nmutation Logout($allSessions: Boolean! = false, $refreshToken: String) {\n  logout(allSessions: $allSessions, refreshToken: $refreshToken)\n}\n\nquery Me {\n  me {\n    ...SessionUser\n  }\n}\n\nquery MySessions {\n  mySessions {\n    id\n    createdAt\n    lastUsedAt\n    expiresAt\n    ip\n    userAgent\n    current\n  }\n}"): (typeof documents)["fragment SessionUser on User {\n  id\n  username\n  email\n  emailVerified\n  fullname\n  role\n}\n\nfragment Tokens on AuthPayload {\n  accessToken\n  refreshToken\n  expiresIn\n  user {\n    ...SessionUser\n  }\n}\n\nmutation Register($input: RegisterInput!) {\n  register(input: $input) {\n    __typename\n    ...Tokens\n    ... on Error {\n      code\n      message\n    }\n    ... on ValidationError {\n      fieldErrors {\n        field\n        message\n      }\n    }\n  }\n}\n\nmutation Login($input: LoginInput!) {\n  login(input: $input) {\n    __typename\n    ...Tokens\n    ... on Error {\n      code\n      message\n    }\n    ... on ValidationError {\n      fieldErrors {\n        field\n        message\n      }\n    }\n  }\n}\n\nmutation Refresh($refreshToken: String) {\n  refresh(refreshToken: $refreshToken) {\n    __typename\n    ...Tokens\n    ... on Error {\n      code\n      message\n    }\n  }\n}\n\nmutation Logout($allSessions: Boolean! = false, $refreshToken: String) {\n  logout(allSessions: $allSessions, refreshToken: $refreshToken)\n}\n\nquery Me {\n  me {\n    ...SessionUser\n  }\n}\n\nquery MySessions {\n  mySessions {\n    id\n    createdAt\n    lastUsedAt\n    expiresAt\n    ip\n    userAgent\n    current\n  }\n}"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;