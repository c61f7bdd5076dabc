import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnServer } from '../support/server-process.js';

// DATA_DIR 0700 and every database file 0600 whatever the umask: the server and the admin CLI are started
// under umask 000, where anything created with default modes would be readable and writable by everyone.

const root = path.resolve(import.meta.dirname, '../..');

const CHEAP = { NODE_ENV: 'test', ARGON2_MEMORY_KIB: '1024', ARGON2_TIME_COST: '1', LOG_LEVEL: 'warn' };
// `sh -c 'umask 000; exec …'`: the umask is per process and inherited.
const UNDER_UMASK_000 = ['-c', 'umask 000 && exec "$0" "$@"', process.execPath, '--import', 'tsx'];

const startServer = (dataDir: string) => spawnServer({ env: { LOG_LEVEL: 'warn', DATA_DIR: dataDir }, umask: '000' });

function admin(dataDir: string, args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      '/bin/sh',
      [...UNDER_UMASK_000, 'src/cli/admin.ts', ...args],
      { cwd: root, env: { PATH: process.env.PATH, ...CHEAP, DATA_DIR: dataDir }, encoding: 'utf8' },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(stdin);
  });
}

const modeOf = (file: string) => (statSync(file).mode & 0o777).toString(8);

function expectPrivate(dataDir: string) {
  expect(modeOf(dataDir), dataDir).toBe('700');
  const db = path.join(dataDir, 'gatehouse.db');
  for (const file of [db, `${db}-wal`, `${db}-shm`, `${db}-journal`, path.join(dataDir, 'keys.json')]) {
    if (file === db || existsSync(file)) expect(modeOf(file), file).toBe('600');
  }
}

describe('file modes under umask 000', { timeout: 120_000 }, () => {
  it('the server creates DATA_DIR (and missing parents) 0700 and the database, -wal, -shm 0600', async () => {
    const parent = mkdtempSync(path.join(tmpdir(), 'gatehouse-modes-'));
    const dataDir = path.join(parent, 'nested', 'data');
    const server = startServer(dataDir);
    const base = await server.listening;
    expect((await fetch(`${base}/health`)).status).toBe(200);
    expectPrivate(dataDir);
    expect(modeOf(path.join(parent, 'nested'))).toBe('700');
    for (const suffix of ['-wal', '-shm']) expect(existsSync(path.join(dataDir, `gatehouse.db${suffix}`))).toBe(true);
    expect(server.output()).not.toContain('startup_warning');
    await server.stop();
  });

  it('the admin CLI on a fresh DATA_DIR does the same', async () => {
    const dataDir = path.join(mkdtempSync(path.join(tmpdir(), 'gatehouse-modes-')), 'data');
    const result = await admin(dataDir, ['create-admin', 'root'], 'a long admin password\n');
    expect(result.code, result.stderr).toBe(0);
    expectPrivate(dataDir);
  });

  it('an existing folder open to group and other is left as it is, with a warning naming it', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-modes-'));
    chmodSync(dataDir, 0o755);
    const server = startServer(dataDir);
    await server.listening;
    expect(server.output()).toContain(`Data folder ${dataDir} has mode 755`);
    expect(modeOf(dataDir)).toBe('755');
    // The database file it created itself is private all the same.
    expect(modeOf(path.join(dataDir, 'gatehouse.db'))).toBe('600');
    await server.stop();

    const cli = await admin(dataDir, ['purge']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stderr).toContain(`Data folder ${dataDir} has mode 755`);
  });
});
