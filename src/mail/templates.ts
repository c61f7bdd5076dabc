import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { MailKind } from '../db/records.js';

export type { MailKind };

export const MAIL_KINDS: readonly MailKind[] = ['verify_email', 'reset_password', 'confirm_email_change', 'email_change_notice', 'sign_in'];

/** What a mail is rendered with; which of the optional values a kind needs is in KIND_VARIABLES. */
export interface MailVariables {
  readonly productName: string;
  readonly appUrl: string;
  readonly username: string;
  /** The recipient. */
  readonly email: string;
  /** Every kind but email_change_notice (which goes to the old address and must not carry a usable link). */
  readonly link?: string;
  /** sign_in only: six digits. */
  readonly code?: string;
  readonly expiresInMinutes: number;
  /** confirm_email_change and email_change_notice. */
  readonly newEmail?: string;
}

export interface RenderedMail {
  readonly subject: string;
  readonly text: string;
  readonly html: string;
}

export interface MailTemplates {
  /** The locale the templates are in: the requested one, or 'en' when nothing exists for the requested one. */
  readonly locale: string;
  readonly requestedLocale: string;
  /** Override files in use (absolute paths), so the server can log which built-ins were replaced. */
  readonly overrides: readonly string[];
  render(kind: MailKind, variables: MailVariables): RenderedMail;
}

export const BUILT_IN_LOCALE = 'en';
export const BUILT_IN_TEMPLATES_DIR = fileURLToPath(new URL('./templates/', import.meta.url));

const COMMON_VARIABLES = ['productName', 'appUrl', 'username', 'email', 'expiresInMinutes', 'expiresIn'] as const;
type Placeholder = (typeof COMMON_VARIABLES)[number] | 'link' | 'code' | 'newEmail';

/** The placeholders each kind may use; a template using any other fails at load, not when a user is waiting for the mail. */
const KIND_VARIABLES: Record<MailKind, readonly Placeholder[]> = {
  verify_email: [...COMMON_VARIABLES, 'link'],
  reset_password: [...COMMON_VARIABLES, 'link'],
  confirm_email_change: [...COMMON_VARIABLES, 'link', 'newEmail'],
  email_change_notice: [...COMMON_VARIABLES, 'newEmail'],
  sign_in: [...COMMON_VARIABLES, 'link', 'code'],
};

type Segment = { readonly literal: string } | { readonly placeholder: Placeholder };

interface CompiledTemplate {
  readonly subject: readonly Segment[];
  readonly text: readonly Segment[];
  readonly html: readonly Segment[];
}

const PLACEHOLDER = /\{\{\s*([A-Za-z][A-Za-z0-9]*)\s*\}\}/g;
// A locale names a folder: restricting its shape keeps a configured value from walking out of the template directory.
const LOCALE_SHAPE = /^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$/;

/**
 * Loads and validates the templates for `locale`: each of the ten files (`<kind>.txt` and `<kind>.html`) comes from
 * `<dir>/<locale>/` when it exists there, otherwise from the built-in `templates/<locale>/`.
 *
 * A locale that is not built in needs `dir` to supply the complete set: a partial set fails (half the mails would be in
 * another language). Only when neither `dir` nor the built-ins have anything for the locale does English stand in (the
 * built-ins, with any overrides from `<dir>/en/`); `locale` on the result then says 'en', so the server can warn.
 *
 * Every problem (unknown or malformed placeholder, missing Subject line, unreadable or unknown file, missing `dir`)
 * fails with an Error naming the file, so the server refuses to start rather than send a broken mail.
 */
export async function loadTemplates(options: { dir?: string; locale: string }): Promise<MailTemplates> {
  const requestedLocale = options.locale;
  if (!LOCALE_SHAPE.test(requestedLocale)) throw new Error(`Email locale "${requestedLocale}" is not a locale name like "en" or "pt-BR"`);
  const builtInLocales = new Set(await readdir(BUILT_IN_TEMPLATES_DIR));
  let locale = requestedLocale;
  let overrideFiles = options.dir === undefined ? new Set<string>() : await listOverrides(path.resolve(options.dir), locale);
  if (!builtInLocales.has(locale)) {
    const missing = templateFileNames().filter((name) => !overrideFiles.has(name));
    if (overrideFiles.size > 0 && missing.length > 0) {
      const localeDir = path.resolve(options.dir!, locale);
      throw new Error(`Email locale "${locale}" is not built in, so ${localeDir} must supply every template; missing: ${missing.join(', ')}`);
    }
    if (overrideFiles.size === 0) {
      locale = BUILT_IN_LOCALE;
      overrideFiles = options.dir === undefined ? new Set<string>() : await listOverrides(path.resolve(options.dir), locale);
    }
  }

  const overrides: string[] = [];
  const readTemplate = async (name: string): Promise<{ file: string; content: string }> => {
    let file = path.join(BUILT_IN_TEMPLATES_DIR, locale, name);
    if (options.dir !== undefined && overrideFiles.has(name)) {
      file = path.resolve(options.dir, locale, name);
      overrides.push(file);
    }
    return { file, content: await readTemplateFile(file) };
  };

  const compiled = new Map<MailKind, CompiledTemplate>();
  for (const kind of MAIL_KINDS) {
    const textFile = await readTemplate(`${kind}.txt`);
    const htmlFile = await readTemplate(`${kind}.html`);
    const { subject, body } = splitSubject(textFile.file, textFile.content);
    compiled.set(kind, {
      subject: compile(textFile.file, kind, subject),
      text: compile(textFile.file, kind, body),
      html: compile(htmlFile.file, kind, htmlFile.content),
    });
  }

  return {
    locale,
    requestedLocale,
    overrides,
    render(kind, variables) {
      const template = compiled.get(kind);
      if (template === undefined) throw new Error(`Unknown mail kind "${kind}"`);
      const values = placeholderValues(kind, variables);
      return {
        // The subject is a header: a value with a line break in it could add headers of its own.
        subject: fill(template.subject, values, (value) => value.replace(/[\r\n]+/g, ' ')).trim(),
        text: fill(template.text, values, (value) => value),
        html: fill(template.html, values, escapeHtml),
      };
    },
  };
}

