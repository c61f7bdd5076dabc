import type { AuthResult, RegisterRequest } from '../auth/accounts.js';
import {
  AccountDisabledError,
  EmailNotVerifiedError,
  EmailTakenError,
  InvalidCredentialsError,
  InvalidTokenError,
  UsernameTakenError,
  ValidationError,
} from '../auth/errors.js';
import type { RequestContext } from '../context.js';
import { audited } from './audit.js';
import { builder } from './builder.js';
import { enforceRateLimit } from './rate-limits.js';
import type { UserRecord } from '../db/database.js';
import { adminActor } from '../auth/admin-actor.js';
import { requireAdmin, requireViewer } from './guards.js';
import { failureAsResult, failureClassOf, withCommitTimeRefusals } from './error-translation.js';
import { User } from './user.js';

export const AuthPayload = builder.objectRef<AuthResult>('AuthPayload').implement({
  description:
    'Tokens for a new or continued session. Keep the refresh token secret; it is shown only now. With REFRESH_TOKEN_TRANSPORT cookie or both, the answer also sets it in the httpOnly cookie `gatehouse_refresh`.',
  fields: (t) => ({
    accessToken: t.exposeString('accessToken', { description: 'Send as `Authorization: Bearer <accessToken>`.' }),
    refreshToken: t.string({
      nullable: true,
      description:
        "Exchange for new tokens with `refresh`; single use. null with REFRESH_TOKEN_TRANSPORT=cookie: the token is then only in the httpOnly cookie `gatehouse_refresh`, out of JavaScript's reach (`refresh` and `logout` read it). Present with body (the default) and both.",
      // Decided per request by the transport, not by what the client selects: with cookie it never
      // reaches a script, so an XSS cannot take the session with it.
      resolve: (payload, _args, ctx) => (ctx.refreshCookie.inBody ? payload.refreshToken : null),
    }),
    tokenType: t.exposeString('tokenType', { description: 'Always "Bearer".' }),
    expiresIn: t.exposeInt('expiresIn', { description: 'Seconds until the access token expires.' }),
    user: t.field({ type: User, resolve: (payload) => payload.user }),
  }),
});

const UserCreated = builder.objectRef<{ user: UserRecord }>('UserCreated').implement({
  description: 'An account an administrator created (REGISTRATION_MODE=admin). No session was started for it.',
  fields: (t) => ({ user: t.field({ type: User, resolve: (created) => created.user }) }),
});

const VerificationPending = builder.objectRef<{ user: UserRecord; verificationRequired: true }>('VerificationPending').implement({
  description:
    'The account was created, but EMAIL_VERIFICATION=required: no session yet. A verification mail went to the address; `login` answers EmailNotVerifiedError until its link is followed (`verifyEmail`).',
  fields: (t) => ({ user: t.field({ type: User, resolve: (created) => created.user }) }),
});

// The errors `register` returns as data; the same object types the errors plugin uses elsewhere.
const registerErrorNames = new Map<typeof ValidationError | typeof UsernameTakenError | typeof EmailTakenError, string>([
  [ValidationError, 'ValidationError'],
  [UsernameTakenError, 'UsernameTakenError'],
  [EmailTakenError, 'EmailTakenError'],
]);
const REGISTER_ERRORS = [...registerErrorNames.keys()];

// Built by hand rather than by the errors plugin: it has two success shapes (open and admin mode),
// and a union cannot contain another union.
const RegisterResult = builder.unionType('RegisterResult', {
  types: [AuthPayload, UserCreated, VerificationPending, ...REGISTER_ERRORS],
  resolveType: (value) => {
    const errorClass = failureClassOf(value);
    const errorName = errorClass && registerErrorNames.get(errorClass as typeof ValidationError);
    if (errorName) return errorName;
    if ('accessToken' in value) return 'AuthPayload';
    return 'verificationRequired' in value ? 'VerificationPending' : 'UserCreated';
  },
});

