import { DriverAdapterError } from '@prisma/driver-adapter-utils';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * How long a statement waits for another process's write lock before it fails.
 *
 * SQLite's own busy timeout sleeps inside the statement, and better-sqlite3 runs statements on the event
 * loop: while the admin CLI or a second server held the lock, every request of this process stalled
 * (health checks included). So connections run with busy_timeout 0 and the wait happens here, between
 * attempts, with the loop free.
 */
export const DEFAULT_BUSY_WAIT_MS = 5000;

// Short first: the locks other processes take are usually held for a millisecond or two.
const BACKOFF_MS = [1, 2, 5, 10, 20, 50, 100];

/** SQLITE_BUSY and its extended codes, from better-sqlite3 directly or through Prisma's adapter. */
export function isBusy(error: unknown): boolean {
  if (error instanceof DatabaseBusyError) return false; // already waited
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) return true;
  const cause = (error as { cause?: { originalCode?: unknown } } | null)?.cause;
  return typeof cause?.originalCode === 'string' && cause.originalCode.startsWith('SQLITE_BUSY');
}

/** What a statement fails with when the lock stayed taken for the whole wait: retryable, says why. */
export class DatabaseBusyError extends DriverAdapterError {
  constructor(waitedMs: number) {
    const message = `The database is locked by another process (waited ${(waitedMs / 1000).toFixed(1)} s); nothing was changed, try again.`;
    super({ kind: 'sqlite', extendedCode: 5, message, originalCode: 'SQLITE_BUSY', originalMessage: message });
  }
}

/** The DatabaseBusyError behind an error Prisma raised, if that is what it is. */
export function databaseBusyIn(error: unknown): DatabaseBusyError | undefined {
  if (error instanceof DatabaseBusyError) return error;
  const behind = (error as { meta?: { driverAdapterError?: unknown } } | null)?.meta?.driverAdapterError;
  return behind instanceof DatabaseBusyError ? behind : undefined;
}

/**
 * Runs `attempt` until it does not fail with SQLITE_BUSY, for at most `maxWaitMs` (monotonic clock).
 * Only for work that changed nothing when refused: a statement outside a transaction, or BEGIN.
 */
export async function retryWhileBusy<T>(attempt: () => Promise<T>, maxWaitMs: number = DEFAULT_BUSY_WAIT_MS): Promise<T> {
  const start = performance.now();
  for (let tries = 0; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (!isBusy(error)) throw error;
      const waited = performance.now() - start;
      if (waited >= maxWaitMs) throw new DatabaseBusyError(waited);
      await sleep(Math.min(BACKOFF_MS[Math.min(tries, BACKOFF_MS.length - 1)]!, maxWaitMs - waited));
    }
  }
}
