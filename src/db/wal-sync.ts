import { open } from 'node:fs/promises';

/** What the adapter tells the barrier, and waits on, around every statement (serialized-adapter.ts). */
export interface DurabilityBarrier {
  /** A statement that may have committed a write just finished (called before any other statement runs). */
  written(): void;
  /** Resolves once every write committed so far is on disk; undefined when there is nothing to wait for. */
  durable(): Promise<void> | undefined;
  /** Throws if durability was lost for good, before a statement runs: no new work after that. */
  refuseIfFailed(): void;
  /** Releases what the barrier holds, once the connection is closed. */
  close(): Promise<void>;
}

/** The file whose contents the barrier makes durable. */
export interface SyncedFile {
  datasync(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Durable commits without an fsync on the event loop.
 *
 * With `PRAGMA synchronous = FULL`, SQLite fsyncs the WAL inside every commit: 0.5–1 ms here during which
 * better-sqlite3 holds the event loop. In WAL mode FULL differs from NORMAL only by that fsync, so the
 * connection runs NORMAL and this barrier makes the fsync instead, on libuv's thread pool, before any
 * result leaves the database layer:
 *
 * - after a write, its caller waits for an fsync of the WAL that started after the commit;
 * - a read that could have seen a write that is not yet durable waits too, so nothing this process
 *   answers can depend on a write that a power cut could still undo;
 * - commits that land while an fsync runs share the next one (group commit).
 *
 * That is FULL's promise: an acknowledged write survives a power cut. Where it differs from FULL:
 * another process reading the file may see a commit up to one fsync before it is durable (and this one
 * may read another process's so early, then waits only for its own fsyncs); and if an fsync fails, the
 * commit it covered stays in the file although its caller got an error.
 */
export class WalSync implements DurabilityBarrier {
  #written = 0;
  #synced = 0;
  #inFlight: Promise<void> | null = null;
  #failure: Error | null = null;

  constructor(private readonly file: SyncedFile) {}

  /**
   * A barrier over a connection's WAL file, opened now: a connection that cannot sync must not start.
   * SQLite keeps that file (same inode) for as long as the connection is open.
   */
  static async open(walFile: string): Promise<WalSync> {
    return new WalSync(await open(walFile, 'r+'));
  }

  written(): void {
    this.#written++;
  }

  durable(): Promise<void> | undefined {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#synced >= this.#written) return undefined;
    return this.#waitFor(this.#written);
  }

  refuseIfFailed(): void {
    if (this.#failure) throw this.#failure;
  }

  close(): Promise<void> {
    return this.file.close();
  }

  async #waitFor(target: number): Promise<void> {
    while (this.#synced < target) {
      this.#inFlight ??= this.#flushNow();
      await this.#inFlight;
      if (this.#failure) throw this.#failure;
    }
  }

  async #flushNow(): Promise<void> {
    // Covers every write committed before the fsync starts; later ones wait for the next.
    const upTo = this.#written;
    try {
      await this.file.datasync();
      this.#synced = Math.max(this.#synced, upTo);
    } catch (error) {
      // After a failed fsync the kernel may have dropped the dirty pages, and a retry can then succeed
      // with the data lost (PostgreSQL's "fsyncgate"). Nothing is acknowledged any more: restart needed.
      this.#failure = new Error('fsync of the SQLite WAL failed; the database refuses further work', { cause: error });
    } finally {
      this.#inFlight = null;
    }
  }
}
