import { describe, expect, it } from 'vitest';
import { OPERATOR } from '../../src/auth/admin-actor.js';
import { LOGIN, ManualClock, type TestApp, uniqueName } from '../support/app.js';
import { rawDb } from '../support/raw-db.js';
import type { ParsedMail, TestSmtpServer } from '../support/smtp.js';
import { AUTH_RESULT, codeOf, createMailApp, linkOf, mailsTo, registerWithEmail, SUBJECT, testSmtpServer, uniqueEmail } from './support.js';

// The rules every mailed token and code obeys (src/auth/email-flows.ts): lifetimes, purpose, the state
// it was issued for, tries of a code and the login lockout, single use under concurrency, and what
// EMAIL_VERIFICATION, updateProfile, disabling and deleting do to them. Each case reads the real mail
// a real SMTP server received and redeems what it carries through GraphQL.

const VERIFY = `mutation ($token: String!) { verifyEmail(token: $token) { __typename ... on User { id email emailVerified } ... on Error { code message } } }`;
const REQUEST_VERIFICATION = `mutation ($email: String) { requestEmailVerification(email: $email) }`;
const REQUEST_RESET = `mutation ($email: String!) { requestPasswordReset(email: $email) }`;
const RESET = `mutation ($token: String!, $password: String!) { resetPassword(token: $token, newPassword: $password) { __typename ... on AuthPayload { accessToken user { id emailVerified } } ... on Error { code message } } }`;
const REQUEST_CHANGE = `mutation ($email: String!, $password: String!) { requestEmailChange(newEmail: $email, currentPassword: $password) { __typename ... on Error { code message } } }`;
const CONFIRM_CHANGE = `mutation ($token: String!) { confirmEmailChange(token: $token) { __typename ... on User { id email emailVerified } ... on Error { code message } } }`;
const REQUEST_CODE = `mutation ($email: String!) { requestSignInCode(email: $email) }`;
const WITH_CODE = `mutation ($email: String!, $code: String!) { signInWithCode(email: $email, code: $code) { ${AUTH_RESULT} ... on ValidationError { fieldErrors { field message } } } }`;
const WITH_LINK = `mutation ($token: String!) { signInWithLink(token: $token) { ${AUTH_RESULT} } }`;
const CHANGE_PASSWORD = `mutation ($current: String!, $new: String!) { changePassword(currentPassword: $current, newPassword: $new) { __typename ... on Error { code message } } }`;
const UPDATE_PROFILE = `mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { __typename ... on User { id email emailVerified } ... on ValidationError { fieldErrors { field message } } ... on Error { code message } } }`;
const ME_EMAIL = `query { me { id email emailVerified } }`;
const REGISTER = `mutation ($input: RegisterInput!) { register(input: $input) {
  __typename
  ... on AuthPayload { accessToken refreshToken user { id } }
  ... on VerificationPending { user { id email emailVerified } }
  ... on ValidationError { fieldErrors { field message } }
  ... on Error { code message }
} }`;

const MINUTE = 60_000;
const LIFETIME = { verify: 24 * 60 * MINUTE, reset: 30 * MINUTE, change: 60 * MINUTE, signIn: 10 * MINUTE } as const;

let smtp: TestSmtpServer;
/** Default settings: the rules that need no clock. */
let app: TestApp;
/** Default lifetimes, on a clock the tests move. */
let timed: TestApp;
let timedClock: ManualClock;
/** PASSWORD_RESET_TTL_MINUTES=5. */
let shortReset: TestApp;
let shortResetClock: ManualClock;
/** A lockout after 3 failures from a single address (its clock lets a lock run out). */
let strict: TestApp;
let strictClock: ManualClock;
let required: TestApp;
let off: TestApp;

// At the top level, not in beforeAll: the helpers register their afterAll clean-up, which vitest ignores
// when registered inside a hook.
smtp = await testSmtpServer();
timedClock = new ManualClock();
shortResetClock = new ManualClock();
strictClock = new ManualClock();
[app, timed, shortReset, strict, required, off] = await Promise.all([
  createMailApp(smtp),
  createMailApp(smtp, {}, { clock: timedClock }),
  createMailApp(smtp, { PASSWORD_RESET_TTL_MINUTES: '5' }, { clock: shortResetClock }),
  createMailApp(smtp, { LOCKOUT_THRESHOLD: '3', LOCKOUT_MIN_SOURCES: '1' }, { clock: strictClock }),
  createMailApp(smtp, { EMAIL_VERIFICATION: 'required' }),
  createMailApp(smtp, { EMAIL_VERIFICATION: 'off' }),
]);

