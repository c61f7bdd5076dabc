import { closeSync, fchmodSync, type BigIntStats, chmodSync, lstatSync, mkdirSync, openSync, statSync } from 'node:fs';
import { access, constants, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { sqlitePath } from './client.js';
import { isPostgresUrl } from './migrate.js';

// The files on disk that hold Gatehouse's data: created private whatever the umask, and watched by /health.

const PRIVATE_DIRECTORY = 0o700;
const PRIVATE_FILE = 0o600;
// SQLite's companion files: write-ahead log, shared-memory index, rollback journal (migrations).
const COMPANIONS = ['-wal', '-shm', '-journal'] as const;

/**
 * Creates the database's folder (0700) and an empty database file (0600) before the migration CLI or
 * SQLite opens it. SQLite gives -wal, -shm and -journal the database file's own mode, so they are private
 * too. Modes are set with chmod after creation, so a permissive umask cannot widen them.
 *
 * What already exists is not changed (an operator may have chosen its owner and mode, e.g. for a backup
 * agent's group): each folder or file that group or other can access is returned as a warning instead.
 *
 * Throws, creating nothing, when the database file is missing but its -wal, -shm or -journal file is
 * there: a database was deleted (or moved without them).
 */
export function prepareDataFiles(databaseUrl: string, keysFile: string): string[] {
  // PostgreSQL keeps its files on its server: only the key file's folder is ours.
  if (isPostgresUrl(databaseUrl)) return createPrivateDirectory(path.dirname(path.resolve(keysFile)));
  const databaseFile = path.resolve(sqlitePath(databaseUrl));
  refuseLeftoversOfDeletedDatabase(databaseFile);
  const warnings = [
    ...createPrivateDirectory(path.dirname(databaseFile)),
    // The key file's folder too: keys.ts creates the file itself, 0600.
    ...createPrivateDirectory(path.dirname(path.resolve(keysFile))),
  ];
  try {
    const fd = openSync(databaseFile, 'wx', PRIVATE_FILE);
    try {
      fchmodSync(fd, PRIVATE_FILE);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    for (const file of [databaseFile, ...COMPANIONS.map((suffix) => databaseFile + suffix)]) {
      const problem = openToOthers(file, 'Database file');
      if (problem) warnings.push(problem);
    }
  }
  return [...new Set(warnings)];
}

/**
 * A new empty database must not be created over the companion files of one that was deleted: the
 * acknowledged writes in its -wal would be gone without a word, and SQLite could even replay that WAL's
 * pages into the new file (nothing in a WAL says which database it belongs to), leaving a corrupt one.
 */
function refuseLeftoversOfDeletedDatabase(databaseFile: string): void {
  // lstat: a symbolic link, even a dangling one, is the operator's choice of file, not a deletion.
  if (lstatExists(databaseFile)) return;
  const leftovers = COMPANIONS.map((suffix) => databaseFile + suffix).filter(lstatExists);
  if (leftovers.length === 0) return;
  throw new Error(
    `The database file ${databaseFile} is missing, but ${leftovers.join(' and ')} ${leftovers.length === 1 ? 'is' : 'are'} ` +
      'still there: a database was deleted or moved without them, and its last writes may be in them. Refusing to ' +
      'create a new database over them. Restore the database file from a backup (with these files, if they belong to ' +
      'it), or move these files away to start with an empty database.',
  );
}

function lstatExists(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

function createPrivateDirectory(dir: string): string[] {
  // recursive mkdir returns the first folder it created, or undefined when `dir` existed.
  const firstCreated = mkdirSync(dir, { recursive: true, mode: PRIVATE_DIRECTORY });
  if (firstCreated === undefined) {
    const problem = openToOthers(dir, 'Data folder');
    return problem ? [problem] : [];
  }
  for (let created = dir; ; created = path.dirname(created)) {
    chmodSync(created, PRIVATE_DIRECTORY);
    if (created === firstCreated || created === path.dirname(created)) break;
  }
  return [];
}

function openToOthers(file: string, what: string): string | undefined {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    return undefined;
  }
  if ((mode & 0o077) === 0) return undefined;
  const wanted = what === 'Data folder' ? '700' : '600';
  return `${what} ${file} has mode ${mode.toString(8).padStart(3, '0')}: group or other users can access it. Gatehouse creates it ${wanted}; run chmod ${wanted} on it unless that access is intended.`;
}

// Below this much free space the next WAL checkpoint (up to SQLite's default 1000 pages of 4 KiB copied
// into the database file) may not fit: writes are about to fail, so the server reports itself unhealthy.
const MIN_FREE_BYTES = 4 * 1024 * 1024;

/**
 * A readiness check that the database can still take writes, not only answer `SELECT 1`. It writes
 * nothing: /health is public and frequent, and a committed write per probe would put an fsync in the
 * writers' queue on every request. Nor would a write tell the truth: SQLite keeps writing happily into a
 * database file that was deleted or replaced (the data then vanishes at restart), and a WAL that recycles
 * its space succeeds on a full disk. So it checks what those writes depend on:
 * - the database file and its -wal/-shm are still the files the server opened (same device and inode);
 * - the folder and the files are writable for this process (a read-only mount, an immutable file);
 * - the file system has room for a checkpoint.
 * Concurrent probes share one run, so a flood of /health requests costs one set of system calls.
 */
export function databaseWriteProbe(db: { isReachable(): Promise<boolean>; acceptsWrites?(): Promise<boolean> }, databaseUrl: string): () => Promise<boolean> {
  // PostgreSQL: the files are the server's business. The probe asks the server whether this connection
  // could write (reachable, not a read-only standby, not a read-only default), in one read, writing
  // nothing (PostgresDatabase.acceptsWrites). A full disk on the server shows only when a write fails.
  if (isPostgresUrl(databaseUrl)) return shared(() => (db.acceptsWrites ? db.acceptsWrites() : db.isReachable()));
  const databaseFile = path.resolve(sqlitePath(databaseUrl));
  const files = [databaseFile, `${databaseFile}-wal`, `${databaseFile}-shm`];
  // Identities as opened; -wal and -shm are taken when first seen (SQLite keeps them while connected).
  const opened = new Map<string, BigIntStats>();
  for (const file of files) {
    try {
      opened.set(file, statSync(file, { bigint: true }));
    } catch {
      // Not there yet.
    }
  }
  const probe = async (): Promise<boolean> => {
    if (!opened.has(databaseFile)) return false;
    if (!(await db.isReachable())) return false;
    for (const file of files) {
      let current: BigIntStats;
      try {
        current = await stat(file, { bigint: true });
      } catch {
        if (opened.has(file)) return false;
        continue;
      }
      const original = opened.get(file);
      if (original === undefined) opened.set(file, current);
      else if (original.ino !== current.ino || original.dev !== current.dev) return false;
      await access(file, constants.W_OK);
    }
    await access(path.dirname(databaseFile), constants.W_OK);
    const space = await statfs(path.dirname(databaseFile));
    // root may write into the blocks reserved for it; anyone else may not.
    const freeBlocks = process.getuid?.() === 0 ? space.bfree : space.bavail;
    return freeBlocks * space.bsize >= MIN_FREE_BYTES;
  };

  return shared(probe);
}

/** Concurrent calls share one run of `probe`; a throw counts as unhealthy. */
function shared(probe: () => Promise<boolean>): () => Promise<boolean> {
  let running: Promise<boolean> | undefined;
  return () =>
    (running ??= probe()
      .catch(() => false)
      .finally(() => {
        running = undefined;
      }));
}
