import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { applyMigrations } from '../src/db/migrate.js';
import { LOGIN } from './support/app.js';
import { rawDb } from './support/raw-db.js';

// The admin CLI as an operator runs it: a child process on the server's data directory, the password on stdin.

const root = path.resolve(import.meta.dirname, '..');

function admin(dataDir: string, args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/admin.ts', ...args],
      { cwd: root, env: { PATH: process.env.PATH, DATA_DIR: dataDir, ARGON2_MEMORY_KIB: '1024', ARGON2_TIME_COST: '1' }, encoding: 'utf8' },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(stdin);
  });
}

async function appOn(dataDir: string) {
  return createApp(loadConfig({ DATA_DIR: dataDir, ARGON2_MEMORY_KIB: '1024', ARGON2_TIME_COST: '1', NODE_ENV: 'test' }));
}

/**
 * A data directory with the administrator `root` in it, made in process: for tests whose subject is
 * another command (create-admin itself is tested through the CLI above them). One CLI run less each,
 * and each run costs seconds on a loaded machine.
 */
async function withRoot(): Promise<{ dataDir: string; app: Awaited<ReturnType<typeof appOn>> }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-cli-'));
  // As the CLI and the server do on a fresh data directory: createApp expects a migrated database.
  await applyMigrations(loadConfig({ DATA_DIR: dataDir }).databaseUrl);
  const app = await appOn(dataDir);
  await app.services.accounts.createUser({ username: 'root', password: 'long enough password' }, 'ADMIN');
  return { dataDir, app };
}

async function login(app: Awaited<ReturnType<typeof appOn>>, username: string, password: string) {
  const response = await app.yoga.fetch('http://test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: LOGIN, variables: { input: { username, password } } }),
  });
  return ((await response.json()) as { data: { login: Record<string, unknown> } }).data.login;
}

// A CLI run starts Node, compiles through tsx and opens the database: a second or two on an idle machine,
// ten times that on a loaded two-core one. The limit only catches a hung run; the longest test makes six.
describe('npm run admin', { timeout: 300_000 }, () => {
  it('creates an administrator on a fresh data directory, the password read from stdin and never echoed', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-cli-'));
    const result = await admin(dataDir, ['create-admin', 'root', '--email', 'root@example.com'], 'a long admin password\n');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/Administrator root created/);
    expect(result.stdout + result.stderr).not.toContain('a long admin password');

    const app = await appOn(dataDir);
    try {
      const session = await login(app, 'root', 'a long admin password');
      expect(session.__typename).toBe('AuthPayload');
      expect((session.user as { role: string }).role).toBe('ADMIN');
    } finally {
      await app.close();
    }
  });

  it('refuses a weak password, a taken name and bad usage with clear messages and non-zero exits', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-cli-'));
    const weak = await admin(dataDir, ['create-admin', 'root'], 'short\n');
    expect(weak.code).toBe(1);
    expect(weak.stderr).toMatch(/password: must be at least 8 characters/);

    expect((await admin(dataDir, ['create-admin', 'root'], 'long enough password')).code).toBe(0);
    // Independent of each other: run side by side, they finish sooner on a busy machine.
    const [taken, unknownCommand, unknownUser, badRole] = await Promise.all([
      admin(dataDir, ['create-admin', 'ROOT'], 'long enough password'),
      admin(dataDir, ['make-me-admin']),
      admin(dataDir, ['disable', 'nobody']),
      admin(dataDir, ['set-role', 'root', 'GOD']),
    ]);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/already taken/);
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toMatch(/Unknown command "make-me-admin"[\s\S]*Usage/);
    expect(unknownUser.code).toBe(1);
    expect(unknownUser.stderr).toMatch(/No such user/);
    expect(badRole.code).toBe(2);
  });

  it('sets roles, disables and enables users, and guards the last administrator', async () => {
    const { dataDir, app } = await withRoot();
    try {
      await app.services.accounts.createUser({ username: 'bob', password: 'bobs password' });
      const lastAdmin = await admin(dataDir, ['set-role', 'root', 'USER']);
      expect(lastAdmin.code).toBe(1);
      expect(lastAdmin.stderr).toMatch(/last active administrator/);

      expect((await admin(dataDir, ['set-role', 'bob', 'admin'])).stdout).toMatch(/bob is now ADMIN/);
      expect((await admin(dataDir, ['set-role', 'root', 'USER'])).code).toBe(0);

      expect((await admin(dataDir, ['disable', 'root'])).code).toBe(0);
      expect((await login(app, 'root', 'long enough password')).__typename).toBe('AccountDisabledError');
      expect((await admin(dataDir, ['enable', 'root'])).code).toBe(0);
      expect((await login(app, 'root', 'long enough password')).__typename).toBe('AuthPayload');
    } finally {
      await app.close();
    }
  });

  it('rotates the signing key: a running server signs with the new kid, old tokens still verify', async () => {
    const { dataDir, app: running } = await withRoot();
    try {
      const oldToken = (await login(running, 'root', 'long enough password')).accessToken as string;
      const oldKid = running.services.accessTokens.signingKeyId;

      const rotated = await admin(dataDir, ['rotate-keys']);
      expect(rotated.code).toBe(0);
      const keysFile = path.join(dataDir, 'keys.json');
      expect(statSync(keysFile).mode & 0o777).toBe(0o600);
      const keys = JSON.parse(readFileSync(keysFile, 'utf8')).signingKeys as { kid: string; retiredAt?: string }[];
      expect(keys.map((key) => key.kid)).toEqual([expect.any(String), oldKid]);
      expect(keys[0]!.retiredAt).toBeUndefined();
      expect(keys[1]!.retiredAt).toBeDefined();
      expect(rotated.stdout).toContain(keys[0]!.kid);

      await expect.poll(() => running.services.accessTokens.signingKeyId, { timeout: 30_000 }).toBe(keys[0]!.kid);
      const newToken = (await login(running, 'root', 'long enough password')).accessToken as string;
      const kidOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid;
      expect(kidOf(oldToken)).toBe(oldKid);
      expect(kidOf(newToken)).toBe(keys[0]!.kid);
      const jwks = (await (await running.yoga.fetch('http://test/.well-known/jwks.json')).json()) as { keys: { kid: string }[] };
      expect(jwks.keys.map((key) => key.kid).sort()).toEqual([keys[0]!.kid, oldKid].sort());
      await expect(running.services.accessTokens.verify(oldToken)).resolves.toMatchObject({ sessionId: expect.any(String) });
    } finally {
      await running.close();
    }
  });

  it('purges ended sessions', async () => {
    const { dataDir, app } = await withRoot();
    try {
      await login(app, 'root', 'long enough password');
      const live = await login(app, 'root', 'long enough password');
      const sessions = await rawDb(app.services).session.findMany();
      await app.services.sessions.revoke(sessions[0]!.id, 'test');
      const purged = await admin(dataDir, ['purge']);
      expect(purged.stdout).toMatch(/Deleted 1 ended session/);
      expect(await rawDb(app.services).session.count()).toBe(1);
      expect(live.__typename).toBe('AuthPayload');
    } finally {
      await app.close();
    }
  });
});