// ---- Helpers ---------------------------------------------------------------------------------------

const isTo = (mail: ParsedMail, address: string) => mailsTo(smtp, address).includes(mail);

/**
 * The next mail to `address` with a matching subject, among those that have not arrived yet: call it
 * before the request that sends it, so an earlier mail of the same kind is never taken for it.
 */
function nextMail(address: string, subject: RegExp): Promise<ParsedMail> {
  const seen = new Set(mailsTo(smtp, address));
  return smtp.waitForMail((mail) => !seen.has(mail) && isTo(mail, address) && subject.test(mail.subject ?? ''));
}

async function requestReset(target: TestApp, email: string): Promise<string> {
  const mail = nextMail(email, SUBJECT.reset);
  expect((await target.gql(REQUEST_RESET, { email })).data.requestPasswordReset).toBe(true);
  return linkOf(await mail).token;
}

async function requestSignIn(target: TestApp, email: string): Promise<{ token: string; code: string }> {
  const next = nextMail(email, SUBJECT.signIn);
  expect((await target.gql(REQUEST_CODE, { email })).data.requestSignInCode).toBe(true);
  const mail = await next;
  return { token: linkOf(mail).token, code: codeOf(mail) };
}

async function requestChange(target: TestApp, user: { password: string; auth: Record<string, string> }, newEmail: string): Promise<string> {
  const mail = nextMail(newEmail, SUBJECT.changeConfirm);
  const requested = await target.gql(REQUEST_CHANGE, { email: newEmail, password: user.password }, user.auth);
  expect(requested.data.requestEmailChange.__typename).toBe('EmailChangeRequested');
  return linkOf(await mail).token;
}

/** A user registered with an address, and the token of the verification mail it got. */
async function registerAndVerificationToken(target: TestApp) {
  const email = uniqueEmail();
  const mail = nextMail(email, SUBJECT.verify);
  const user = await registerWithEmail(target, email);
  return { ...user, verifyToken: linkOf(await mail).token };
}

/** Another 6-digit code than `code` (the k-th one after it). */
const otherCode = (code: string, k: number) => String((Number(code) + k) % 1_000_000).padStart(6, '0');

const withCode = (target: TestApp, email: string, code: string) => target.gql(WITH_CODE, { email, code }).then((r) => r.data.signInWithCode);

async function activeSessions(target: TestApp, userId: string): Promise<number> {
  return (await target.services.sessions.listActive(userId)).length;
}

// ---- 1. Expiry -------------------------------------------------------------------------------------

