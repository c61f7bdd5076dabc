import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';

// The real thing: `npm start`'s entry point as a child process on a fresh data directory, over HTTP.

const root = path.resolve(import.meta.dirname, '..');
const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});

function startServer(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH, NODE_ENV: 'test', ARGON2_MEMORY_KIB: '1024', ARGON2_TIME_COST: '1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const listening = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', () => {
      const match = /listening on (http:\/\/\S+)/.exec(stdout);
      if (match) resolve(match[1]!);
    });
    void exited.then((code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
  });
  // A server expected to fail never listens; only a test that awaits `listening` should see that.
  listening.catch(() => undefined);
  return { child, listening, exited, output: () => stdout + stderr };
}

async function post(base: string, query: string, variables: object = {}, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
}

describe('npm start', { timeout: 120_000 }, () => {
  it('migrates, creates keys, serves GraphiQL and the register → login → me flow over HTTP', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-server-'));
    const server = startServer({ DATA_DIR: dataDir });
    const base = await server.listening;

    const page = await fetch(`${base}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Gatehouse');
    expect(html).toContain('mutation Register');

    const tokens = 'accessToken refreshToken';
    const registered = await post(
      base,
      `mutation { register(input: { username: "alice", password: "correct horse battery" }) { ... on AuthPayload { ${tokens} } } }`,
    );
    expect(registered.data.register.accessToken).toBeTruthy();
    const loggedIn = await post(
      base,
      `mutation { login(input: { username: "ALICE", password: "correct horse battery" }) { ... on AuthPayload { ${tokens} } } }`,
      {},
      { 'user-agent': 'curl/8' },
    );
    const me = await post(base, '{ me { username } }', {}, { authorization: `Bearer ${loggedIn.data.login.accessToken}` });
    expect(me).toEqual({ data: { me: { username: 'alice' } } });

    const sessions = await post(base, '{ mySessions { ip userAgent current } }', {}, { authorization: `Bearer ${loggedIn.data.login.accessToken}` });
    expect(sessions.data.mySessions).toContainEqual({ ip: '127.0.0.1', userAgent: 'curl/8', current: true });

    expect((await fetch(`${base}/health`)).status).toBe(200);

    const keysFile = path.join(dataDir, 'keys.json');
    expect(statSync(keysFile).mode & 0o777).toBe(0o600);
    const privateKey = JSON.parse(readFileSync(keysFile, 'utf8')).signingKeys[0].privateJwk.d;
    expect(server.output()).not.toContain(privateKey);
    expect(server.output()).toContain(path.join(dataDir, 'gatehouse.db'));

    const db = new Database(path.join(dataDir, 'gatehouse.db'), { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();

    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);

    // A second start on the same data keeps the keys, so tokens issued before stay valid.
    const again = startServer({ DATA_DIR: dataDir });
    const base2 = await again.listening;
    const meAgain = await post(base2, '{ me { username } }', {}, { authorization: `Bearer ${loggedIn.data.login.accessToken}` });
    expect(meAgain).toEqual({ data: { me: { username: 'alice' } } });
    expect(again.output()).not.toContain('created now');
  });

  it('exits non-zero with a readable list of every configuration problem', async () => {
    const server = startServer({ PORT: 'eighty', JWT_SECRET: 'too short', SESSION_IDLE_TIMEOUT_DAYS: '-1' });
    expect(await server.exited).toBe(1);
    const output = server.output();
    expect(output).toContain('Invalid configuration');
    for (const name of ['PORT', 'JWT_SECRET', 'SESSION_IDLE_TIMEOUT_DAYS']) expect(output).toContain(name);
    expect(output).not.toContain('too short');
  });
});
