import { execFile, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadOrCreateKeyFile, readKeyFile, rotateSigningKeys } from '../../src/auth/keys.js';
import { loadConfig, type Environment } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { createServices } from '../../src/services.js';
import { freshDatabaseUrl } from '../support/db.js';
import { REGISTER, uniqueName } from '../support/app.js';
import { httpGql } from '../security/support.js';
import { startServer } from '../support/server-process.js';

// The key file (signing keys and the refresh-token key) as an operator meets it: lost, created by two
// servers at once, rotated by someone else, left readable.

const root = path.resolve(import.meta.dirname, '../..');
const jwt = { issuer: 'gatehouse', audience: 'gatehouse', secret: undefined, accessTokenTtlSeconds: 900 };
const isRoot = process.getuid?.() === 0;
// The operator in the owner test runs the CLI as uid 65534, which needs to read this checkout: a clone in
// a private folder (mktemp -d makes it 0700) cannot be run by that user, and the test cannot say anything.
const nobodyCanRunTheCli =
  isRoot &&
  spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(path.join(root, 'node_modules', 'tsx', 'package.json'))})`], {
    uid: 65534,
    gid: 65534,
  }).status === 0;
const CHEAP: Environment = { NODE_ENV: 'test', ARGON2_MEMORY_KIB: '1024', ARGON2_TIME_COST: '1', LOG_LEVEL: 'silent' };

const freshDir = (prefix = 'gatehouse-keyfile-') => mkdtempSync(path.join(tmpdir(), prefix));

describe('a missing key file', { timeout: 120_000 }, () => {
  it('refuses to start the real server on a database that has users, saying what to do, and creates no key', async () => {
    const dataDir = freshDir();
    const first = await startServer({}, dataDir);
    const registered = await httpGql(first.base, REGISTER, { input: { username: uniqueName(), password: 'a long enough password' } });
    expect(registered.data.register.__typename).toBe('AuthPayload');
    await first.stop();

    rmSync(first.keysFile); // a lost volume, a wrong KEYS_FILE, a restore that forgot the file
    await expect(startServer({}, dataDir)).rejects.toThrow(
      /key file .*keys\.json is missing.*1 user\(s\).*Restore the key file from your backup.*ALLOW_NEW_KEYS=true/s,
    );
    expect(existsSync(first.keysFile)).toBe(false);
  });

  it('is created on an empty database, and on a used one only with ALLOW_NEW_KEYS=true', async () => {
    const dataDir = freshDir();
    const environment = { ...CHEAP, DATA_DIR: dataDir, DATABASE_URL: await freshDatabaseUrl() };
    const empty = await createServices(loadConfig(environment));
    expect(empty.keysCreated).toBe(true);
    await empty.services.accounts.createUser({ username: uniqueName(), password: 'a long enough password' }, 'USER');
    await empty.services.db.close();

    const keysFile = path.join(dataDir, 'keys.json');
    rmSync(keysFile);
    await expect(createServices(loadConfig(environment))).rejects.toThrow(/is missing, but the database already has 1 user\(s\)/);
    expect(existsSync(keysFile)).toBe(false);

    const forced = await createServices(loadConfig({ ...environment, ALLOW_NEW_KEYS: 'true' }));
    expect(forced.keysCreated).toBe(true);
    await forced.services.db.close();
    expect(existsSync(keysFile)).toBe(true);
  });
});

describe('creating the key file', { timeout: 120_000 }, () => {
  it('gives parallel starts in one process the same keys, created exactly once', async () => {
    for (let round = 0; round < 10; round += 1) {
      const file = path.join(freshDir(), 'keys.json');
      const results = await Promise.all(Array.from({ length: 6 }, () => loadOrCreateKeyFile(file, new Date())));
      expect(results.filter((result) => result.created)).toHaveLength(1);
      expect(new Set(results.map((result) => result.keys.refreshTokenSecret)).size).toBe(1);
      expect(await readKeyFile(file)).toEqual(results[0]!.keys);
      expect(readdirSync(path.dirname(file))).toEqual(['keys.json']); // no temporary file left behind
    }
  });

  it('gives servers starting at once in separate processes the same keys, and a reader never a partly written file', async () => {
    const dir = freshDir();
    const script = path.join(dir, 'create-keys.mts');
    // Each child loads the code, says so, then creates the key file named on each line of its stdin: the
    // parent names the same file to all of them at once, as servers started together would.
    writeFileSync(
      script,
      `import { createInterface } from 'node:readline';