describe('expiry (default lifetimes, on a clock moved by hand)', () => {
  // Each case issues two tokens at the same moment: one is redeemed a second before its lifetime ends
  // (it works), the other a second after (TOKEN_EXPIRED), so a lifetime off in either direction fails.
  it('verification: 24 hours', async () => {
    const [early, late] = [await registerAndVerificationToken(timed), await registerAndVerificationToken(timed)];
    timedClock.advance(LIFETIME.verify - 1000);
    expect((await timed.gql(VERIFY, { token: early.verifyToken })).data.verifyEmail).toMatchObject({ __typename: 'User', emailVerified: true });
    timedClock.advance(2000);
    expect((await timed.gql(VERIFY, { token: late.verifyToken })).data.verifyEmail).toMatchObject({ __typename: 'InvalidTokenError', code: 'TOKEN_EXPIRED' });
  });

  it('password reset: 30 minutes', async () => {
    const [early, late] = [await registerWithEmail(timed), await registerWithEmail(timed)];
    const [earlyToken, lateToken] = [await requestReset(timed, early.email), await requestReset(timed, late.email)];
    timedClock.advance(LIFETIME.reset - 1000);
    expect((await timed.gql(RESET, { token: earlyToken, password: 'reset just in time' })).data.resetPassword.__typename).toBe('AuthPayload');
    timedClock.advance(2000);
    expect((await timed.gql(RESET, { token: lateToken, password: 'reset one second late' })).data.resetPassword).toMatchObject({
      __typename: 'InvalidTokenError',
      code: 'TOKEN_EXPIRED',
    });
    // The expired link changed nothing: the old password still works.
    expect((await timed.gql(LOGIN, { input: { username: late.username, password: late.password } })).data.login.__typename).toBe('AuthPayload');
  });

  it('address change: 1 hour', async () => {
    const [early, late] = [await registerWithEmail(timed), await registerWithEmail(timed)];
    const earlyToken = await requestChange(timed, early, uniqueEmail('moved'));
    const lateTarget = uniqueEmail('moved');
    const lateToken = await requestChange(timed, late, lateTarget);
    timedClock.advance(LIFETIME.change - 1000);
    expect((await timed.gql(CONFIRM_CHANGE, { token: earlyToken })).data.confirmEmailChange.__typename).toBe('User');
    timedClock.advance(2000);
    expect((await timed.gql(CONFIRM_CHANGE, { token: lateToken })).data.confirmEmailChange).toMatchObject({
      __typename: 'InvalidTokenError',
      code: 'TOKEN_EXPIRED',
    });
    expect((await timed.services.accounts.findUser(late.user.id))?.email).toBe(late.email);
  });

  it('sign-in link and code: 10 minutes; an expired code is TOKEN_EXPIRED only when it is the right one', async () => {
    const [early, late] = [await registerWithEmail(timed), await registerWithEmail(timed)];
    const [earlySecrets, lateSecrets] = [await requestSignIn(timed, early.email), await requestSignIn(timed, late.email)];
    timedClock.advance(LIFETIME.signIn - 1000);
    expect((await withCode(timed, early.email, earlySecrets.code)).__typename).toBe('AuthPayload');
    timedClock.advance(2000);
    expect((await timed.gql(WITH_LINK, { token: lateSecrets.token })).data.signInWithLink).toMatchObject({
      __typename: 'InvalidTokenError',
      code: 'TOKEN_EXPIRED',
    });
    expect(await withCode(timed, late.email, otherCode(lateSecrets.code, 1))).toMatchObject({ __typename: 'InvalidTokenError', code: 'TOKEN_INVALID' });
    expect(await withCode(timed, late.email, lateSecrets.code)).toMatchObject({ __typename: 'InvalidTokenError', code: 'TOKEN_EXPIRED' });
  });

  it('lifetimes are configurable: PASSWORD_RESET_TTL_MINUTES=5 ends a reset link after 5 minutes', async () => {
    const [early, late] = [await registerWithEmail(shortReset), await registerWithEmail(shortReset)];
    const [earlyToken, lateToken] = [await requestReset(shortReset, early.email), await requestReset(shortReset, late.email)];
    shortResetClock.advance(5 * MINUTE - 1000);
    expect((await shortReset.gql(RESET, { token: earlyToken, password: 'reset just in time' })).data.resetPassword.__typename).toBe('AuthPayload');
    shortResetClock.advance(2000);
    expect((await shortReset.gql(RESET, { token: lateToken, password: 'reset one second late' })).data.resetPassword.code).toBe('TOKEN_EXPIRED');
  });
});

// ---- 2. Purpose ------------------------------------------------------------------------------------

describe('a token works only for its purpose, and a wrong use does not use it up', () => {
  it('a verification token is refused by resetPassword, signInWithLink and confirmEmailChange, then still verifies', async () => {
    const user = await registerAndVerificationToken(app);
    const token = user.verifyToken;
    expect((await app.gql(RESET, { token, password: 'not reset by this' })).data.resetPassword).toMatchObject({ code: 'TOKEN_INVALID' });
    expect((await app.gql(WITH_LINK, { token })).data.signInWithLink).toMatchObject({ __typename: 'InvalidTokenError', code: 'TOKEN_INVALID' });
    expect((await app.gql(CONFIRM_CHANGE, { token })).data.confirmEmailChange).toMatchObject({ code: 'TOKEN_INVALID' });
    expect(await activeSessions(app, user.user.id)).toBe(1); // only the registration's
    expect((await app.gql(VERIFY, { token })).data.verifyEmail).toMatchObject({ __typename: 'User', emailVerified: true });
  });

  it('a sign-in token is refused by verifyEmail, confirmEmailChange and resetPassword, then still signs in', async () => {
    const user = await registerWithEmail(app);
    const { token } = await requestSignIn(app, user.email);
    expect((await app.gql(VERIFY, { token })).data.verifyEmail.code).toBe('TOKEN_INVALID');
    expect((await app.gql(CONFIRM_CHANGE, { token })).data.confirmEmailChange.code).toBe('TOKEN_INVALID');
    expect((await app.gql(RESET, { token, password: 'not reset by this' })).data.resetPassword.code).toBe('TOKEN_INVALID');
    expect((await app.gql(ME_EMAIL, {}, user.auth)).data.me.emailVerified).toBe(false);
    expect((await app.gql(WITH_LINK, { token })).data.signInWithLink.__typename).toBe('AuthPayload');
  });

  it('a reset token is refused by verifyEmail and signInWithLink, then still resets', async () => {
    const user = await registerWithEmail(app);
    const token = await requestReset(app, user.email);
    expect((await app.gql(VERIFY, { token })).data.verifyEmail.code).toBe('TOKEN_INVALID');
    expect((await app.gql(WITH_LINK, { token })).data.signInWithLink.code).toBe('TOKEN_INVALID');
    expect((await app.gql(RESET, { token, password: 'reset after all' })).data.resetPassword.__typename).toBe('AuthPayload');
  });
});

