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

export const fullnameSchema = z
  .string()
  .trim()
  .min(1, 'must not be blank')
  .max(MAX_FULLNAME_LENGTH, `must be at most ${MAX_FULLNAME_LENGTH} characters`)
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

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
