import { afterAll, expect } from 'vitest';
import type { AppOptions } from '../../src/app.js';
import type { Environment } from '../../src/config.js';
import { bearer, createTestApp, registerUser, type TestApp, uniqueName } from '../support/app.js';
import { type ParsedMail, startSmtpServer, type TestSmtpServer } from '../support/smtp.js';

// Helpers for the email flows: an app that mails through a real SMTP server started here, and readers
// for what arrives there (the link's token, the code).

export const APP_URL = 'https://app.example.test';

/** A real SMTP server for this test file, stopped after it. */
export async function testSmtpServer(): Promise<TestSmtpServer> {
  const smtp = await startSmtpServer();
  afterAll(() => smtp.stop());
  return smtp;
}

/** An app whose mail goes to `smtp`. */
export function createMailApp(smtp: TestSmtpServer, overrides: Environment = {}, options: AppOptions = {}): Promise<TestApp> {
  return createTestApp({ SMTP_URL: smtp.url, MAIL_FROM: 'Gatehouse <no-reply@gatehouse.test>', APP_URL, ...overrides }, options);
}

/** The built-in subjects (src/mail/templates/en), to tell the kinds of mail apart. */
export const SUBJECT = {
  verify: /^Confirm your email address/,
  reset: /^Reset your .* password/,
  changeConfirm: /^Confirm your new email address/,
  changeNotice: /email address is being changed/,
  signIn: /sign-in code/,
} as const;

export const uniqueEmail = (prefix = 'person') => `${uniqueName(prefix)}@example.test`;

/** The next mail to `address` whose subject matches. */
export function mailTo(smtp: TestSmtpServer, address: string, subject: RegExp, timeoutMs = 20_000): Promise<ParsedMail> {
  return smtp.waitForMail((mail) => recipients(mail).includes(address.toLowerCase()) && subject.test(mail.subject ?? ''), timeoutMs);
}

/** Every mail `smtp` accepted for `address`. */
export function mailsTo(smtp: TestSmtpServer, address: string): ParsedMail[] {
  return smtp.messages.filter((mail) => recipients(mail).includes(address.toLowerCase()));
}

function recipients(mail: ParsedMail): string[] {
  const to = Array.isArray(mail.to) ? mail.to : mail.to ? [mail.to] : [];
  return to.flatMap((entry) => entry.value.map((address) => (address.address ?? '').toLowerCase()));
}

/** The link in the mail's text (it points at the app), and the token in it. */
export function linkOf(mail: ParsedMail): { url: URL; token: string } {
  const match = /https?:\/\/\S+\?token=[A-Za-z0-9_-]+/.exec(mail.text ?? '');
  expect(match, `no link in: ${mail.text}`).not.toBeNull();
  const url = new URL(match![0]);
  return { url, token: url.searchParams.get('token')! };
}

/** The 6-digit code in a sign-in mail. */
export function codeOf(mail: ParsedMail): string {
  const match = /\b(\d{6})\b/.exec(mail.text ?? '');
  expect(match, `no code in: ${mail.text}`).not.toBeNull();
  return match![1]!;
}

/** A user registered with an address; the verification mail it gets is waited for only when asked. */
export async function registerWithEmail(app: TestApp, email = uniqueEmail()) {
  const registered = await registerUser(app, { email });
  return { ...registered, email, auth: bearer(registered.accessToken) };
}

export const AUTH_RESULT = `__typename ... on AuthPayload { accessToken refreshToken user { id email emailVerified } } ... on Error { code message }`;
