import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestApp, LOGIN, ME, REFRESH, registerUser } from '../support/app.js';
import { runServerToExit } from '../support/server-process.js';

// Operator traps: settings and situations that used to start a server that then failed every request,
// or failed only after writing to DATA_DIR.

describe('PORT in use', { timeout: 120_000 }, () => {
  let occupant: Server;
  afterAll(() => new Promise<void>((resolve) => occupant.close(() => resolve())));

  it('is detected before anything is written: non-zero exit, a clear message, no database, no key file', async () => {
    occupant = createServer();
    await new Promise<void>((resolve) => occupant.listen(0, '127.0.0.1', resolve));
    const port = (occupant.address() as { port: number }).port;
    const parent = mkdtempSync(path.join(tmpdir(), 'gatehouse-port-'));
    const dataDir = path.join(parent, 'data');

    const { code, output } = await runServerToExit({ env: { PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir } });
    expect(code).not.toBe(0);
    // Not even the folder: nothing was created.
    expect(existsSync(dataDir), readdirSync(parent).join(',')).toBe(false);
    expect(output).toContain(`Cannot listen on 127.0.0.1:${port}: the port is already in use`);
    expect(output).not.toMatch(/listening on/);
  });
});

describe('the lowest limits config accepts', () => {
  it('still let register, login, refresh and me through', async () => {
    const app = await createTestApp({
      MAX_REQUEST_BODY_BYTES: '1024',
      GRAPHQL_MAX_DEPTH: '4',
      GRAPHQL_MAX_TOKENS: '200',
      GRAPHQL_MAX_COST: '200',
      GRAPHQL_MAX_ALIASES: '1',
      GRAPHQL_MAX_DIRECTIVES: '1',
    });
    const user = await registerUser(app);
    const login = await app.gql(LOGIN, { input: { username: user.username, password: user.password } });
    expect(login.data?.login.__typename, JSON.stringify(login)).toBe('AuthPayload');
    const refreshed = await app.gql(REFRESH, { token: login.data.login.refreshToken });
    expect(refreshed.data?.refresh.__typename, JSON.stringify(refreshed)).toBe('AuthPayload');
    const me = await app.gql(ME, {}, { authorization: `Bearer ${refreshed.data.refresh.accessToken}` });
    expect(me.data?.me.username, JSON.stringify(me)).toBe(user.username);
  });
});
