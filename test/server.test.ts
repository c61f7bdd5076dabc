import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { spawnServer } from './support/server-process.js';

// The real thing: `npm start`'s entry point as a child process on a fresh data directory, over HTTP.

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
    const server = spawnServer({ env: { DATA_DIR: dataDir } });
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

    expect(await server.stop()).toEqual({ code: 0, signal: null });

    // A second start on the same data keeps the keys, so tokens issued before stay valid.
    const again = spawnServer({ env: { DATA_DIR: dataDir } });
    const base2 = await again.listening;
    const meAgain = await post(base2, '{ me { username } }', {}, { authorization: `Bearer ${loggedIn.data.login.accessToken}` });
    expect(meAgain).toEqual({ data: { me: { username: 'alice' } } });
    expect(again.output()).not.toContain('created now');
  });

  it('advertises GraphiQL in its banner only when it serves it, and says where mail goes', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-server-'));
    const on = spawnServer({ env: { DATA_DIR: dataDir } });
    await on.listening;
    // The banner's lines follow the first one (what `listening` waits for).
    await expect.poll(() => on.output()).toContain('Mail:');
    expect(on.output()).toMatch(/GraphiQL: +http:\/\/localhost:\d+\/graphql/);
    expect(on.output()).toContain(`Mail:      development outbox: ${path.join(dataDir, 'mail')}`);
    expect(await on.stop()).toEqual({ code: 0, signal: null });

    const off = spawnServer({ env: { DATA_DIR: dataDir, GRAPHIQL: 'false', EMAIL_ENABLED: 'false' } });
    const base = await off.listening;
    await expect.poll(() => off.output()).toContain('Mail:');
    expect(off.output()).not.toContain('GraphiQL:');
    expect(off.output()).toMatch(/GraphQL: +http:\/\/localhost:\d+\/graphql \(POST; GraphiQL off\)/);
    expect(off.output()).toContain('Mail:      off (EMAIL_ENABLED=false)');
    // And it means it: no page for a browser.
    expect((await fetch(`${base}/graphql`, { headers: { accept: 'text/html' } })).headers.get('content-type') ?? '').not.toContain('text/html');
    expect(await off.stop()).toEqual({ code: 0, signal: null });
  });

  it('exits non-zero with a readable list of every configuration problem', async () => {
    const server = spawnServer({ env: { PORT: 'eighty', JWT_SECRET: 'too short', SESSION_IDLE_TIMEOUT_DAYS: '-1' } });
    expect((await server.exited).code).toBe(1);
    const output = server.output();
    expect(output).toContain('Invalid configuration');
    for (const name of ['PORT', 'JWT_SECRET', 'SESSION_IDLE_TIMEOUT_DAYS']) expect(output).toContain(name);
    expect(output).not.toContain('too short');
  });
});