function templateFileNames(): string[] {
  return MAIL_KINDS.flatMap((kind) => [`${kind}.txt`, `${kind}.html`]);
}

/** The template file names present in `<dir>/<locale>/`; a missing locale folder supplies nothing. */
async function listOverrides(dir: string, locale: string): Promise<Set<string>> {
  const dirEntries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    throw new Error(`Email template directory ${dir} cannot be read (${error.code ?? error.message})`);
  });
  const known = new Set(templateFileNames());
  const localeDir = path.join(dir, locale);
  let entries: string[];
  try {
    entries = await readdir(localeDir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new Error(`Email template directory ${localeDir} cannot be read (${code ?? String(error)})`);
    // Templates put straight into `dir` would otherwise be ignored without a word.
    const misplaced = dirEntries.filter((name) => known.has(name));
    if (misplaced.length > 0) throw new Error(`Email templates belong in a folder per locale: move ${misplaced.join(', ')} from ${dir} to ${localeDir}`);
    return new Set();
  }
  const files = new Set<string>();
  for (const name of entries) {
    if (name.startsWith('.') || !/\.(txt|html)$/.test(name)) continue;
    // A misspelt name would silently leave the built-in in place.
    if (!known.has(name)) throw new Error(`Email template ${path.join(localeDir, name)} is not a known template; expected one of ${[...known].join(', ')}`);
    files.add(name);
  }
  return files;
}

async function readTemplateFile(file: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new Error(`Email template ${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes).replace(/^\uFEFF/, '');
  } catch {
    throw new Error(`Email template ${file} is not valid UTF-8`);
  }
}

function splitSubject(file: string, content: string): { subject: string; body: string } {
  const lines = content.replace(/\r\n?/g, '\n').split('\n');
  const match = /^Subject:(.*)$/.exec(lines[0] ?? '');
  if (match === null) throw new Error(`Email template ${file} must start with a "Subject: ..." line`);
  const subject = match[1]!.trim();
  if (subject === '') throw new Error(`Email template ${file} has an empty Subject line`);
  if (lines.length < 2 || lines[1]!.trim() !== '') throw new Error(`Email template ${file} needs a blank line between the Subject line and the body`);
  const body = lines.slice(2).join('\n');
  if (body.trim() === '') throw new Error(`Email template ${file} has no body after the Subject line`);
  return { subject, body };
}

function compile(file: string, kind: MailKind, source: string): Segment[] {
  const allowed = KIND_VARIABLES[kind];
  const segments: Segment[] = [];
  let last = 0;
  for (const match of source.matchAll(PLACEHOLDER)) {
    const name = match[1]!;
    if (!(allowed as readonly string[]).includes(name)) {
      throw new Error(`Email template ${file} uses the unknown placeholder {{${name}}}; ${kind} knows ${allowed.map((known) => `{{${known}}}`).join(', ')}`);
    }
    segments.push({ literal: source.slice(last, match.index) }, { placeholder: name as Placeholder });
    last = match.index + match[0].length;
  }
  segments.push({ literal: source.slice(last) });
  const stray = segments.find((segment) => 'literal' in segment && /\{\{|\}\}/.test(segment.literal));
  if (stray !== undefined) throw new Error(`Email template ${file} has a malformed placeholder (a "{{" or "}}" that is not part of {{name}})`);
  return segments;
}

function placeholderValues(kind: MailKind, variables: MailVariables): Record<Placeholder, string> {
  const needs = KIND_VARIABLES[kind];
  const needed = (name: 'link' | 'code' | 'newEmail'): string => {
    const value = variables[name];
    if (!needs.includes(name)) return '';
    if (value === undefined || value === '') throw new Error(`Rendering ${kind} needs the variable ${name}`);
    return value;
  };
  const code = needed('code');
  if (kind === 'sign_in' && !/^\d{6}$/.test(code)) throw new Error('Rendering sign_in needs a six-digit code');
  return {
    productName: variables.productName,
    appUrl: variables.appUrl,
    username: variables.username,
    email: variables.email,
    expiresInMinutes: String(variables.expiresInMinutes),
    expiresIn: describeMinutes(variables.expiresInMinutes),
    link: needed('link'),
    code,
    newEmail: needed('newEmail'),
  };
}

function fill(segments: readonly Segment[], values: Record<Placeholder, string>, encode: (value: string) => string): string {
  return segments.map((segment) => ('literal' in segment ? segment.literal : encode(values[segment.placeholder]))).join('');
}

/** English text for a lifetime ("15 minutes", "1 hour", "24 hours", "7 days"); other locales use {{expiresInMinutes}}. */
export function describeMinutes(minutes: number): string {
  const plural = (count: number, unit: string) => `${count} ${unit}${count === 1 ? '' : 's'}`;
  if (minutes >= 2 * 1440 && minutes % 1440 === 0) return plural(minutes / 1440, 'day');
  if (minutes >= 60 && minutes % 60 === 0) return plural(minutes / 60, 'hour');
  return plural(minutes, 'minute');
}

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}
