import type { Database, Transaction } from '../db/database.js';
import { scopesOf } from '../db/stores/api-tokens.js';

/**
 * Who makes an administrative change.
 * - An administrator through the API: their user id and the credential the request came with (a session
 *   or an API token). Whether they may is decided again inside the change's own transaction.
 * - The operator: whoever runs the admin CLI on the server's machine. Access to the database file and key
 *   file is already full control, so no account stands behind it and nothing is checked.
 */
export type AdminActor =
  | { readonly kind: 'operator' }
  | { readonly kind: 'user'; readonly userId: string; readonly sessionId: string | null; readonly apiTokenId: string | null };

export const OPERATOR: AdminActor = { kind: 'operator' };

export function adminActor(viewer: { readonly userId: string; readonly sessionId: string | null; readonly apiTokenId: string | null }): AdminActor {
  return { kind: 'user', userId: viewer.userId, sessionId: viewer.sessionId, apiTokenId: viewer.apiTokenId };
}

/**
 * The author of an admin change is no longer allowed to make it (demoted, disabled, deleted, or its session
 * or token ended since the request was let in). Cross-cutting, like FORBIDDEN: not a member of any result
 * union, so it is not an ExpectedFailure.
 */
export class ActorNotAuthorizedError extends Error {
  constructor() {
    super('You are not allowed to do this.');
  }
}

/**
 * Authorization decided where the change commits: called inside the change's transaction, so a demotion,
 * disable or logout that committed after the request's first check (made from caches, at the start of the
 * request) still stops it. Transactions behave as if run one at a time (Database.transaction): whatever committed
 * before this transaction is visible here, and nothing can commit between this check and the change.
 * Expiry is not looked at again: the request's own authentication checked it moments ago, and what an
 * author can lose mid-request is the role, the account or a revocation.
 */
export async function assertActorMayAdminister(db: Database, tx: Transaction, actor: AdminActor): Promise<void> {
  if (actor.kind === 'operator') return;
  const author = await db.users.findIn(tx, actor.userId);
  if (!author || author.disabledAt || author.role !== 'ADMIN') throw new ActorNotAuthorizedError();
  if (actor.sessionId !== null) {
    const session = await db.sessions.findIn(tx, actor.sessionId);
    if (!session || session.userId !== actor.userId || session.revokedAt) throw new ActorNotAuthorizedError();
  }
  if (actor.apiTokenId !== null) {
    const token = await db.apiTokens.findIn(tx, actor.apiTokenId);
    if (!token || token.userId !== actor.userId || token.revokedAt || !scopesOf(token).includes('admin')) throw new ActorNotAuthorizedError();
  }
}
