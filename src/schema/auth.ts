import type { AuthResult } from '../auth/accounts.js';
import {
  AccountDisabledError,
  EmailTakenError,
  InvalidCredentialsError,
  UsernameTakenError,
  ValidationError,
} from '../auth/errors.js';
import type { RequestContext } from '../context.js';
import { builder } from './builder.js';
import { enforceRateLimit } from './rate-limits.js';
import { User } from './user.js';

export const AuthPayload = builder.objectRef<AuthResult>('AuthPayload').implement({
  description: 'Tokens for a new or continued session. Keep the refresh token secret; it is shown only now.',
  fields: (t) => ({
    accessToken: t.exposeString('accessToken', { description: 'Send as `Authorization: Bearer <accessToken>`.' }),
    refreshToken: t.exposeString('refreshToken', { description: 'Exchange for new tokens with `refresh`; single use.' }),
    tokenType: t.exposeString('tokenType', { description: 'Always "Bearer".' }),
    expiresIn: t.exposeInt('expiresIn', { description: 'Seconds until the access token expires.' }),
    user: t.field({ type: User, resolve: (payload) => payload.user }),
  }),
});

const RegisterInput = builder.inputType('RegisterInput', {
  fields: (t) => ({
    username: t.string({ required: true, description: '3-32 of letters, digits, _ . -; unique regardless of case.' }),
    password: t.string({ required: true, description: '8-256 characters, not the username.' }),
    email: t.string({ required: false }),
    fullname: t.string({ required: false }),
  }),
});

const LoginInput = builder.inputType('LoginInput', {
  fields: (t) => ({
    username: t.string({ required: true, description: 'The username or the email address.' }),
    password: t.string({ required: true }),
  }),
});

function clientMeta(ctx: RequestContext) {
  return { userAgent: ctx.userAgent, ip: ctx.clientIp };
}

builder.mutationFields((t) => ({
  register: t.field({
    type: AuthPayload,
    args: { input: t.arg({ type: RegisterInput, required: true }) },
    errors: { types: [ValidationError, UsernameTakenError, EmailTakenError], union: { name: 'RegisterResult' } },
    resolve: async (_root, { input }, ctx) => {
      await enforceRateLimit(ctx, 'register');
      return ctx.services.accounts.register(input, clientMeta(ctx));
    },
  }),
  login: t.field({
    type: AuthPayload,
    args: { input: t.arg({ type: LoginInput, required: true }) },
    errors: {
      types: [ValidationError, InvalidCredentialsError, AccountDisabledError],
      union: { name: 'LoginResult' },
    },
    resolve: async (_root, { input }, ctx) => {
      await enforceRateLimit(ctx, 'login');
      // Per account too, so one address cannot spend its whole budget guessing a single password.
      await enforceRateLimit(ctx, 'loginAccount', input.username.slice(0, 256).toLowerCase());
      return ctx.services.accounts.login(input, clientMeta(ctx));
    },
  }),
}));
