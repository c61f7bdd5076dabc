import { z } from 'zod';
import { ValidationError, type FieldError } from './errors.js';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from './passwords.js';

// Input rules shared by registration, profile changes and the admin CLI. Every string is bounded here,
// before any hashing or database work.

export const MAX_EMAIL_LENGTH = 254;
const MAX_FULLNAME_LENGTH = 100;

export const usernameSchema = z
  .string()
  .min(3, 'must be at least 3 characters')
  .max(32, 'must be at most 32 characters')
  // No '@': login tells a username from an email address by it.
  .regex(/^[a-zA-Z0-9_.-]+$/, 'may contain only letters, digits, underscore, dot and hyphen');

export const passwordSchema = z
  .string()
  .min(MIN_PASSWORD_LENGTH, `must be at least ${MIN_PASSWORD_LENGTH} characters`)
  .max(MAX_PASSWORD_LENGTH, `must be at most ${MAX_PASSWORD_LENGTH} characters`);

export const emailSchema = z.email('must be a valid email address').max(MAX_EMAIL_LENGTH, `must be at most ${MAX_EMAIL_LENGTH} characters`);

/**
 * Characters a display text must not contain, because they hide or reorder what readers see: controls
 * (Cc), formatting characters (Cf: the bidi embeddings, overrides and isolates U+202A–U+202E and
 * U+2066–U+2069, the zero-width U+200B–U+200F, U+2060–U+2064, U+FEFF, the soft hyphen U+00AD, tag
 * characters), line and paragraph separators, lone surrogates, private-use and unassigned code points,
 * and the other default-ignorable ones that render as nothing (Hangul fillers U+115F, U+1160, U+3164,
 * U+FFA0, the combining grapheme joiner U+034F), plus the blank braille pattern U+2800. Variation
 * selectors (U+FE00–U+FE0F) stay allowed: they only pick the glyph of the character before them (❤️).
 * Usernames are ASCII and emails are validated as ASCII addresses, so this is for free-text names.
 */
const INVISIBLE_OR_REORDERING = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}\u2800]|(?![\uFE00-\uFE0F])\p{Default_Ignorable_Code_Point}/u;

/** A free-text display string (full name, token name): trimmed, bounded, nothing invisible or reordering. */
export const displayTextSchema = (maxLength: number) =>
  z
    .string()
    .trim()
    .min(1, 'must not be blank')
    .max(maxLength, `must be at most ${maxLength} characters`)
    .refine((text) => !INVISIBLE_OR_REORDERING.test(text), 'must not contain control, formatting (bidi, zero-width) or invisible characters');

export const fullnameSchema = displayTextSchema(MAX_FULLNAME_LENGTH);

/** A present password must still be short enough to hash; its other rules are the stored hash's business. */
export const presentedPasswordSchema = z.string().min(1, 'is required').max(MAX_PASSWORD_LENGTH, 'is too long');

export function validate<T>(schema: z.ZodType<T>, input: unknown): T {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const fieldErrors: FieldError[] = parsed.error.issues.map((issue) => ({
    field: issue.path.join('.') || 'input',
    message: issue.message,
  }));
  throw new ValidationError(fieldErrors);
}

export const foldCase = (value: string) => value.toLowerCase();
