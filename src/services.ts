import { AccessTokenService } from './auth/access-tokens.js';
import { AccountService } from './auth/accounts.js';
import { ApiTokenService } from './auth/api-tokens.js';
import { Authenticator } from './auth/authenticate.js';
import { EmailFlows } from './auth/email-flows.js';
import { EmailRequests } from './auth/email-requests.js';
import { EmailSecrets } from './auth/email-secrets.js';
import { systemClock, type Clock } from './auth/clock.js';
import { keyFilePermissionProblem, loadOrCreateKeyFile, readKeyFile, type KeyFile } from './auth/keys.js';
import { type LoginLockout, MemoryLoginLockout } from './auth/lockout.js';
import { SharedLoginLockout } from './auth/lockout-shared.js';
import { PasswordHasher, type PasswordHashObserver } from './auth/passwords.js';
import { MemoryRateWindows } from './auth/rate-limit-memory.js';
import { RateLimiter } from './auth/rate-limit.js';
import { SharedStoreStatus } from './auth/shared-store.js';
import { SessionService } from './auth/sessions.js';
import { UserAdministration } from './auth/user-admin.js';
import type { Config } from './config.js';
import type { LimitsStore, Services } from './context.js';
import { type Database, openDatabaseAt } from './db/database.js';
import type { StoreObserver } from './db/observer.js';
import { createLogger, type Logger } from './logger.js';
import { type MailDeliveryObserver, OutboxSender } from './mail/outbox-sender.js';
import { loadTemplates } from './mail/templates.js';
import { developmentOutbox, smtpTransport } from './mail/transport.js';
import { openRedis } from './redis.js';

export interface CreatedServices {
  readonly services: Services;
  /** Whether this start created the key file (first start). */
  readonly keysCreated: boolean;
  /** Problems worth an operator's attention that did not stop the start (the caller logs them). */
  readonly warnings: readonly string[];
}

export interface ServiceOptions {
  /** Where the shared limits (a Redis outage) and mail delivery log; by default JSON lines on stdout. */
  readonly logger?: Logger;
  /** False keeps rate limits and lockout in process even with REDIS_URL (the admin CLI checks no passwords). */
  readonly sharedLimits?: boolean;
  /** Where hash times and mail outcomes are reported (the server's metrics; the admin CLI passes none). */
  readonly observers?: {
    readonly passwordHashes?: PasswordHashObserver;
    readonly mailDelivery?: MailDeliveryObserver;
    readonly stores?: StoreObserver;
  };
}

// Tries a mailed sign-in code allows before it is dead (issue: 5 wrong tries).
const MAX_CODE_TRIES = 5;

// How long a start waits for Redis before serving with per-instance limits (logged) until it answers.
const REDIS_START_WAIT_MS = 3_000;

/** Wires the auth services over an already migrated database; shared by the server and the admin CLI. */
export async function createServices(config: Config, clock: Clock = systemClock, options: ServiceOptions = {}): Promise<CreatedServices> {
  const db = await openDatabaseAt(
    {
      url: config.databaseUrl,
      sqliteSynchronous: config.sqliteSynchronous,
      sessionIdleTimeoutMs: config.sessions.idleTimeoutMs,
      redis: config.redis,
      observer: options.observers?.stores,
    },
    clock,
  );
  let keys: KeyFile;
  let keysCreated: boolean;
  const warnings: string[] = [];
  try {
    ({ keys, created: keysCreated } = await loadOrCreateKeyFile(config.keysFile, new Date(clock.now()), {
      beforeCreate: () => refuseNewKeysOverExistingData(db, config),
    }));
    const problem = await keyFilePermissionProblem(config.keysFile);
    // Refused in production: a readable private key is a silent, total compromise. Elsewhere (a developer's
    // checkout, CI) a warning, since files there often get the umask's 0644.
    if (problem && config.env === 'production') throw new Error(`${problem} Gatehouse does not start with it when NODE_ENV=production.`);
    if (problem) warnings.push(problem);
  } catch (error) {
    await db.close();
    throw error;
  }
  const refreshKey = Buffer.from(config.sessions.refreshTokenSecret ?? keys.refreshTokenSecret, 'utf8');

  const accessTokens = await AccessTokenService.create(config.jwt, keys, clock, { loadKeys: () => readKeyFile(config.keysFile) });
  const sessions = new SessionService(db, config.sessions, refreshKey, clock);
  const apiTokens = new ApiTokenService(db, clock);
  const { rateLimiter, lockout, limits } = await createLimits(config, clock, options);
  const passwords = new PasswordHasher(config.argon2, options.observers?.passwordHashes);
  const logger = options.logger ?? createLogger(config.logLevel);
  const secrets = new EmailSecrets(refreshKey);
  let mailSender: OutboxSender | null = null;
  const email = new EmailFlows(
    db,
    secrets,
    { ...config.email, maxCodeTries: MAX_CODE_TRIES },
    {
      passwords,
      lockout,
      sessions,
      accessTokens,
      clock,
      mailQueued: () => mailSender?.wake(),
    },
  );
  if (config.email.enabled) {
    mailSender = await createMailSender(
      config,
      db,
      new EmailRequests(db, email, secrets, config.email, clock),
      clock,
      logger,
      warnings,
      options.observers?.mailDelivery,
    );
  }
  const services: Services = {
    config,
    clock,
    db,
    accessTokens,
    sessions,
    apiTokens,
    accounts: new AccountService(db, passwords, sessions, accessTokens, lockout, email, clock),
    email,
    mailSender,
    users: new UserAdministration(db, sessions, apiTokens, clock, config.adminSearchScanLimit),
    authenticator: new Authenticator(accessTokens, sessions, apiTokens, db.users),
    rateLimiter,
    limits,
  };
  return { services, keysCreated, warnings };
}

