import type { IncomingMessage } from 'node:http';
import type { YogaInitialContext } from 'graphql-yoga';
import type { AccessTokenService } from './auth/access-tokens.js';
import type { AccountService } from './auth/accounts.js';
import type { ApiTokenService } from './auth/api-tokens.js';
import type { Authenticator, Viewer } from './auth/authenticate.js';
import type { EmailFlows } from './auth/email-flows.js';
import type { Clock } from './auth/clock.js';
import type { RateLimiter } from './auth/rate-limit.js';
import type { SessionService } from './auth/sessions.js';
import type { UserAdministration } from './auth/user-admin.js';
import type { Config } from './config.js';
import type { Database } from './db/database.js';
import type { RefreshCookie } from './http/refresh-cookie.js';
import type { OutboxSender } from './mail/outbox-sender.js';

/** The long-lived parts of the application, built once by createApp. */
export interface Services {
  readonly config: Config;
  readonly clock: Clock;
  readonly db: Database;
  readonly accounts: AccountService;
  /** Verification, password reset, address change, sign-in by mail. */
  readonly email: EmailFlows;
  /** Delivers the mail outbox; null with EMAIL_ENABLED=false. Started by createApp (the admin CLI sends nothing). */
  readonly mailSender: OutboxSender | null;
  readonly sessions: SessionService;
  readonly apiTokens: ApiTokenService;
  readonly users: UserAdministration;
  readonly accessTokens: AccessTokenService;
  readonly authenticator: Authenticator;
  readonly rateLimiter: RateLimiter;
  readonly limits: LimitsStore;
}

/** Where rate limits and the login lockout keep their counts (services.ts createLimits). */
export interface LimitsStore {
  /** True with REDIS_URL: every instance counts against the same limits. */
  readonly shared: boolean;
  /**
   * Whether the shared counts are in use right now: false without REDIS_URL, and while Redis does not
   * answer (each instance then counts alone, so limits multiply by the number of instances).
   */
  sharedStoreAvailable(): boolean;
  /** Closes the Redis connection, if any. */
  close(): Promise<void>;
}

/** Present only when served through node:http; absent under yoga.fetch in tests. */
export interface ServerContext {
  readonly req?: IncomingMessage;
}

/** Logs an auth event; failures default to warn, successes to info. */
export type Audit = (event: string, outcome: string, userId: string | null, level?: 'debug' | 'info' | 'warn') => void;

/** What createApp adds to every request. */
export interface UserContext {
  readonly services: Services;
  /** As seen (logged, stored with sessions). */
  readonly clientIp: string | null;
  /** What per-client limits count the client as: clientIp, or for IPv6 its network prefix (rate-limit.ts clientNetwork). */
  readonly clientNetwork: string | null;
  readonly userAgent: string | null;
  /** The caller, resolved from the Authorization header on first use; throws UNAUTHENTICATED for a bad token. */
  readonly viewer: () => Promise<Viewer | null>;
  /** The caller if viewer() has already resolved one; never triggers authentication. */
  readonly authenticatedViewer: () => Viewer | null;
  readonly requestId: string;
  /**
   * The refresh cookie (REFRESH_TOKEN_TRANSPORT): read only by refresh and logout, set by every answer
   * that issues a refresh token. Never authentication for anything else.
   */
  readonly refreshCookie: RefreshCookie;
  /** Logs an auth event (outcome "success" or a refusal code) with request id, address and user. */
  readonly audit: Audit;
}

export type RequestContext = YogaInitialContext & ServerContext & UserContext;
