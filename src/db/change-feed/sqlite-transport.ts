import type { ChangeTransport, TransportListener } from './feed.js';

/** How often a process looks for commits made by other processes on the same SQLite file. */
export const SQLITE_POLL_MS = 250;

/** Reads PRAGMA data_version on the process's own connection. */
export type DataVersionReader = () => Promise<number>;

/**
 * Changes between processes on one SQLite file (several servers, or a server and the admin CLI).
 * `PRAGMA data_version` moves whenever another connection commits, and costs no I/O; polled every
 * SQLITE_POLL_MS. It cannot say what changed, so any commit by another process drops every cache of
 * this one: exact and cheap for the usual single server with an occasional CLI run, while two servers
 * sharing one file mostly read the database (their caches keep being dropped). Nothing is written to
 * announce a change: the commit itself is the announcement, so none can be lost.
 */
export class SqliteDataVersionTransport implements ChangeTransport {
  readonly name = 'sqlite';
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(private readonly readDataVersion: DataVersionReader) {}

  listen(listener: TransportListener): void {
    let last: number | undefined;
    const poll = async () => {
      try {
        const version = await this.readDataVersion();
        if (last !== undefined && version !== last) listener.unknownChange();
        last = version;
        listener.live(true);
      } catch (error) {
        // Not knowing whether someone committed means not trusting the caches until it is known again.
        last = undefined;
        listener.live(false, `cannot read data_version (${(error as Error).message})`);
      }
      if (!this.#closed) this.#timer = setTimeout(poll, SQLITE_POLL_MS).unref();
    };
    void poll();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}