/**
 * The outbox sender over SMTP (SMTP_URL) or, without it, the development outbox: every mail a file under
 * DATA_DIR/mail and a log line with its link, so `npm start` needs no mail server. Templates are loaded
 * (and checked) here, so a broken override stops the start instead of the first mail. Started by createApp.
 */
async function createMailSender(
  config: Config,
  db: Database,
  requests: EmailRequests,
  clock: Clock,
  logger: Logger,
  warnings: string[],
  observer: MailDeliveryObserver | undefined,
): Promise<OutboxSender> {
  const { email } = config;
  const templates = await loadTemplates({ dir: email.templatesDir, locale: email.locale });
  if (templates.locale !== templates.requestedLocale) {
    warnings.push(`EMAIL_LOCALE=${templates.requestedLocale} has no templates (built in or in EMAIL_TEMPLATES_DIR); mail is sent in ${templates.locale}.`);
  }
  const transport =
    email.smtpUrl !== undefined
      ? smtpTransport(email.smtpUrl)
      : developmentOutbox(email.developmentOutboxDir, (line, fields) => logger.info({ component: 'mail', event: 'mail_outbox', ...fields }, line));
  return new OutboxSender(
    db.mailOutbox,
    transport,
    templates,
    requests,
    clock,
    logger,
    {
      ...email.delivery,
      from: email.from,
      productName: email.productName,
      appUrl: email.appUrl,
    },
    observer,
  );
}

/**
 * Rate limits and login lockout: in process, or with REDIS_URL shared by every instance through Redis
 * with the in-process counters as the fallback while Redis is down (rate-limit.ts, lockout-shared.ts).
 */
async function createLimits(config: Config, clock: Clock, options: ServiceOptions) {
  const localWindows = new MemoryRateWindows(config.rateLimits.maxKeys, clock);
  const localLockout = new MemoryLoginLockout(config.lockout, clock);
  if (config.redis === undefined || options.sharedLimits === false) {
    const limits: LimitsStore = { shared: false, sharedStoreAvailable: () => false, close: async () => {} };
    return { rateLimiter: new RateLimiter(config.rateLimits.rules, localWindows), lockout: localLockout as LoginLockout, limits };
  }
  const { keyPrefix } = config.redis;
  const status = new SharedStoreStatus(openRedis(config.redis, 'gatehouse-limits'), options.logger ?? createLogger(config.logLevel));
  await status.whenReady(REDIS_START_WAIT_MS);
  const limits: LimitsStore = {
    shared: true,
    sharedStoreAvailable: () => status.available(),
    close: () => status.close(),
  };
  return {
    rateLimiter: new RateLimiter(config.rateLimits.rules, localWindows, { status, keyPrefix }),
    lockout: new SharedLoginLockout(config.lockout, localLockout, status, keyPrefix) as LoginLockout,
    limits,
  };
}

/**
 * A missing key file on a database that is in use is almost always a mistake (a lost volume, a wrong
 * KEYS_FILE or DATA_DIR): new keys would silently end every session. Only an empty database, or the
 * operator's explicit ALLOW_NEW_KEYS, gets new keys.
 */
async function refuseNewKeysOverExistingData(db: Database, config: Config): Promise<void> {
  // With both JWT_SECRET and REFRESH_TOKEN_SECRET set, nothing issued depends on the file's keys.
  const fileKeysInUse = config.jwt.secret === undefined || config.sessions.refreshTokenSecret === undefined;
  if (config.allowNewKeys || !fileKeysInUse) return;
  const [users, sessions] = await Promise.all([db.users.count(), db.sessions.count()]);
  if (users === 0 && sessions === 0) return;
  throw new Error(
    `The key file ${config.keysFile} is missing, but the database already has ${users} user(s) and ${sessions} session(s): ` +
      'new keys would end every session. Restore the key file from your backup to that path (check KEYS_FILE and DATA_DIR), ' +
      'or, to start over with new keys and sign everybody out, start once with ALLOW_NEW_KEYS=true and then unset it.',
  );
}
