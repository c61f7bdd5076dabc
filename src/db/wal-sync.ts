import type { BigIntStats } from 'node:fs';
import { open, stat } from 'node:fs/promises';

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

/** Resolves if the connection's files are still the ones at their paths; rejects with the reason if not. */
export type FilesInPlace = () => Promise<void>;

/** A file the connection writes, as it was when the connection opened it. */
interface OpenedFile {
  path: string;
  what: string;
  dev: bigint;
  ino: bigint;
}

/**
 * Durable commits without an fsync on the event loop.
 *
 * With `PRAGMA synchronous = FULL`, SQLite fsyncs the WAL inside every commit, and better-sqlite3 holds the
 * event loop for as long as the disk takes (README, Performance). In WAL mode FULL differs from NORMAL only by that fsync, so the
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
 *
 * A durable write is only worth acknowledging if it is in the file at the database's path. After the
 * database file (or its -wal) is deleted or replaced under a running server, SQLite keeps writing into
 * the file it has open, fsyncs succeed, and everything written since vanishes at the next start. So each
 * fsync batch also checks that the files at those paths are still the ones the connection opened; if
 * not, the barrier fails as after a failed fsync (see #flushNow).
 */
export class WalSync implements DurabilityBarrier {
  #written = 0;
  #synced = 0;
  #inFlight: Promise<void> | null = null;
  #failure: Error | null = null;

  constructor(
    private readonly file: SyncedFile,
    private readonly filesInPlace: FilesInPlace = async () => {},
  ) {}

  /**
   * A barrier over the WAL of a connection open on `databaseFile` (as SQLite resolved it), opened now: a
   * connection that cannot sync must not start. SQLite keeps both files (same inodes) for as long as the
   * connection is open.
   */
  static async open(databaseFile: string): Promise<WalSync> {
    const walFile = `${databaseFile}-wal`;
    const wal = await open(walFile, 'r+');
    try {
      const walIdentity = await wal.stat({ bigint: true });
      // The database file is only stat()ed, never opened here: closing any descriptor of a file drops all
      // of this process's POSIX locks on it, SQLite's included (its shared lock on the database is what
      // stops another process's last close from deleting the WAL). SQLite's own descriptor keeps the
      // inode allocated while the connection is open, so no other file can take its number meanwhile.
      const databaseIdentity = await stat(databaseFile, { bigint: true });
      const opened: OpenedFile[] = [
        { path: databaseFile, what: 'database file', dev: databaseIdentity.dev, ino: databaseIdentity.ino },
        { path: walFile, what: 'write-ahead log', dev: walIdentity.dev, ino: walIdentity.ino },
      ];
      return new WalSync(wal, () => stillInPlace(opened));
    } catch (error) {
      await wal.close();
      throw error;
    }
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
    // The identity check runs beside the fsync (both on libuv's pool), so it adds no wait of its own; it
    // runs per batch, not per statement. Checked after the commits it covers, so a deletion it misses
    // happened after them: they were in the file, and only the operator's deletion removed them.
    const [synced, inPlace] = await Promise.allSettled([this.file.datasync(), this.filesInPlace()]);
    if (inPlace.status === 'rejected') {
      // Writes since the deletion went into a file nobody will open again: acknowledging them, or any
      // later one, would lose them. Same state as a failed fsync, with the reason an operator can act on.
      this.#failure = inPlace.reason instanceof Error ? inPlace.reason : new Error(String(inPlace.reason));
    } else if (synced.status === 'rejected') {
      // After a failed fsync the kernel may have dropped the dirty pages, and a retry can then succeed
      // with the data lost (PostgreSQL's "fsyncgate"). Nothing is acknowledged any more: restart needed.
      this.#failure = new Error('fsync of the SQLite WAL failed; the database refuses further work', { cause: synced.reason });
    } else {
      this.#synced = Math.max(this.#synced, upTo);
    }
    this.#inFlight = null;
  }
}

/**
 * Rejects if a file is no longer at its path (deleted, or its folder renamed) or another file took its
 * place (a backup copied back, a restore renamed over it). One stat per file: while SQLite holds a file
 * open its inode cannot be reused, so the same device and inode number at the path means the same file.
 * A stat that fails otherwise (EACCES on a folder, say) proves nothing either way and does not fail.
 */
async function stillInPlace(files: readonly OpenedFile[]): Promise<void> {
  await Promise.all(
    files.map(async ({ path, what, dev, ino }) => {
      let current: BigIntStats;
      try {
        current = await stat(path, { bigint: true });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') throw replaced(what, path);
        return;
      }
      if (current.dev !== dev || current.ino !== ino) throw replaced(what, path);
    }),
  );
}

function replaced(what: string, path: string): Error {
  return new Error(
    `the ${what} ${path} was deleted or replaced while the server ran; refusing writes — restore it from a backup, ` +
      'or restart to carry on with the files now at that path (writes since it went are lost either way)',
  );
}
