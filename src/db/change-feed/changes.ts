/**
 * What one process tells the others when it changed something their caches may mirror. Only ids travel:
 * a receiver drops what it mirrors of them and reads the database again on next use.
 *
 * - `user`: the account's row changed (profile, role, password, disabled, deleted, credentials version);
 *   receivers drop the row.
 * - `userAccess`: every session or every API token of the user ended (logout everywhere, a password
 *   change, a disable); receivers drop what they mirror of the user's sessions and tokens. Kept apart from
 *   `user` because it costs receivers a walk over their mirrors, which a profile edit must not trigger.
 * - `session`: one session ended.
 * - `apiToken`: one API token was revoked; the id is the hash of its secret (what the database stores),
 *   under which every process mirrors it.
 *
 * A refresh rotation is not announced: a stale generation in another process's memory cannot make a
 * rotation succeed (the compare-and-set in the database decides) and does not keep an ended session alive.
 */
export type Change = { readonly kind: 'user' | 'userAccess' | 'session' | 'apiToken'; readonly id: string };

/** On the wire: the announcing process's id (so it can skip its own) and the change. */
export interface ChangeMessage {
  readonly origin: string;
  readonly change: Change;
}

const KINDS = new Set(['user', 'userAccess', 'session', 'apiToken']);
// Ids are UUIDs; the bound keeps a hostile or garbled message from costing anything.
const MAX_ID_LENGTH = 64;

export function encodeChange(message: ChangeMessage): string {
  return JSON.stringify({ o: message.origin, k: message.change.kind, i: message.change.id });
}

/** The message, or null when the text is not one (then the receiver drops everything: the safe side). */
export function decodeChange(text: string): ChangeMessage | null {
  if (text.length > 512) return null;
  try {
    const value = JSON.parse(text) as { o?: unknown; k?: unknown; i?: unknown };
    if (typeof value.o !== 'string' || typeof value.k !== 'string' || typeof value.i !== 'string') return null;
    if (!KINDS.has(value.k) || value.i.length === 0 || value.i.length > MAX_ID_LENGTH) return null;
    return { origin: value.o, change: { kind: value.k as Change['kind'], id: value.i } };
  } catch {
    return null;
  }
}