// ---- 3. Bound to the state it was issued for ---------------------------------------------------------

describe('a token is bound to the state it was issued for', () => {
  it('a reset token dies when the password is changed (changePassword)', async () => {
    const user = await registerWithEmail(app);
    const token = await requestReset(app, user.email);
    expect((await app.gql(CHANGE_PASSWORD, { current: user.password, new: 'changed by the owner' }, user.auth)).data.changePassword.__typename).toBe(
      'PasswordChanged',
    );
    expect((await app.gql(RESET, { token, password: 'set by an old link' })).data.resetPassword).toMatchObject({ code: 'TOKEN_INVALID' });
    expect((await app.gql(LOGIN, { input: { username: user.username, password: 'changed by the owner' } })).data.login.__typename).toBe('AuthPayload');
  });

  it('issuing a new reset link ends the previous one; a reset then ends the rest', async () => {
    const user = await registerWithEmail(app);
    const first = await requestReset(app, user.email);
    const second = await requestReset(app, user.email);
    expect(second).not.toBe(first);
    // Nothing else changed (same password): only the newer link counts.
    expect((await app.gql(RESET, { token: first, password: 'set by the older link' })).data.resetPassword.code).toBe('TOKEN_INVALID');
    expect((await app.gql(RESET, { token: second, password: 'set by the newer link' })).data.resetPassword.__typename).toBe('AuthPayload');
    expect((await app.gql(RESET, { token: first, password: 'set by the older link' })).data.resetPassword.code).toBe('TOKEN_INVALID');
    expect((await app.gql(LOGIN, { input: { username: user.username, password: 'set by the newer link' } })).data.login.__typename).toBe('AuthPayload');
  });

  it('an address-change token dies when another change was confirmed first', async () => {
    const user = await registerWithEmail(app);
    const [firstTarget, secondTarget] = [uniqueEmail('first'), uniqueEmail('second')];
    const first = await requestChange(app, user, firstTarget);
    const second = await requestChange(app, user, secondTarget);
    expect((await app.gql(CONFIRM_CHANGE, { token: second })).data.confirmEmailChange).toMatchObject({ __typename: 'User', email: secondTarget });
    expect((await app.gql(CONFIRM_CHANGE, { token: first })).data.confirmEmailChange.code).toBe('TOKEN_INVALID');
    expect((await app.gql(ME_EMAIL, {}, user.auth)).data.me.email).toBe(secondTarget);
  });

  it('an address-change token dies when the password changes after the request (the notice tells the owner to change it)', async () => {
    const user = await registerWithEmail(app);
    const token = await requestChange(app, user, uniqueEmail('requested'));
    expect((await app.gql(CHANGE_PASSWORD, { current: user.password, new: 'the owner took it back' }, user.auth)).data.changePassword.__typename).toBe(
      'PasswordChanged',
    );
    expect((await app.gql(CONFIRM_CHANGE, { token })).data.confirmEmailChange.code).toBe('TOKEN_INVALID');
    expect((await app.gql(ME_EMAIL, {}, user.auth)).data.me.email).toBe(user.email);
  });

  it('a verification token dies when the address changed through a confirmed change (no newer verification token involved)', async () => {
    const user = await registerAndVerificationToken(app);
    const moved = uniqueEmail('moved');
    expect((await app.gql(CONFIRM_CHANGE, { token: await requestChange(app, user, moved) })).data.confirmEmailChange.email).toBe(moved);
    expect((await app.gql(VERIFY, { token: user.verifyToken })).data.verifyEmail.code).toBe('TOKEN_INVALID');
  });

  it('a sign-in code is refused once a newer one was requested; the newer one works', async () => {
    const user = await registerWithEmail(app);
    const older = await requestSignIn(app, user.email);
    let newer = await requestSignIn(app, user.email);
    // Two codes are equal one time in a million: ask again rather than test nothing.
    while (newer.code === older.code) newer = await requestSignIn(app, user.email);
    expect(await withCode(app, user.email, older.code)).toMatchObject({ __typename: 'InvalidTokenError', code: 'TOKEN_INVALID' });
    expect((await app.gql(WITH_LINK, { token: older.token })).data.signInWithLink.code).toBe('TOKEN_INVALID');
    expect((await withCode(app, user.email, newer.code)).__typename).toBe('AuthPayload');
  });
});

