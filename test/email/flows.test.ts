import { describe, expect, it } from 'vitest';
import { bearer, LOGIN, ME, type TestApp } from '../support/app.js';
import type { TestSmtpServer } from '../support/smtp.js';
import { APP_URL, AUTH_RESULT, codeOf, createMailApp, linkOf, mailTo, registerWithEmail, SUBJECT, testSmtpServer, uniqueEmail } from './support.js';

// Each flow end to end: the GraphQL call, the mail as a real SMTP server received it (parsed by
// mailparser), and the redemption with what the mail carried. On SQLite, and on PostgreSQL in
// `npm run test:postgres`.

const VERIFY = `mutation ($token: String!) { verifyEmail(token: $token) { __typename ... on User { id email emailVerified } ... on Error { code message } } }`;
const REQUEST_VERIFICATION = `mutation ($email: String) { requestEmailVerification(email: $email) }`;
const REQUEST_RESET = `mutation ($email: String!) { requestPasswordReset(email: $email) }`;
const RESET = `mutation ($token: String!, $password: String!) { resetPassword(token: $token, newPassword: $password) { __typename ... on AuthPayload { accessToken refreshToken user { id emailVerified } } ... on Error { code message } } }`;
const REQUEST_CHANGE = `mutation ($email: String!, $password: String!) { requestEmailChange(newEmail: $email, currentPassword: $password) { __typename ... on EmailChangeRequested { email expiresIn } ... on Error { code message } } }`;
const CONFIRM_CHANGE = `mutation ($token: String!) { confirmEmailChange(token: $token) { __typename ... on User { id email emailVerified } ... on Error { code message } } }`;
const REQUEST_CODE = `mutation ($email: String!) { requestSignInCode(email: $email) }`;
const WITH_CODE = `mutation ($email: String!, $code: String!) { signInWithCode(email: $email, code: $code) { ${AUTH_RESULT} } }`;
const WITH_LINK = `mutation ($token: String!) { signInWithLink(token: $token) { ${AUTH_RESULT} } }`;
const ME_VERIFIED = `query { me { id email emailVerified } }`;

// At the top level, not in beforeAll: the helpers register their afterAll clean-up, which vitest ignores
// when registered inside a hook.
const smtp: TestSmtpServer = await testSmtpServer();
const app: TestApp = await createMailApp(smtp);

describe('email verification', () => {
  it('mails a link to the app at registration; verifyEmail with its token marks the address verified, once', async () => {
    const user = await registerWithEmail(app);
    expect((await app.gql(ME_VERIFIED, {}, user.auth)).data.me.emailVerified).toBe(false);

    const mail = await mailTo(smtp, user.email, SUBJECT.verify);
    expect(mail.html).toContain('href=');
    const { url, token } = linkOf(mail);
    expect(url.origin + url.pathname).toBe(`${APP_URL}/verify-email`);

    const verified = await app.gql(VERIFY, { token });
    expect(verified.data.verifyEmail).toMatchObject({ __typename: 'User', email: user.email, emailVerified: true });
    expect((await app.gql(ME_VERIFIED, {}, user.auth)).data.me.emailVerified).toBe(true);
    // Single use.
    expect((await app.gql(VERIFY, { token })).data.verifyEmail).toMatchObject({ __typename: 'InvalidTokenError', code: 'TOKEN_INVALID' });
  });

  it('a new verification mail ends the previous link', async () => {
    const user = await registerWithEmail(app);
    const first = linkOf(await mailTo(smtp, user.email, SUBJECT.verify)).token;
    smtp.messages.length = 0;
    expect((await app.gql(REQUEST_VERIFICATION, {}, user.auth)).data.requestEmailVerification).toBe(true);
    const second = linkOf(await mailTo(smtp, user.email, SUBJECT.verify)).token;
    expect(second).not.toBe(first);
    expect((await app.gql(VERIFY, { token: first })).data.verifyEmail.code).toBe('TOKEN_INVALID');
    expect((await app.gql(VERIFY, { token: second })).data.verifyEmail.emailVerified).toBe(true);
  });

  it('resends by address without signing in (always true)', async () => {
    const user = await registerWithEmail(app);
    await mailTo(smtp, user.email, SUBJECT.verify);
    smtp.messages.length = 0;
    expect((await app.gql(REQUEST_VERIFICATION, { email: user.email.toUpperCase() })).data.requestEmailVerification).toBe(true);
    const { token } = linkOf(await mailTo(smtp, user.email, SUBJECT.verify));
    expect((await app.gql(VERIFY, { token })).data.verifyEmail.emailVerified).toBe(true);
    expect((await app.gql(REQUEST_VERIFICATION, { email: uniqueEmail('nobody') })).data.requestEmailVerification).toBe(true);
  });
});

