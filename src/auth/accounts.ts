import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Database, UserRecord } from '../db/client.js';
import type { AccessTokenService } from './access-tokens.js';
import {
  AccountDisabledError,
  EmailTakenError,
  InvalidCredentialsError,
  UsernameTakenError,
  ValidationError,
  type FieldError,
} from './errors.js';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, type PasswordHasher } from './passwords.js';
import type { ClientMeta, IssuedSession, SessionService } from './sessions.js';

export interface RegisterInput {
  readonly username: string;
  readonly password: string;
  readonly email?: string | null;
  readonly fullname?: string | null;
}

export interface LoginInput {
  readonly username: string;
  readonly password: string;
}

export interface AuthResult {
  readonly accessToken: string;
  readonly refreshToken: string;
  readonly tokenType: 'Bearer';
  readonly expiresIn: number;
  readonly user: UserRecord;
  readonly sessionId: string;
}

const MAX_EMAIL_LENGTH = 254;
const MAX_FULLNAME_LENGTH = 100;

export const usernameSchema = z
  .string()
  .min(3, 'must be at least 3 characters')
  .max(32, 'must be at most 32 characters')
  // No '@': login tells a username from an email address by it.
  .regex(/^[a-zA-Z0-9_.-]+$/, 'may contain only letters, digits, underscore, dot and hyphen');

const passwordSchema = z
  .string()
  .min(MIN_PASSWORD_LENGTH, `must be at least ${MIN_PASSWORD_LENGTH} characters`)
  .max(MAX_PASSWORD_LENGTH, `must be at most ${MAX_PASSWORD_LENGTH} characters`);

const registerSchema = z
  .object({
    username: usernameSchema,
    password: passwordSchema,
    email: z.email('must be a valid email address').max(MAX_EMAIL_LENGTH, `must be at most ${MAX_EMAIL_LENGTH} characters`).nullish(),
    fullname: z
      .string()
      .trim()
      .min(1, 'must not be blank')
      .max(MAX_FULLNAME_LENGTH, `must be at most ${MAX_FULLNAME_LENGTH} characters`)
      .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters')
      .nullish(),
  })
  .superRefine((input, ctx) => {
    if (input.password.toLowerCase() === input.username.toLowerCase()) {
      ctx.addIssue({ code: 'custom', path: ['password'], message: 'must not be the same as the username' });
    }
  });

const loginSchema = z.object({
  username: z.string().min(1, 'is required').max(MAX_EMAIL_LENGTH, 'is too long'),
  password: z.string().min(1, 'is required').max(MAX_PASSWORD_LENGTH, 'is too long'),
});

function validate<T>(schema: z.ZodType<T>, input: unknown): T {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const fieldErrors: FieldError[] = parsed.error.issues.map((issue) => ({
    field: issue.path.join('.') || 'input',
    message: issue.message,
  }));
  throw new ValidationError(fieldErrors);
}

const foldCase = (value: string) => value.toLowerCase();

/** Registration, login and account look-ups: the account rules, free of GraphQL. */
export class AccountService {
  constructor(
    private readonly db: Database,
    private readonly passwords: PasswordHasher,
    private readonly sessions: SessionService,
    private readonly accessTokens: AccessTokenService,
  ) {}

  async register(input: RegisterInput, meta: ClientMeta): Promise<AuthResult> {
    // Validation (including the password length bound) happens before any hashing.
    const valid = validate(registerSchema, input);
    const usernameKey = foldCase(valid.username);
    const emailKey = valid.email ? foldCase(valid.email) : null;
    await this.#assertAvailable(usernameKey, emailKey);

    const passwordHash = await this.passwords.hash(valid.password);
    try {
      const { user, issued } = await this.db.$transaction(async (tx) => {
        const user = await tx.user.create({
          data: {
            id: randomUUID(),
            username: valid.username,
            usernameKey,
            email: valid.email ?? null,
            emailKey,
            fullname: valid.fullname ?? null,
            passwordHash,
          },
        });
        return { user, issued: await this.sessions.start(user.id, meta, tx) };
      });
      return this.#authResult(user, issued);
    } catch (error) {
      // Lost a race with a parallel registration of the same name: the unique index decided.
      if ((error as { code?: string }).code === 'P2002') await this.#assertAvailable(usernameKey, emailKey);
      throw error;
    }
  }

  async login(input: LoginInput, meta: ClientMeta): Promise<AuthResult> {
    const valid = validate(loginSchema, input);
    const key = foldCase(valid.username);
    const user = await this.db.user.findUnique({ where: key.includes('@') ? { emailKey: key } : { usernameKey: key } });
    // Same work and same answer whether the user is unknown or the password wrong.
    const passwordMatches = user
      ? await this.passwords.verify(user.passwordHash, valid.password)
      : await this.passwords.verifyAgainstDummy(valid.password);
    if (!user || !passwordMatches) throw new InvalidCredentialsError();
    if (user.disabledAt) throw new AccountDisabledError();
    return this.#authResult(user, await this.sessions.start(user.id, meta));
  }

  /** Exchanges a refresh token for new tokens (rotation with reuse detection lives in SessionService). */
  async refresh(refreshToken: string): Promise<AuthResult> {
    const issued = await this.sessions.rotate(refreshToken);
    const user = await this.db.user.findUniqueOrThrow({ where: { id: issued.session.userId } });
    return this.#authResult(user, issued);
  }

  /** For sign-up forms. Invalid names cannot exist, so they answer false without a query. */
  async usernameExists(username: string): Promise<boolean> {
    if (!usernameSchema.safeParse(username).success) return false;
    const found = await this.db.user.findUnique({ where: { usernameKey: foldCase(username) }, select: { id: true } });
    return found !== null;
  }

  findUser(id: string): Promise<UserRecord | null> {
    return this.db.user.findUnique({ where: { id } });
  }

  async #assertAvailable(usernameKey: string, emailKey: string | null): Promise<void> {
    const [byName, byEmail] = await Promise.all([
      this.db.user.findUnique({ where: { usernameKey }, select: { id: true } }),
      emailKey ? this.db.user.findUnique({ where: { emailKey }, select: { id: true } }) : null,
    ]);
    if (byName) throw new UsernameTakenError();
    if (byEmail) throw new EmailTakenError();
  }

  async #authResult(user: UserRecord, issued: IssuedSession): Promise<AuthResult> {
    return {
      accessToken: await this.accessTokens.sign(user.id, issued.session.id),
      refreshToken: issued.refreshToken,
      tokenType: 'Bearer',
      expiresIn: this.accessTokens.ttlSeconds,
      user,
      sessionId: issued.session.id,
    };
  }
}