import { loadOrCreateKeyFile } from ${JSON.stringify(pathToFileURL(path.join(root, 'src/auth/keys.ts')).href)};
process.stdout.write('ready\\n');
for await (const file of createInterface({ input: process.stdin })) {
  try {
    const { keys, created } = await loadOrCreateKeyFile(file, new Date());
    process.stdout.write(JSON.stringify({ created, secret: keys.refreshTokenSecret, kid: keys.signingKeys[0].kid }) + '\\n');
  } catch (error) {
    process.stdout.write(JSON.stringify({ error: error.message }) + '\\n');
  }
}
`,
    );
    const children = Array.from({ length: 3 }, () => {
      const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] });
      const lines: string[] = [];
      let pending = '';
      child.stdout.on('data', (chunk) => {
        pending += chunk;
        const parts = pending.split('\n');
        pending = parts.pop()!;
        lines.push(...parts);
      });
      return { child, lines };
    });
    try {
      await expect.poll(() => children.every(({ lines }) => lines[0] === 'ready'), { timeout: 60_000, interval: 50 }).toBe(true);
      const partialReads: string[] = [];
      for (let round = 1; round <= 15; round += 1) {
        const file = path.join(dir, `keys-${round}.json`);
        for (const { child } of children) child.stdin.write(`${file}\n`);
        // Read as fast as possible (synchronously, so nothing of ours runs in between) until the file is
        // whole: absent is fine, anything but complete JSON is a reader seeing a half-written file.
        const deadline = performance.now() + 30_000;
        while (performance.now() < deadline) {
          let text: string;
          try {
            text = readFileSync(file, 'utf8');
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
            throw error;
          }
          try {
            if (JSON.parse(text).refreshTokenSecret) break;
          } catch {
            partialReads.push(`round ${round}: ${text.length} bytes`);
          }
        }
        await expect.poll(() => children.every(({ lines }) => lines.length > round), { timeout: 30_000, interval: 20 }).toBe(true);
        const answers = children.map(({ lines }) => JSON.parse(lines[round]!) as { created?: boolean; secret?: string; kid?: string; error?: string });
        expect(answers.filter((answer) => answer.error)).toEqual([]);
        expect(answers.filter((answer) => answer.created)).toHaveLength(1);
        expect(new Set(answers.map((answer) => `${answer.secret}/${answer.kid}`)).size).toBe(1);
        expect((await readKeyFile(file)).refreshTokenSecret).toBe(answers[0]!.secret);
      }
      expect(partialReads).toEqual([]);
    } finally {
      for (const { child } of children) child.kill();
    }
  });
});

describe('rotate-keys and the file owner', { timeout: 120_000 }, () => {
  async function keyFileWith(mode: number, owner?: { uid: number; gid: number }) {
    const file = path.join(freshDir(), 'keys.json');
    await loadOrCreateKeyFile(file, new Date());
    chmodSync(file, mode);
    if (owner) chownSync(file, owner.uid, owner.gid);
    return file;
  }

  it('keeps the mode of the key file', async () => {
    const file = await keyFileWith(0o640);
    await rotateSigningKeys(file, jwt, new Date());
    expect(statSync(file).mode & 0o7777).toBe(0o640);
  });

  it.skipIf(!isRoot)('keeps the owner and group when run as root on a file that belongs to the server user', async () => {
    const file = await keyFileWith(0o600, { uid: 1000, gid: 1000 });
    const { kid } = await rotateSigningKeys(file, jwt, new Date());
    const after = statSync(file);
    expect({ uid: after.uid, gid: after.gid, mode: after.mode & 0o7777 }).toEqual({ uid: 1000, gid: 1000, mode: 0o600 });
    expect((await readKeyFile(file)).signingKeys[0]!.kid).toBe(kid);
  });

  it.skipIf(!nobodyCanRunTheCli)('fails loudly, changing nothing, when run by a user who cannot give the new file the server user as owner', async () => {
    // The server runs as uid 1000; an operator (uid/gid 65534) in the key file's group may read it and
    // write the directory. A file it wrote would belong to it, mode 0600: unreadable for the server.
    const base = freshDir();
    chmodSync(base, 0o755);
    const dir = path.join(base, 'keys');
    mkdirSync(dir);
    chownSync(dir, 1000, 65534);
    chmodSync(dir, 0o770);
    const file = path.join(dir, 'keys.json');
    await loadOrCreateKeyFile(file, new Date());
    chownSync(file, 1000, 65534);
    chmodSync(file, 0o640);
    const before = readFileSync(file, 'utf8');

    const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', 'src/cli/admin.ts', 'rotate-keys'],
        { cwd: root, uid: 65534, gid: 65534, env: { PATH: process.env.PATH, KEYS_FILE: file, DATA_DIR: dir }, encoding: 'utf8' },
        (error, _stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stderr }),
      );
    });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(
      /Cannot give the new key file the owner of .*uid 1000, gid 65534.*Run rotate-keys as the user the server runs as.*not changed/s,
    );
    const after = statSync(file);
    expect({ uid: after.uid, gid: after.gid, mode: after.mode & 0o7777 }).toEqual({ uid: 1000, gid: 65534, mode: 0o640 });
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(readdirSync(dir)).toEqual(['keys.json']);
  });

  it('refuses to rotate when there is no key file instead of creating new keys', async () => {
    const file = path.join(freshDir(), 'keys.json');
    await expect(rotateSigningKeys(file, jwt, new Date())).rejects.toThrow(/no key file at .*nothing to rotate/);
    expect(existsSync(file)).toBe(false);
  });
});

describe('the running server and its key file', { timeout: 120_000 }, () => {
  it('logs a key file it cannot read or parse as an error and keeps signing with the keys it has', async () => {
    const lines: string[] = [];
    const dataDir = freshDir();
    const app = await createApp(loadConfig({ ...CHEAP, DATA_DIR: dataDir, DATABASE_URL: await freshDatabaseUrl() }), {
      logger: createLogger('info', { write: (line: string) => void lines.push(line) }),
    });
    try {
      const kid = app.services.accessTokens.signingKeyId;
      const keysFile = app.services.config.keysFile;
      const good = readFileSync(keysFile, 'utf8');
      // fs.watchFile compares against a first stat that it takes asynchronously: a change made before that
      // stat ran would be its baseline, not a change. Give it a few poll intervals on a loaded machine.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      writeFileSync(keysFile, good.slice(0, good.length / 2)); // copied over in place, caught half way
      await expect.poll(() => lines.some((line) => line.includes('could not reload the key file')), { timeout: 15_000 }).toBe(true);
      expect(app.services.accessTokens.signingKeyId).toBe(kid);
      expect(lines.join('\n')).not.toContain(JSON.parse(good).refreshTokenSecret);

      writeFileSync(keysFile, good);
      const { kid: rotated } = await rotateSigningKeys(keysFile, jwt, new Date());
      await expect.poll(() => app.services.accessTokens.signingKeyId, { timeout: 15_000 }).toBe(rotated);
    } finally {
      await app.close();
    }
  });
});

describe('the key file mode', { timeout: 120_000 }, () => {
  async function keyFileReadableByOthers() {
    const dataDir = freshDir();
    const file = path.join(dataDir, 'keys.json');
    await loadOrCreateKeyFile(file, new Date());
    chmodSync(file, 0o644);
    return { dataDir, file };
  }

  it('is a warning at start outside production when group or others can read it', async () => {
    const { dataDir, file } = await keyFileReadableByOthers();
    const lines: string[] = [];
    const app = await createApp(loadConfig({ ...CHEAP, DATA_DIR: dataDir, DATABASE_URL: await freshDatabaseUrl() }), {
      logger: createLogger('warn', { write: (line: string) => void lines.push(line) }),
    });
    await app.close();
    const warning = lines.map((line) => JSON.parse(line) as { level: number; msg: string }).find((line) => line.msg.includes('mode 0644'));
    expect(warning).toMatchObject({ level: 40 });
    expect(warning!.msg).toContain(`chmod 600 ${file}`);
  });

  it('refuses to start in production when group or others can read it', async () => {
    const { dataDir } = await keyFileReadableByOthers();
    const production = loadConfig({ NODE_ENV: 'production', EMAIL_ENABLED: 'false', DATA_DIR: dataDir, DATABASE_URL: await freshDatabaseUrl() });
    await expect(createServices(production)).rejects.toThrow(/can be accessed by its group or by others \(mode 0644\).*chmod 600.*NODE_ENV=production/s);
  });

  it('starts in production when only the owner can read it', async () => {
    const { dataDir, file } = await keyFileReadableByOthers();
    chmodSync(file, 0o600);
    const { services, warnings } = await createServices(
      loadConfig({ NODE_ENV: 'production', EMAIL_ENABLED: 'false', DATA_DIR: dataDir, DATABASE_URL: await freshDatabaseUrl() }),
    );
    await services.db.close();
    expect(warnings).toEqual([]);
  });
});