describe('password reset', () => {
  it('mails a link; resetPassword sets the password, signs in, ends every other session and verifies the address', async () => {
    const user = await registerWithEmail(app);
    expect((await app.gql(REQUEST_RESET, { email: user.email })).data.requestPasswordReset).toBe(true);
    const { url, token } = linkOf(await mailTo(smtp, user.email, SUBJECT.reset));
    expect(url.pathname).toBe('/reset-password');

    const reset = await app.gql(RESET, { token, password: 'a brand new password' });
    expect(reset.data.resetPassword).toMatchObject({ __typename: 'AuthPayload', user: { id: user.user.id, emailVerified: true } });
    // The old session is over; the new password works, the old one does not.
    expect((await app.gql(ME, {}, user.auth)).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect((await app.gql(ME, {}, bearer(reset.data.resetPassword.accessToken))).data.me.id).toBe(user.user.id);
    expect((await app.gql(LOGIN, { input: { username: user.username, password: 'a brand new password' } })).data.login.__typename).toBe('AuthPayload');
    expect((await app.gql(LOGIN, { input: { username: user.username, password: user.password } })).data.login.__typename).toBe('InvalidCredentialsError');
    // Single use.
    expect((await app.gql(RESET, { token, password: 'yet another password' })).data.resetPassword.code).toBe('TOKEN_INVALID');
  });

  it('refuses a weak new password with ValidationError and leaves the token usable', async () => {
    const user = await registerWithEmail(app);
    await app.gql(REQUEST_RESET, { email: user.email });
    const { token } = linkOf(await mailTo(smtp, user.email, SUBJECT.reset));
    expect((await app.gql(RESET, { token, password: 'short' })).data.resetPassword.__typename).toBe('ValidationError');
    expect((await app.gql(RESET, { token, password: 'long enough this time' })).data.resetPassword.__typename).toBe('AuthPayload');
  });
});

describe('address change', () => {
  it('confirms at the new address, notifies the old one, and changes the address only on confirmation', async () => {
    const user = await registerWithEmail(app);
    const newEmail = uniqueEmail('moved');
    const requested = await app.gql(REQUEST_CHANGE, { email: newEmail, password: user.password }, user.auth);
    expect(requested.data.requestEmailChange).toMatchObject({ __typename: 'EmailChangeRequested', email: newEmail, expiresIn: 3600 });

    const notice = await mailTo(smtp, user.email, SUBJECT.changeNotice);
    expect(notice.text).toContain(newEmail);
    expect(notice.text).not.toMatch(/token=/);
    const { url, token } = linkOf(await mailTo(smtp, newEmail, SUBJECT.changeConfirm));
    expect(url.pathname).toBe('/confirm-email-change');
    expect((await app.gql(ME_VERIFIED, {}, user.auth)).data.me.email).toBe(user.email);

    expect((await app.gql(CONFIRM_CHANGE, { token })).data.confirmEmailChange).toMatchObject({ __typename: 'User', email: newEmail, emailVerified: true });
    expect((await app.gql(CONFIRM_CHANGE, { token })).data.confirmEmailChange.code).toBe('TOKEN_INVALID');
  });

  it('needs the current password', async () => {
    const user = await registerWithEmail(app);
    const wrong = await app.gql(REQUEST_CHANGE, { email: uniqueEmail(), password: 'not the password' }, user.auth);
    expect(wrong.data.requestEmailChange).toMatchObject({ code: 'INVALID_CREDENTIALS', message: 'The current password is wrong.' });
  });

  it('does not tell that the new address is taken; the confirmation does', async () => {
    const taker = await registerWithEmail(app);
    const user = await registerWithEmail(app);
    expect((await app.gql(REQUEST_CHANGE, { email: taker.email, password: user.password }, user.auth)).data.requestEmailChange.__typename).toBe(
      'EmailChangeRequested',
    );
    const confirmation = await smtp.waitForMail((mail) => SUBJECT.changeConfirm.test(mail.subject ?? '') && (mail.text ?? '').includes(user.username));
    const { token } = linkOf(confirmation);
    expect((await app.gql(CONFIRM_CHANGE, { token })).data.confirmEmailChange.code).toBe('EMAIL_TAKEN');
  });
});

describe('sign-in by mail', () => {
  it('mails a link and a 6-digit code; either signs in once and verifies the address', async () => {
    const user = await registerWithEmail(app);
    expect((await app.gql(REQUEST_CODE, { email: user.email })).data.requestSignInCode).toBe(true);
    const mail = await mailTo(smtp, user.email, SUBJECT.signIn);
    const code = codeOf(mail);
    const { url, token } = linkOf(mail);
    expect(url.pathname).toBe('/sign-in/email');

    const signedIn = await app.gql(WITH_CODE, { email: user.email, code });
    expect(signedIn.data.signInWithCode).toMatchObject({ __typename: 'AuthPayload', user: { id: user.user.id, emailVerified: true } });
    // The code and the link are one token: used once, by either.
    expect((await app.gql(WITH_LINK, { token })).data.signInWithLink.code).toBe('TOKEN_INVALID');
    expect((await app.gql(WITH_CODE, { email: user.email, code })).data.signInWithCode.code).toBe('TOKEN_INVALID');
  });

  it('signs in with the link', async () => {
    const user = await registerWithEmail(app);
    await app.gql(REQUEST_CODE, { email: user.email });
    const { token } = linkOf(await mailTo(smtp, user.email, SUBJECT.signIn));
    expect((await app.gql(WITH_LINK, { token })).data.signInWithLink).toMatchObject({ __typename: 'AuthPayload', user: { id: user.user.id } });
  });
});