// ---- 4. Codes --------------------------------------------------------------------------------------

describe('typed codes', () => {
  it('after 5 wrong codes even the right one is refused', async () => {
    const user = await registerWithEmail(app);
    const { code } = await requestSignIn(app, user.email);
    for (let k = 1; k <= 5; k += 1) expect((await withCode(app, user.email, otherCode(code, k))).code).toBe('TOKEN_INVALID');
    expect(await withCode(app, user.email, code)).toMatchObject({ __typename: 'InvalidTokenError', code: 'TOKEN_INVALID' });
    expect(await activeSessions(app, user.user.id)).toBe(1);
  });

  it('4 wrong codes, then the right one signs in', async () => {
    const user = await registerWithEmail(app);
    const { code } = await requestSignIn(app, user.email);
    for (let k = 1; k <= 4; k += 1) expect((await withCode(app, user.email, otherCode(code, k))).code).toBe('TOKEN_INVALID');
    expect(await withCode(app, user.email, code)).toMatchObject({ __typename: 'AuthPayload', user: { id: user.user.id } });
  });

  it('a malformed code is a ValidationError and costs no try', async () => {
    const user = await registerWithEmail(app);
    const { code } = await requestSignIn(app, user.email);
    for (const malformed of ['12345', 'abcdef', '1234567', '']) {
      expect(await withCode(app, user.email, malformed)).toMatchObject({ __typename: 'ValidationError', fieldErrors: [{ field: 'code' }] });
    }
    // Four malformed ones plus four wrong ones: had the malformed counted, the right one would be dead.
    for (let k = 1; k <= 4; k += 1) expect((await withCode(app, user.email, otherCode(code, k))).code).toBe('TOKEN_INVALID');
    expect((await withCode(app, user.email, code)).__typename).toBe('AuthPayload');
  });

  it('wrong codes count toward the login lockout, and a locked account refuses even the right code until the lock ends', async () => {
    const user = await registerWithEmail(strict);
    const { code } = await requestSignIn(strict, user.email);
    for (let k = 1; k <= 3; k += 1) expect((await withCode(strict, user.email, otherCode(code, k))).code).toBe('TOKEN_INVALID');
    const login = await strict.gql(LOGIN, { input: { username: user.username, password: user.password } });
    expect(login.data.login).toMatchObject({ __typename: 'InvalidCredentialsError', code: 'LOGIN_LOCKED' });
    expect(await withCode(strict, user.email, code)).toMatchObject({ __typename: 'InvalidCredentialsError', code: 'LOGIN_LOCKED' });
    // The lock (LOCKOUT_BASE_SECONDS, 30 s) runs out well within the code's 10 minutes; the refused
    // attempts while locked did not cost the code a try (3 wrong + this one = 4 of 5).
    strictClock.advance(31_000);
    expect((await withCode(strict, user.email, code)).__typename).toBe('AuthPayload');
  });

  it('an account locked by wrong passwords answers LOGIN_LOCKED to signInWithCode', async () => {
    const user = await registerWithEmail(strict);
    const { code } = await requestSignIn(strict, user.email);
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const wrong = await strict.gql(LOGIN, { input: { username: user.username, password: 'not the password' } });
      expect(wrong.data.login.code).toBe('INVALID_CREDENTIALS');
    }
    expect(await withCode(strict, user.email, code)).toMatchObject({ __typename: 'InvalidCredentialsError', code: 'LOGIN_LOCKED' });
    expect(await activeSessions(strict, user.user.id)).toBe(1);
  });
});

// ---- 5. Parallel redemption --------------------------------------------------------------------------

