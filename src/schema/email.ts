import type { EmailChangeRequested as EmailChangeRequestedResult } from '../auth/email-flows.js';
import { AccountDisabledError, EmailTakenError, InvalidCredentialsError, InvalidTokenError, ValidationError } from '../auth/errors.js';
import { audited } from './audit.js';
import { AuthPayload, clientMeta, handOverSession, LoginResult, signInResolver } from './auth.js';
import { builder } from './builder.js';
import { failureUnion, withCommitTimeRefusals, withValidationRefusal } from './error-translation.js';
import { requireSession, requireViewer } from './guards.js';
import { enforceMailLimits, enforceRateLimit } from './rate-limits.js';
import { User } from './user.js';

// The email flows (src/auth/email-flows.ts). Every field is a mutation, and GraphQL over GET carries no
// mutations: a mail scanner following a link (which points at the app, not here) cannot use a token up.

const EmailChangeRequested = builder.objectRef<EmailChangeRequestedResult>('EmailChangeRequested').implement({
  description:
    'A confirmation went to the new address and a notice to the old one. The address changes when the link in the confirmation is used (`confirmEmailChange`).',
  fields: (t) => ({
    email: t.exposeString('email', { description: 'The new address, as typed.' }),
    expiresIn: t.exposeInt('expiresInSeconds', { description: 'Seconds the confirmation link works.' }),
  }),
});

const TOKEN_DESCRIPTION = 'The `token` parameter of the link in the mail.';

builder.mutationFields((t) => ({
  requestEmailVerification: t.boolean({
    description:
      'Mails a new verification link. Signed in, without `email`: to the current address. Not signed in, with `email` (e.g. after EmailNotVerifiedError): to that address if an unverified account has it; always true, whatever the address. Nothing is sent for an address that is verified already.',
    args: { email: t.arg.string({ required: false }) },
    resolve: audited('requestEmailVerification', async (_root, { email }, ctx) => {
      if (email !== null && email !== undefined) {
        await enforceMailLimits(ctx, 'verify_email', email);
        return withValidationRefusal(() => ctx.services.email.requestVerificationByAddress(email));
      }
      const viewer = await requireViewer(ctx);
      await enforceMailLimits(ctx, 'verify_email', `account:${viewer.userId}`);
      return withValidationRefusal(() => withCommitTimeRefusals(() => ctx.services.email.requestVerification(viewer.userId)));
    }),
  }),
  verifyEmail: t.field({
    type: User,
    description: 'Marks the address verified with the token from the verification mail (single use).',
    args: { token: t.arg.string({ required: true, description: TOKEN_DESCRIPTION }) },
    errors: failureUnion('VerifyEmailResult', [InvalidTokenError]),
    resolve: audited(
      'verifyEmail',
      async (_root, { token }, ctx) => {
        // Guessing a 256-bit token is hopeless, but each try costs reads: bounded like login attempts.
        await enforceRateLimit(ctx, 'login');
        return ctx.services.email.verifyEmail(token);
      },
      (user) => user.id,
    ),
  }),
  requestPasswordReset: t.boolean({
    description:
      'Mails a password-reset link if an account has this address. Always true, in the same time, whatever the address: the answer says nothing about which addresses have accounts.',
    args: { email: t.arg.string({ required: true }) },
    resolve: audited('requestPasswordReset', async (_root, { email }, ctx) => {
      await enforceMailLimits(ctx, 'reset_password', email);
      return withValidationRefusal(() => ctx.services.email.requestPasswordReset(email));
    }),
  }),
  resetPassword: t.field({
    type: AuthPayload,
    description:
      'Sets a new password with the token from the reset mail and starts a session. Every other session and reset link of the account ends; the address counts as verified. The token dies when the password changed since it was sent.',
    args: { token: t.arg.string({ required: true, description: TOKEN_DESCRIPTION }), newPassword: t.arg.string({ required: true }) },
    errors: failureUnion('ResetPasswordResult', [InvalidTokenError, ValidationError, AccountDisabledError]),
    resolve: audited(
      'resetPassword',
      async (_root, { token, newPassword }, ctx) => {
        await enforceRateLimit(ctx, 'login');
        return handOverSession(ctx, await ctx.services.email.resetPassword(token, newPassword, clientMeta(ctx)));
      },
      (result) => result.user.id,
    ),
  }),
  requestEmailChange: t.field({
    type: EmailChangeRequested,
    description:
      'Checks the current password (wrong ones count toward the login lockout), then mails a confirmation link to the new address and a notice to the old one. Whether another account has the new address is not told here; `confirmEmailChange` answers EmailTakenError. Not available to API tokens.',
    args: { newEmail: t.arg.string({ required: true }), currentPassword: t.arg.string({ required: true }) },
    authScopes: { session: true },
    errors: failureUnion('RequestEmailChangeResult', [InvalidCredentialsError, ValidationError]),
    resolve: audited('requestEmailChange', async (_root, args, ctx) => {
      const viewer = await requireSession(ctx);
      await enforceRateLimit(ctx, 'loginAccount', viewer.userId);
      await enforceMailLimits(ctx, 'change_email', args.newEmail);
      return withCommitTimeRefusals(() => ctx.services.email.requestEmailChange(viewer.userId, args, clientMeta(ctx)));
    }),
  }),
  confirmEmailChange: t.field({
    type: User,
    description: 'Replaces the address with the one the confirmation mail went to (now verified). The token dies when the address changed since it was sent.',
    args: { token: t.arg.string({ required: true, description: TOKEN_DESCRIPTION }) },
    errors: failureUnion('ConfirmEmailChangeResult', [InvalidTokenError, EmailTakenError]),
    resolve: audited(
      'confirmEmailChange',
      async (_root, { token }, ctx) => {
        await enforceRateLimit(ctx, 'login');
        return ctx.services.email.confirmEmailChange(token);
      },
      (user) => user.id,
    ),
  }),
  requestSignInCode: t.boolean({
    description:
      'Mails a sign-in link and a 6-digit code if an account has this address (`signInWithLink`, `signInWithCode`). Always true, in the same time, whatever the address.',
    args: { email: t.arg.string({ required: true }) },
    resolve: audited('requestSignInCode', async (_root, { email }, ctx) => {
      await enforceMailLimits(ctx, 'sign_in', email);
      return withValidationRefusal(() => ctx.services.email.requestSignInCode(email));
    }),
  }),
  signInWithCode: t.field({
    type: LoginResult,
    description:
      'Starts a session with the 6-digit code from the sign-in mail. A code allows 5 tries; wrong codes count toward the login lockout. The address counts as verified.',
    args: { email: t.arg.string({ required: true }), code: t.arg.string({ required: true }) },
    resolve: signInResolver('signInWithCode', async ({ email, code }: { email: string; code: string }, ctx) => {
      await enforceRateLimit(ctx, 'login');
      await enforceRateLimit(ctx, 'loginAccount', email.slice(0, 256).toLowerCase());
      return ctx.services.email.signInWithCode(email, code, clientMeta(ctx));
    }),
  }),
  signInWithLink: t.field({
    type: LoginResult,
    description: 'Starts a session with the token from the link in the sign-in mail (single use). The address counts as verified.',
    args: { token: t.arg.string({ required: true, description: TOKEN_DESCRIPTION }) },
    resolve: signInResolver('signInWithLink', async ({ token }: { token: string }, ctx) => {
      await enforceRateLimit(ctx, 'login');
      return ctx.services.email.signInWithLink(token, clientMeta(ctx));
    }),
  }),
}));
