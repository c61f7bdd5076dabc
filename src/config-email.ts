import { z } from 'zod';
import type { EmailVerificationMode } from './auth/email-flows.js';
import { parseSmtpUrl } from './mail/transport.js';

// The email settings (verification, reset, address change, sign-in by mail, delivery). Part of the one
// environment schema in config.ts, kept here so that file stays readable; .env.example documents each.

const minutes = (fallback: number) =>
  z.coerce
    .number({ error: (issue) => (issue.code === 'invalid_type' ? 'expected a number' : undefined) })
    .int()
    .min(1)
    .max(10_080, 'must be at most 10080 (7 days)')
    .default(fallback);
const seconds = (fallback: number, max: number) =>
  z.coerce
    .number({ error: (issue) => (issue.code === 'invalid_type' ? 'expected a number' : undefined) })
    .positive()
    .max(max)
    .default(fallback);
const appPath = (fallback: string) =>
  z
    .string()
    .regex(/^\/[^\s?#]*$/, 'must be a path starting with / (no query, no fragment)')
    .default(fallback);

export const emailEnvironment = {
  EMAIL_ENABLED: z.stringbool().default(true),
  EMAIL_VERIFICATION: z.enum(['off', 'optional', 'required']).default('optional'),
  SMTP_URL: z
    .string()
    .optional()
    .superRefine((url, ctx) => {
      const problem = url === undefined ? undefined : parseSmtpUrl(url);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  MAIL_FROM: z
    .string()
    .max(320)
    .refine(
      (from) => /^[^\r\n<>]*<[^\s@<>]+@[^\s@<>]+>$|^[^\s@<>]+@[^\s@<>]+$/.test(from),
      'must be an address, or a name and an address: Acme <no-reply@acme.example>',
    )
    .optional(),
  PRODUCT_NAME: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[^\r\n]+$/, 'must be one line')
    .default('Gatehouse'),
  APP_URL: z
    .string()
    .refine(
      (url) => URL.canParse(url) && /^https?:$/.test(new URL(url).protocol) && !new URL(url).search && !new URL(url).hash,
      'must be an http:// or https:// URL without query or fragment, e.g. https://app.example.com',
    )
    .optional(),
  EMAIL_VERIFY_PATH: appPath('/verify-email'),
  PASSWORD_RESET_PATH: appPath('/reset-password'),
  EMAIL_CHANGE_PATH: appPath('/confirm-email-change'),
  SIGN_IN_LINK_PATH: appPath('/sign-in/email'),
  EMAIL_TEMPLATES_DIR: z.string().min(1).optional(),
  EMAIL_LOCALE: z
    .string()
    .regex(/^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?$/, 'must be a locale name like en or pt-BR')
    .default('en'),
  EMAIL_VERIFICATION_TTL_MINUTES: minutes(1440),
  PASSWORD_RESET_TTL_MINUTES: minutes(30),
  EMAIL_CHANGE_TTL_MINUTES: minutes(60),
  SIGN_IN_CODE_TTL_MINUTES: minutes(10),
  MAIL_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(30),
  MAIL_RETRY_BASE_SECONDS: seconds(5, 3600),
  MAIL_RETRY_MAX_SECONDS: seconds(600, 86_400),
  MAIL_POLL_INTERVAL_SECONDS: seconds(2, 3600).refine((value) => value >= 0.05, 'must be at least 0.05'),
};

type EmailEnvironment = z.output<z.ZodObject<typeof emailEnvironment>>;

export interface EmailConfig {
  readonly enabled: boolean;
  readonly verification: EmailVerificationMode;
  /** undefined: the development outbox (files under DATA_DIR/mail and a log line per mail). */
  readonly smtpUrl: string | undefined;
  readonly from: string;
  readonly productName: string;
  readonly appUrl: string;
  /** Where each mail's link points: APP_URL + the page's path (the page calls the mutation). */
  readonly links: { readonly verify_email: string; readonly reset_password: string; readonly confirm_email_change: string; readonly sign_in: string };
  readonly templatesDir: string | undefined;
  readonly locale: string;
  readonly lifetimesMs: { readonly verify_email: number; readonly reset_password: number; readonly change_email: number; readonly sign_in: number };
  readonly developmentOutboxDir: string;
  readonly delivery: { readonly maxAttempts: number; readonly retryBaseMs: number; readonly retryMaxMs: number; readonly pollIntervalMs: number };
}

const DEVELOPMENT_APP_URL = 'http://localhost:3000';

/** Rules between email settings, for loadConfig's list of problems. */
export function emailProblems(e: Partial<EmailEnvironment>, production: boolean): string[] {
  const problems: string[] = [];
  if (e.MAIL_RETRY_BASE_SECONDS !== undefined && e.MAIL_RETRY_MAX_SECONDS !== undefined && e.MAIL_RETRY_BASE_SECONDS > e.MAIL_RETRY_MAX_SECONDS) {
    problems.push('MAIL_RETRY_BASE_SECONDS: must not exceed MAIL_RETRY_MAX_SECONDS');
  }
  if (e.EMAIL_ENABLED === false && e.EMAIL_VERIFICATION === 'required') {
    problems.push('EMAIL_VERIFICATION: cannot be required with EMAIL_ENABLED=false (no verification mail could be sent)');
  }
  if (production && e.EMAIL_ENABLED !== false) {
    // Without them, production would write reset links into log lines and files, and point them at localhost.
    const missing = (['SMTP_URL', 'MAIL_FROM', 'APP_URL'] as const).filter((name) => e[name] === undefined);
    for (const name of missing) {
      problems.push(
        `${name}: required when NODE_ENV=production with email on (verification, password reset and sign-in by mail send mail); set it, or EMAIL_ENABLED=false to turn email off`,
      );
    }
  }
  return problems;
}

export function emailConfigOf(e: EmailEnvironment, dataDir: string): EmailConfig {
  const appUrl = e.APP_URL ?? DEVELOPMENT_APP_URL;
  // APP_URL may carry a base path (https://example.com/app): the page paths go after it.
  const link = (pathname: string) => appUrl.replace(/\/+$/, '') + pathname;
  return {
    enabled: e.EMAIL_ENABLED,
    verification: e.EMAIL_VERIFICATION,
    smtpUrl: e.SMTP_URL,
    from: e.MAIL_FROM ?? `${e.PRODUCT_NAME} <no-reply@localhost>`,
    productName: e.PRODUCT_NAME,
    appUrl,
    links: {
      verify_email: link(e.EMAIL_VERIFY_PATH),
      reset_password: link(e.PASSWORD_RESET_PATH),
      confirm_email_change: link(e.EMAIL_CHANGE_PATH),
      sign_in: link(e.SIGN_IN_LINK_PATH),
    },
    templatesDir: e.EMAIL_TEMPLATES_DIR,
    locale: e.EMAIL_LOCALE,
    lifetimesMs: {
      verify_email: e.EMAIL_VERIFICATION_TTL_MINUTES * 60_000,
      reset_password: e.PASSWORD_RESET_TTL_MINUTES * 60_000,
      change_email: e.EMAIL_CHANGE_TTL_MINUTES * 60_000,
      sign_in: e.SIGN_IN_CODE_TTL_MINUTES * 60_000,
    },
    developmentOutboxDir: `${dataDir}/mail`,
    delivery: {
      maxAttempts: e.MAIL_MAX_ATTEMPTS,
      retryBaseMs: e.MAIL_RETRY_BASE_SECONDS * 1000,
      retryMaxMs: e.MAIL_RETRY_MAX_SECONDS * 1000,
      pollIntervalMs: e.MAIL_POLL_INTERVAL_SECONDS * 1000,
    },
  };
}