describe("someone registered with another person's address first", () => {
  it("the owner's first sign-in by mail ends the squatter's sessions and the password they chose", async () => {
    const squatter = await registerWithEmail(app);
    const { code } = await requestSignIn(app, squatter.email);
    expect(await withCode(app, squatter.email, code)).toMatchObject({ __typename: 'AuthPayload', user: { emailVerified: true } });
    expect((await app.gql(ME_EMAIL, {}, squatter.auth)).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    // The squatter's password no longer opens the account; the owner sets one with a reset.
    expect((await app.gql(LOGIN, { input: { username: squatter.username, password: squatter.password } })).data.login.code).toBe('INVALID_CREDENTIALS');
    const token = await requestReset(app, squatter.email);
    expect((await app.gql(RESET, { token, password: 'the owner chose this one' })).data.resetPassword.__typename).toBe('AuthPayload');
    expect((await app.gql(LOGIN, { input: { username: squatter.username, password: 'the owner chose this one' } })).data.login.__typename).toBe('AuthPayload');
  });
});

describe('parallel redemption of one token', () => {
  it('five concurrent resetPassword calls with one link: exactly one session', async () => {
    const user = await registerWithEmail(app);
    const token = await requestReset(app, user.email);
    const passwords = [1, 2, 3, 4, 5].map((n) => `racing password number ${n}`);
    const answers = await Promise.all(passwords.map((password) => app.gql(RESET, { token, password }).then((r) => r.data.resetPassword)));
    const winners = answers.filter((answer) => answer.__typename === 'AuthPayload');
    expect(winners).toHaveLength(1);
    for (const loser of answers.filter((answer) => answer.__typename !== 'AuthPayload')) expect(loser.code).toBe('TOKEN_INVALID');
    // The registration's session ended with the reset; the winner's is the only one.
    expect(await activeSessions(app, user.user.id)).toBe(1);
    const winningPassword = passwords[answers.indexOf(winners[0])]!;
    expect((await app.gql(LOGIN, { input: { username: user.username, password: winningPassword } })).data.login.__typename).toBe('AuthPayload');
  });

  it('five concurrent signInWithCode calls with one code: exactly one session', async () => {
    const user = await registerWithEmail(app);
    const { code } = await requestSignIn(app, user.email);
    const answers = await Promise.all([1, 2, 3, 4, 5].map(() => withCode(app, user.email, code)));
    expect(answers.filter((answer) => answer.__typename === 'AuthPayload')).toHaveLength(1);
    for (const loser of answers.filter((answer) => answer.__typename !== 'AuthPayload')) expect(loser.code).toBe('TOKEN_INVALID');
    // One session: the winner's. (The registration's ended: this first proof of the address ends whatever
    // came before it, in case someone else registered with the address.)
    expect(await activeSessions(app, user.user.id)).toBe(1);
  });
});

// ---- 6. EMAIL_VERIFICATION ---------------------------------------------------------------------------

describe('EMAIL_VERIFICATION=required', () => {
  async function registerPending(email = uniqueEmail('pending')) {
    const username = uniqueName();
    const password = 'a long enough password';
    const mail = nextMail(email, SUBJECT.verify);
    const answer = (await required.gql(REGISTER, { input: { username, password, email } })).data.register;
    expect(answer).toEqual({ __typename: 'VerificationPending', user: { id: expect.any(String), email, emailVerified: false } });
    return { username, password, email, id: answer.user.id as string, verifyToken: linkOf(await mail).token };
  }

  it('registration needs an email', async () => {
    const answer = (await required.gql(REGISTER, { input: { username: uniqueName(), password: 'a long enough password' } })).data.register;
    expect(answer.__typename).toBe('ValidationError');
    expect(answer.fieldErrors).toEqual([expect.objectContaining({ field: 'email' })]);
  });

  it('registration answers VerificationPending without tokens; login tells EMAIL_NOT_VERIFIED only for the right password; verifyEmail lets it in', async () => {
    const user = await registerPending();
    expect(await activeSessions(required, user.id)).toBe(0);
    const right = await required.gql(LOGIN, { input: { username: user.username, password: user.password } });
    expect(right.data.login).toMatchObject({ __typename: 'EmailNotVerifiedError', code: 'EMAIL_NOT_VERIFIED' });
    const wrong = await required.gql(LOGIN, { input: { username: user.username, password: 'not the password' } });
    expect(wrong.data.login).toMatchObject({ __typename: 'InvalidCredentialsError', code: 'INVALID_CREDENTIALS' });
    // Word for word what a name no account has gets: the wrong password learns nothing about the account.
    const unknown = await required.gql(LOGIN, { input: { username: uniqueName('nobody'), password: 'not the password' } });
    expect(wrong.data.login).toEqual(unknown.data.login);
    expect(await activeSessions(required, user.id)).toBe(0);

    expect((await required.gql(VERIFY, { token: user.verifyToken })).data.verifyEmail.emailVerified).toBe(true);
    const after = await required.gql(LOGIN, { input: { username: user.username, password: user.password } });
    expect(after.data.login).toMatchObject({ __typename: 'AuthPayload', user: { id: user.id } });
  });

  it('requestEmailVerification(email) sends a new link, which verifies (the old one is ended)', async () => {
    const user = await registerPending();
    const resent = nextMail(user.email, SUBJECT.verify);
    expect((await required.gql(REQUEST_VERIFICATION, { email: user.email })).data.requestEmailVerification).toBe(true);
    const token = linkOf(await resent).token;
    expect(token).not.toBe(user.verifyToken);
    expect((await required.gql(VERIFY, { token: user.verifyToken })).data.verifyEmail.code).toBe('TOKEN_INVALID');
    expect((await required.gql(VERIFY, { token })).data.verifyEmail.emailVerified).toBe(true);
    expect((await required.gql(LOGIN, { input: { username: user.username, password: user.password } })).data.login.__typename).toBe('AuthPayload');
  });

  it('signing in with a mailed code verifies the address (and, as the first proof of it, replaces the password the registration set)', async () => {
    const user = await registerPending();
    const { code } = await requestSignIn(required, user.email);
    expect(await withCode(required, user.email, code)).toMatchObject({ __typename: 'AuthPayload', user: { emailVerified: true } });
    // Whoever registered may not own the mailbox: their password does not open the verified account.
    expect((await required.gql(LOGIN, { input: { username: user.username, password: user.password } })).data.login.code).toBe('INVALID_CREDENTIALS');
    const token = await requestReset(required, user.email);
    expect((await required.gql(RESET, { token, password: 'set by the mailbox owner' })).data.resetPassword.__typename).toBe('AuthPayload');
    expect((await required.gql(LOGIN, { input: { username: user.username, password: 'set by the mailbox owner' } })).data.login.__typename).toBe('AuthPayload');
  });
});

describe('EMAIL_VERIFICATION=off', () => {
  it('registration mails no verification', async () => {
    const user = await registerWithEmail(off);
    // A later mail to the same address has arrived, so the sender has been at work since the registration.
    await requestSignIn(off, user.email);
    expect(mailsTo(smtp, user.email).filter((mail) => SUBJECT.verify.test(mail.subject ?? ''))).toEqual([]);
    const db = rawDb(off.services);
    expect(await db.mailOutbox.count({ where: { userId: user.user.id, kind: 'verify_email' } })).toBe(0);
    expect(await db.emailToken.count({ where: { userId: user.user.id, purpose: 'verify_email' } })).toBe(0);
  });
});

// ---- 7. updateProfile and the address --------------------------------------------------------------

describe('updateProfile and the email address', () => {
  it('refuses to replace or clear an address while email is on (verified or not) and points at requestEmailChange', async () => {
    for (const verified of [false, true]) {
      const user = await registerAndVerificationToken(app);
      if (verified) expect((await app.gql(VERIFY, { token: user.verifyToken })).data.verifyEmail.emailVerified).toBe(true);
      for (const email of [uniqueEmail('hijack'), null]) {
        const refused = (await app.gql(UPDATE_PROFILE, { input: { email } }, user.auth)).data.updateProfile;
        expect(refused.__typename).toBe('ValidationError');
        expect(refused.fieldErrors).toEqual([{ field: 'email', message: expect.stringContaining('requestEmailChange') }]);
      }
      expect((await app.gql(ME_EMAIL, {}, user.auth)).data.me).toMatchObject({ email: user.email, emailVerified: verified });
      // The same address in another spelling is no change.
      expect((await app.gql(UPDATE_PROFILE, { input: { email: user.email.toUpperCase() } }, user.auth)).data.updateProfile).toMatchObject({
        __typename: 'User',
        emailVerified: verified,
      });
    }
  });

  it('with EMAIL_ENABLED=false the address is plain data: it can be replaced, and is not verified', async () => {
    const plain = await createMailApp(smtp, { EMAIL_ENABLED: 'false' });
    const user = await registerWithEmail(plain);
    const replacement = uniqueEmail('replacement');
    expect((await plain.gql(UPDATE_PROFILE, { input: { email: replacement } }, user.auth)).data.updateProfile).toEqual({
      __typename: 'User',
      id: user.user.id,
      email: replacement,
      emailVerified: false,
    });
    expect(mailsTo(smtp, replacement)).toEqual([]);
  });
});

// ---- 8. Disabled accounts ----------------------------------------------------------------------------

describe('disabled accounts', () => {
  it('a reset request for a disabled account mails nothing', async () => {
    const user = await registerWithEmail(app);
    await app.services.users.disable(user.user.id, OPERATOR);
    expect((await app.gql(REQUEST_RESET, { email: user.email })).data.requestPasswordReset).toBe(true);
    const outbox = rawDb(app.services).mailOutbox;
    // The sender decides in the background: polled (generous timeout) until the row is what it must become.
    await expect
      .poll(() => outbox.findMany({ where: { recipient: user.email, kind: 'reset_password' } }), { timeout: 20_000, interval: 100 })
      .toMatchObject([{ state: 'dropped', lastError: 'account_disabled', tokenId: null }]);
    expect(mailsTo(smtp, user.email).filter((mail) => SUBJECT.reset.test(mail.subject ?? ''))).toEqual([]);
  });

  it('a sign-in link or code mailed before the disable answers AccountDisabledError', async () => {
    const user = await registerWithEmail(app);
    const { token, code } = await requestSignIn(app, user.email);
    await app.services.users.disable(user.user.id, OPERATOR);
    expect((await app.gql(WITH_LINK, { token })).data.signInWithLink).toMatchObject({ __typename: 'AccountDisabledError', code: 'ACCOUNT_DISABLED' });
    expect(await withCode(app, user.email, code)).toMatchObject({ __typename: 'AccountDisabledError', code: 'ACCOUNT_DISABLED' });
    expect(await activeSessions(app, user.user.id)).toBe(0);
  });

  it('a reset link mailed before the disable is dead (TOKEN_INVALID: disabling moved the credentials on) and starts no session', async () => {
    const user = await registerWithEmail(app);
    const token = await requestReset(app, user.email);
    await app.services.users.disable(user.user.id, OPERATOR);
    expect((await app.gql(RESET, { token, password: 'set while disabled' })).data.resetPassword).toMatchObject({
      __typename: 'InvalidTokenError',
      code: 'TOKEN_INVALID',
    });
    expect(await activeSessions(app, user.user.id)).toBe(0);
    // Nor did it set the password, and it stays dead once the account is enabled again.
    await app.services.users.enable(user.user.id, OPERATOR);
    expect((await app.gql(RESET, { token, password: 'set while disabled' })).data.resetPassword.code).toBe('TOKEN_INVALID');
    expect((await app.gql(LOGIN, { input: { username: user.username, password: user.password } })).data.login.__typename).toBe('AuthPayload');
  });
});

// ---- 9. Deleted accounts -----------------------------------------------------------------------------

describe('deleted accounts', () => {
  it('every pending token of a deleted account stops working', async () => {
    const user = await registerAndVerificationToken(app);
    const resetToken = await requestReset(app, user.email);
    const changeToken = await requestChange(app, user, uniqueEmail('moved'));
    const signIn = await requestSignIn(app, user.email);
    await app.services.users.delete(user.user.id, OPERATOR);

    expect((await app.gql(VERIFY, { token: user.verifyToken })).data.verifyEmail.code).toBe('TOKEN_INVALID');
    expect((await app.gql(RESET, { token: resetToken, password: 'set after deletion' })).data.resetPassword.code).toBe('TOKEN_INVALID');
    expect((await app.gql(CONFIRM_CHANGE, { token: changeToken })).data.confirmEmailChange.code).toBe('TOKEN_INVALID');
    expect((await app.gql(WITH_LINK, { token: signIn.token })).data.signInWithLink.code).toBe('TOKEN_INVALID');
    expect((await withCode(app, user.email, signIn.code)).code).toBe('TOKEN_INVALID');
  });

  it('a new account with the deleted one’s address cannot be entered with the old mail', async () => {
    const user = await registerWithEmail(app);
    const signIn = await requestSignIn(app, user.email);
    await app.services.users.delete(user.user.id, OPERATOR);
    const successor = await registerWithEmail(app, user.email);
    expect((await app.gql(WITH_LINK, { token: signIn.token })).data.signInWithLink.code).toBe('TOKEN_INVALID');
    expect((await withCode(app, user.email, signIn.code)).code).toBe('TOKEN_INVALID');
    expect(await activeSessions(app, successor.user.id)).toBe(1);
  });
});
