import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createTestApp } from './support/app.js';
import { freshDatabaseUrl, onPostgres } from './support/db.js';
import { rawDb } from './support/raw-db.js';

const app = await createTestApp();

describe('GET /health', () => {
  it('answers 200 while the database answers, to GET and to HEAD (load-balancer probes)', async () => {
    expect((await app.yoga.fetch('http://gatehouse.test/health')).status).toBe(200);
    expect((await app.yoga.fetch('http://gatehouse.test/health', { method: 'HEAD' })).status).toBe(200);
  });

  it('answers 503, without details, when the database fails', async () => {
    // SQLite's probe asks with $queryRawUnsafe('SELECT 1'); PostgreSQL's (acceptsWrites) with $queryRaw.
    const query = vi
      .spyOn(rawDb(app.services), onPostgres ? '$queryRaw' : '$queryRawUnsafe')
      .mockRejectedValueOnce(new Error('SQLITE_IOERR: disk I/O error at /secret/path'));
    const response = await app.yoga.fetch('http://gatehouse.test/health');
    expect(query).toHaveBeenCalled();
    expect(response.status).toBe(503);
    expect(await response.text()).not.toContain('secret');
    query.mockRestore();
  });
});

// /health must say when writes would fail, not only when SELECT 1 does. Each case gets its own app.
// SQLite only: these are the server's own files. On PostgreSQL the files are the database server's, and
// /health asks the server whether it takes writes (PostgresDatabase.acceptsWrites, tested below).
describe.skipIf(onPostgres)('GET /health when the database cannot be written', { timeout: 60_000 }, () => {
  const status = async (target: { yoga: { fetch: (url: string) => Promise<Response> | Response } }) =>
    (await target.yoga.fetch('http://gatehouse.test/health')).status;
  const databaseFile = (target: Awaited<ReturnType<typeof createTestApp>>) => target.services.config.databaseUrl.slice('file:'.length);

  it('answers 503 once the database file is deleted (SQLite would keep writing into the unlinked file)', async () => {
    const own = await createTestApp();
    expect(await status(own)).toBe(200);
    unlinkSync(databaseFile(own));
    expect(await status(own)).toBe(503);
  });

  it('answers 503 once the database file is replaced, e.g. a backup copied back under a running server', async () => {
    const own = await createTestApp();
    const file = databaseFile(own);
    copyFileSync(file, `${file}.copy`);
    renameSync(`${file}.copy`, file);
    expect(await status(own)).toBe(503);
  });

  it('answers 503 once the -wal file is deleted (acknowledged writes would vanish at restart)', async () => {
    const own = await createTestApp();
    expect(await status(own)).toBe(200);
    unlinkSync(`${databaseFile(own)}-wal`);
    expect(await status(own)).toBe(503);
  });

  // chattr +i: even root cannot create, delete or rename entries in the folder. (Permission bits do not
  // stop root, which these tests run as; the check is access(W_OK), which also covers them for other users.)
  it.skipIf(!canChattr())('answers 503 while the data folder cannot be written to, and 200 again after', async () => {
    // A folder of its own: the usual fresh database sits beside the run's template, which every other test
    // file copies from at the same time, and an immutable folder would refuse those copies.
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-health-immutable-'));
    const file = path.join(dir, 'gatehouse.db');
    copyFileSync((await freshDatabaseUrl()).slice('file:'.length), file);
    const own = await createTestApp({ DATABASE_URL: `file:${file}` });
    expect(path.dirname(databaseFile(own))).toBe(dir);
    execFileSync('chattr', ['+i', dir]);
    try {
      expect(await status(own)).toBe(503);
    } finally {
      execFileSync('chattr', ['-i', dir]);
    }
    expect(await status(own)).toBe(200);
  });

  describe.skipIf(!canMount())('on a small file system of its own', () => {
    const mountPoint = mkdtempSync(path.join(tmpdir(), 'gatehouse-health-mnt-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mountPoint]);
    // Lazy: the app's connection, closed in another afterAll, may still hold the mount.
    afterAll(() => void execFileSync('umount', ['-l', mountPoint]));
    const appOnMount = async (name: string) => {
      const file = path.join(mountPoint, name, 'gatehouse.db');
      mkdirSync(path.dirname(file));
      copyFileSync((await freshDatabaseUrl()).slice('file:'.length), file);
      return createTestApp({ DATABASE_URL: `file:${file}` });
    };

    it('answers 503 when the disk is (nearly) full, and 200 once space is freed', async () => {
      const own = await appOnMount('full');
      expect(await status(own)).toBe(200);
      const filler = path.join(mountPoint, 'filler');
      const free = statfsSync(mountPoint);
      writeFileSync(filler, Buffer.alloc(Math.max(0, free.bavail * free.bsize - 1024 * 1024)));
      expect(await status(own)).toBe(503);
      unlinkSync(filler);
      expect(await status(own)).toBe(200);
    });

    it('answers 503 when the file system is read-only', async () => {
      const own = await appOnMount('readonly');
      expect(await status(own)).toBe(200);
      // A read-only bind mount over the folder (remounting the whole file system read-only is refused while
      // the database is open for writing): paths under it are read-only, as after a remount.
      const dir = path.dirname(databaseFile(own));
      execFileSync('mount', ['--bind', '-o', 'ro', dir, dir]);
      try {
        expect(await status(own)).toBe(503);
      } finally {
        execFileSync('umount', [dir]);
      }
      expect(await status(own)).toBe(200);
    });
  });
});

function canChattr(): boolean {
  const probe = mkdtempSync(path.join(tmpdir(), 'gatehouse-chattr-'));
  try {
    execFileSync('chattr', ['+i', probe], { stdio: 'ignore' });
    execFileSync('chattr', ['-i', probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function canMount(): boolean {
  const probe = mkdtempSync(path.join(tmpdir(), 'gatehouse-mount-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.runIf(onPostgres)('GET /health on PostgreSQL', () => {
  it('answers 503 when the server would refuse writes (a read-only standby or default), 200 again after', async () => {
    const client = rawDb(app.services);
    const probe = vi.spyOn(client, '$queryRaw').mockResolvedValueOnce([{ writable: false }] as never);
    expect((await app.yoga.fetch('http://gatehouse.test/health')).status).toBe(503);
    expect(probe).toHaveBeenCalledTimes(1);
    probe.mockRestore();
    expect((await app.yoga.fetch('http://gatehouse.test/health')).status).toBe(200);
  });
});
