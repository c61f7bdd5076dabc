import { EmailTakenError, InvalidCredentialsError, LastAdminError, ValidationError } from '../auth/errors.js';
import type { UserRecord } from '../db/database.js';
import { audited } from './audit.js';
import { builder } from './builder.js';
import { boundedId } from './ids.js';
import { requireSession, requireViewer } from './guards.js';
import { enforceAvailabilityProbeLimit, enforceRateLimit } from './rate-limits.js';
import { failureUnion, withCommitTimeRefusals } from './error-translation.js';
import { User } from './user.js';

const PublicUser = builder.objectRef<UserRecord>('PublicUser').implement({
  description: 'What anyone may see of an account.',
  fields: (t) => ({
    id: t.exposeID('id'),
    username: t.exposeString('username'),
    fullname: t.exposeString('fullname', { nullable: true }),
  }),
});

const UpdateProfileInput = builder.inputType('UpdateProfileInput', {
  description: 'Omitted fields stay as they are; null clears one.',
  fields: (t) => ({
    fullname: t.string({ required: false }),
    email: t.string({ required: false }),
  }),
});

const PasswordChanged = builder.objectRef<{ endedSessions: number }>('PasswordChanged').implement({
  fields: (t) => ({
    endedSessions: t.exposeInt('endedSessions', { description: 'Other sessions that were logged out; this one stays.' }),
  }),
});

const AccountDeleted = builder.objectRef<{ id: string }>('AccountDeleted').implement({
  fields: (t) => ({ id: t.exposeID('id') }),
});

builder.queryFields((t) => ({
  user: t.field({
    type: PublicUser,
    nullable: true,
    description: 'Public profile of any account; null for an unknown id.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => ctx.services.accounts.findUser(boundedId(id)),
  }),
}));

builder.mutationFields((t) => ({
  updateProfile: t.field({
    type: User,
    description:
      "Changes the caller's full name, and the email address only with EMAIL_ENABLED=false: with email on, the address changes through requestEmailChange (a different email here is a ValidationError).",
    args: { input: t.arg({ type: UpdateProfileInput, required: true }) },
    authScopes: { scope: 'profile:write' },
    errors: failureUnion('UpdateProfileResult', [ValidationError, EmailTakenError]),
    resolve: audited('updateProfile', async (_root, { input }, ctx) => {
      const viewer = await requireViewer(ctx);
      await enforceAvailabilityProbeLimit(ctx, viewer.userId, input.email);
      return withCommitTimeRefusals(() => ctx.services.accounts.updateProfile(viewer.userId, input));
    }),
  }),
  changePassword: t.field({
    type: PasswordChanged,
    description:
      'Checks the current password (wrong ones count toward the login lockout), sets the new one and logs out every other session, in one commit. Not available to API tokens.',
    args: { currentPassword: t.arg.string({ required: true }), newPassword: t.arg.string({ required: true }) },
    authScopes: { session: true },
    errors: failureUnion('ChangePasswordResult', [ValidationError, InvalidCredentialsError]),
    resolve: audited('changePassword', async (_root, args, ctx) => {
      const viewer = await requireSession(ctx);
      // Guessing the current password with a stolen access token is limited like guessing at login.
      await enforceRateLimit(ctx, 'loginAccount', viewer.userId);
      const endedSessions = await withCommitTimeRefusals(() =>
        ctx.services.accounts.changePassword(viewer.userId, viewer.sessionId, args, { ip: ctx.clientIp, network: ctx.clientNetwork }),
      );
      return { endedSessions };
    }),
  }),
  deleteAccount: t.field({
    type: AccountDeleted,
    description:
      "Deletes the caller's account, sessions and API tokens after checking the password (wrong ones count toward the login lockout). Not available to API tokens.",
    args: { password: t.arg.string({ required: true }) },
    authScopes: { session: true },
    errors: failureUnion('DeleteAccountResult', [ValidationError, InvalidCredentialsError, LastAdminError]),
    resolve: audited('deleteAccount', async (_root, { password }, ctx) => {
      const viewer = await requireSession(ctx);
      await enforceRateLimit(ctx, 'loginAccount', viewer.userId);
      // The password check counts toward the login lockout; the deletion then applies only if this session
      // is still in force and the credentials unchanged since the check (parallel deletions: one wins).
      const deleted = await withCommitTimeRefusals(async () => {
        const checked = await ctx.services.accounts.verifyPassword(viewer.userId, password, { ip: ctx.clientIp, network: ctx.clientNetwork });
        return ctx.services.users.deleteOwnAccount(viewer.userId, viewer.sessionId, checked.credentialsVersion);
      });
      return { id: deleted.id };
    }),
  }),
}));