// Every way of signing in (password, mailed link or code) answers the same union, so a client handles one
// shape. Built by hand because several fields share it (the errors plugin makes one union per field).
const LOGIN_ERRORS = [ValidationError, InvalidCredentialsError, AccountDisabledError, EmailNotVerifiedError, InvalidTokenError] as const;
const loginErrorNames = new Map<unknown, string>([
  [ValidationError, 'ValidationError'],
  [InvalidCredentialsError, 'InvalidCredentialsError'],
  [AccountDisabledError, 'AccountDisabledError'],
  [EmailNotVerifiedError, 'EmailNotVerifiedError'],
  [InvalidTokenError, 'InvalidTokenError'],
]);

export const LoginResult = builder.unionType('LoginResult', {
  types: [AuthPayload, ...LOGIN_ERRORS],
  resolveType: (value) => loginErrorNames.get(failureClassOf(value)) ?? 'AuthPayload',
});

type LoginFailure = InstanceType<(typeof LOGIN_ERRORS)[number]>;

/**
 * Every answer that issues a refresh token goes through here: with cookie transport the token is set in
 * the httpOnly cookie (whatever fields the client selected). Other answers pass unchanged.
 */
export function handOverSession<T extends object>(ctx: RequestContext, result: T): T {
  if ('refreshToken' in result && 'refreshTokenExpiresIn' in result) {
    const issued = result as unknown as AuthResult;
    ctx.refreshCookie.issue(issued.refreshToken, issued.refreshTokenExpiresIn);
  }
  return result;
}

/**
 * The resolver of a field answering LoginResult: `signIn` runs audited as `event` (the session's user
 * is the subject), and its expected failures come back as members of the union.
 */
export function signInResolver<Args>(event: string, signIn: (args: Args, ctx: RequestContext) => Promise<AuthResult>) {
  const run = audited(
    event,
    async (_root: unknown, args: Args, ctx: RequestContext) => handOverSession(ctx, await signIn(args, ctx)),
    (result) => result.user.id,
  );
  return async (root: unknown, args: Args, ctx: RequestContext): Promise<AuthResult | LoginFailure> => {
    try {
      return await run(root, args, ctx);
    } catch (error) {
      return failureAsResult<LoginFailure>(error, LOGIN_ERRORS);
    }
  };
}

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

export function clientMeta(ctx: RequestContext) {
  return { userAgent: ctx.userAgent, ip: ctx.clientIp, network: ctx.clientNetwork };
}

const register = audited(
  'register',
  async (
    _root: unknown,
    { input }: { input: RegisterRequest },
    ctx: RequestContext,
  ): Promise<AuthResult | { user: UserRecord; verificationRequired?: true }> => {
    await enforceRateLimit(ctx, 'register');
    if (ctx.services.config.registrationMode === 'open') return handOverSession(ctx, await ctx.services.accounts.register(input, clientMeta(ctx)));
    await requireAdmin(ctx);
    // The caller is checked again where the account is inserted (authorization decided at commit).
    const actor = adminActor(await requireViewer(ctx));
    return { user: await withCommitTimeRefusals(() => ctx.services.accounts.createUser(input, 'USER', actor)) };
  },
  (result) => result.user.id,
);

builder.mutationFields((t) => ({
  register: t.field({
    type: RegisterResult,
    description:
      'Creates an account. Open registration logs the new user in (AuthPayload); with REGISTRATION_MODE=admin only an administrator may call it, and it returns UserCreated without starting a session.',
    args: { input: t.arg({ type: RegisterInput, required: true }) },
    resolve: async (root, args, ctx) => {
      try {
        return await register(root, args, ctx);
      } catch (error) {
        return failureAsResult<ValidationError>(error, REGISTER_ERRORS);
      }
    },
  }),
  login: t.field({
    type: LoginResult,
    args: { input: t.arg({ type: LoginInput, required: true }) },
    resolve: signInResolver('login', async ({ input }: { input: { username: string; password: string } }, ctx) => {
      await enforceRateLimit(ctx, 'login');
      // Per account too, so one address cannot spend its whole budget guessing a single password.
      await enforceRateLimit(ctx, 'loginAccount', input.username.slice(0, 256).toLowerCase());
      return ctx.services.accounts.login(input, clientMeta(ctx));
    }),
  }),
}));
