import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { LOGIN, REGISTER } from '../support/app.js';
import { httpGql } from '../security/support.js';
import { CHEAP_SERVER_ENV, startServer } from '../support/server-process.js';

// Admin changes while the server is busy writing: from the admin CLI (another process on the same file)
// and from a second server on the same file. Their transactions read, then write; begun as readers they
// failed whenever the busy server committed in between ("Operation has timed out", "Unexpected error.").

const root = path.resolve(import.meta.dirname, '../..');
const PASSWORD = 'a long enough password';

function admin(dataDir: string, args: string[], stdin = ''): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/admin.ts', ...args],
      { cwd: root, env: { PATH: process.env.PATH, DATA_DIR: dataDir, ...CHEAP_SERVER_ENV }, encoding: 'utf8', timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
    );
    child.stdin!.end(stdin);
  });
}

async function register(base: string, username: string) {
  const answer = await httpGql(base, REGISTER, { input: { username, password: PASSWORD } });
  return answer.data?.register as { __typename: string; user: { id: string } };
}

/** Registrations at about 50 per second until stopped; counts what succeeded. */
function registrationLoad(base: string, prefix: string) {
  let running = true;
  let succeeded = 0;
  let failed = 0;
  const inFlight = new Set<Promise<void>>();
  const loop = (async () => {
    for (let i = 0; running && i < 5000; i++) {
      if (inFlight.size < 25) {
        const request = register(base, `${prefix}${i}`)
          .then((result) => void (result?.__typename === 'AuthPayload' ? succeeded++ : failed++))
          .catch(() => void failed++)
          .finally(() => inFlight.delete(request));
        inFlight.add(request);
      }
      await sleep(20);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await Promise.all(inFlight);
      return { succeeded, failed };
    },
  };
}

describe('admin changes while the server takes registrations', { timeout: 240_000 }, () => {
  it('the admin CLI sets roles and disables users', async () => {
    const server = await startServer();
    for (const name of ['cli_target1', 'cli_target2', 'cli_target3']) expect((await register(server.base, name)).__typename).toBe('AuthPayload');

    const load = registrationLoad(server.base, 'cliload');
    await sleep(1000);
    const results = [];
    try {
      results.push(await admin(server.dataDir, ['set-role', 'cli_target1', 'ADMIN']));
      results.push(await admin(server.dataDir, ['disable', 'cli_target2']));
      results.push(await admin(server.dataDir, ['set-role', 'cli_target3', 'ADMIN']));
    } finally {
      const { succeeded, failed } = await load.stop();
      expect(succeeded).toBeGreaterThan(50);
      expect(failed).toBe(0);
    }
    expect(
      results.map((r) => r.code),
      results.map((r) => r.output).join('\n'),
    ).toEqual([0, 0, 0]);
    expect(results[0]!.output).toMatch(/cli_target1 is now ADMIN/);
    expect(results[1]!.output).toMatch(/cli_target2 is disabled/);
    expect(results[2]!.output).toMatch(/cli_target3 is now ADMIN/);
  });

  it('a second server on the same file disables users while the first takes registrations', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-two-servers-'));
    const created = await admin(dataDir, ['create-admin', 'root'], 'admin password that is long\n');
    expect(created.code, created.output).toBe(0);
    const busy = await startServer({}, dataDir);
    const adminServer = await startServer({}, dataDir);
    const login = await httpGql(adminServer.base, LOGIN, { input: { username: 'root', password: 'admin password that is long' } });
    const auth = { authorization: `Bearer ${login.data.login.accessToken as string}` };
    const targets = [];
    for (let i = 0; i < 6; i++) targets.push((await register(busy.base, `two_target${i}`)).user.id);

    const load = registrationLoad(busy.base, 'twoload');
    await sleep(1000);
    const answers = [];
    try {
      for (const id of targets) {
        answers.push(await httpGql(adminServer.base, 'mutation ($id: ID!) { disableUser(id: $id) { __typename } }', { id }, auth));
        await sleep(100);
      }
    } finally {
      const { failed } = await load.stop();
      expect(failed).toBe(0);
    }
    expect(answers.map((a) => a.errors?.[0]?.message ?? a.data?.disableUser?.__typename)).toEqual(targets.map(() => 'User'));
  });

  it('the admin CLI says the database is locked, exits 75 and changes nothing when the lock is held throughout', async () => {
    const server = await startServer();
    expect((await register(server.base, 'cli_locked')).__typename).toBe('AuthPayload');
    const other = new Database(server.dbPath);
    other.exec('BEGIN IMMEDIATE');
    let result: Awaited<ReturnType<typeof admin>>;
    try {
      result = await admin(server.dataDir, ['disable', 'cli_locked']);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    expect(result.code, result.output).toBe(75);
    expect(result.output).toMatch(/^The database is locked by another process \(waited \d+\.\d s\); nothing was changed, try again\.$/m);
    expect(result.output).not.toMatch(/invocation|prisma/i);
    const reader = new Database(server.dbPath, { readonly: true });
    expect(reader.prepare("SELECT disabledAt FROM User WHERE username = 'cli_locked'").get()).toEqual({ disabledAt: null });
    reader.close();
  });
});
