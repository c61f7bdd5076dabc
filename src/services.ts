import { AccessTokenService } from './auth/access-tokens.js';
import { AccountService } from './auth/accounts.js';
import { ApiTokenService } from './auth/api-tokens.js';
import { Authenticator } from './auth/authenticate.js';
import { systemClock, type Clock } from './auth/clock.js';
import { loadOrCreateKeyFile } from './auth/keys.js';
import { LoginLockout } from './auth/lockout.js';
import { PasswordHasher } from './auth/passwords.js';
import { BoundedMemoryStore } from './auth/rate-limit-store.js';
import { RateLimiter } from './auth/rate-limit.js';
import { SessionService } from './auth/sessions.js';
import { UserAdministration } from './auth/user-admin.js';
import { UserCache } from './auth/user-cache.js';
import type { Config } from './config.js';
import type { Services } from './context.js';
import { openDatabase } from './db/client.js';

/** Wires the auth services over an already migrated database; shared by the server and the admin CLI. */
export async function createServices(config: Config, clock: Clock = systemClock): Promise<{ services: Services; keysCreated: boolean }> {
  const db = await openDatabase(config.databaseUrl, config.sqliteSynchronous);
  const { keys, created: keysCreated } = await loadOrCreateKeyFile(config.keysFile, new Date(clock.now()));
  const refreshKey = Buffer.from(config.sessions.refreshTokenSecret ?? keys.refreshTokenSecret, 'utf8');

  const accessTokens = await AccessTokenService.create(config.jwt, keys, clock);
  const userCache = new UserCache(db, clock);
  const sessions = new SessionService(db, config.sessions, refreshKey, clock, userCache);
  const apiTokens = new ApiTokenService(db, clock);
  const services: Services = {
    config,
    clock,
    db,
    accessTokens,
    sessions,
    apiTokens,
    accounts: new AccountService(db, new PasswordHasher(config.argon2), sessions, accessTokens, new LoginLockout(config.lockout, clock), userCache),
    users: new UserAdministration(db, sessions, apiTokens, clock, userCache),
    authenticator: new Authenticator(accessTokens, sessions, apiTokens, userCache),
    rateLimiter: new RateLimiter(config.rateLimits.rules, new BoundedMemoryStore({ maxIdentities: config.rateLimits.maxKeys })),
  };
  return { services, keysCreated };
}
