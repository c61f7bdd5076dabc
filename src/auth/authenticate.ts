import type { AccessTokenService } from './access-tokens.js';
import { API_TOKEN_PREFIX, type ApiTokenService } from './api-tokens.js';
import { AuthenticationError } from './errors.js';
import type { ApiScope } from './scopes.js';
import type { SessionService } from './sessions.js';
import type { UserStore } from '../db/stores/users.js';

export interface Viewer {
  readonly userId: string;
  /** The session behind an access token; null when the caller used an API token. */
  readonly sessionId: string | null;
  readonly apiTokenId: string | null;
  /** An API token's grants; null for a session, which may do whatever its user's role allows. */
  readonly scopes: ReadonlySet<ApiScope> | null;
}

export function grants(viewer: Viewer, scope: ApiScope): boolean {
  return viewer.scopes === null || viewer.scopes.has(scope);
}

const MAX_TOKEN_LENGTH = 4096;

/** Turns an Authorization header into the caller's identity, or refuses it with a reason. */
export class Authenticator {
  constructor(
    private readonly accessTokens: AccessTokenService,
    private readonly sessions: SessionService,
    private readonly apiTokens: ApiTokenService,
    private readonly users: UserStore,
  ) {}

  /** null when no credentials were sent; throws AuthenticationError when they were sent and are not good. */
  async authenticate(authorization: string | null): Promise<Viewer | null> {
    if (authorization === null || authorization.trim() === '') return null;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match || match[1]!.length > MAX_TOKEN_LENGTH) {
      throw new AuthenticationError('malformed', 'The Authorization header must be "Bearer <access token>".');
    }
    const viewer = await this.#credential(match[1]!);
    // Disabling or deleting a user ends their sessions and tokens too; this also covers a change made
    // by another process, and is the one place that checks it for every kind of credential.
    const user = await this.users.findCached(viewer.userId);
    if (!user || user.disabledAt) throw AuthenticationError.accountUnavailable();
    return viewer;
  }

  async #credential(token: string): Promise<Viewer> {
    if (token.startsWith(API_TOKEN_PREFIX)) {
      const apiToken = await this.apiTokens.authenticate(token);
      return { userId: apiToken.userId, sessionId: null, apiTokenId: apiToken.id, scopes: apiToken.scopes };
    }
    const claims = await this.accessTokens.verify(token);
    // A valid signature is not enough: the session may have been logged out since the token was issued.
    if ((await this.sessions.status(claims.sessionId, claims.userId)) === 'ended') {
      throw AuthenticationError.sessionEnded();
    }
    return { userId: claims.userId, sessionId: claims.sessionId, apiTokenId: null, scopes: null };
  }
}
