import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { httpGql } from './support.js';
import { startServer } from '../support/server-process.js';

// An acknowledged registration is a promise: the account exists. The real server is killed with SIGKILL
// (no shutdown, no flush) while registrations are in flight, then started again on the same data.

const REGISTER = 'mutation R($input: RegisterInput!) { register(input: $input) { __typename ... on AuthPayload { accessToken user { id username } } } }';
const LOGIN = 'mutation L($input: LoginInput!) { login(input: $input) { __typename ... on AuthPayload { accessToken user { id username } } } }';

describe('durability', { timeout: 120_000 }, () => {
  it('keeps every acknowledged registration across a SIGKILL mid-load, and each can log in', async () => {
    const server = await startServer();
    const acknowledged: { username: string; password: string; id: string; accessToken: string }[] = [];
    let attempted = 0;
    let settled = 0;
    let killed = false;
    const WORKERS = 8;
    const KILL_AFTER = 80;

    let inFlightAtKill = -1;
    const worker = async (w: number) => {
      while (!killed) {
        attempted += 1;
        const username = `dur${w}_${attempted}_${Math.random().toString(36).slice(2, 6)}`;
        const password = `password of ${username}`;
        try {
          const answer = await httpGql(server.base, REGISTER, { input: { username, password } });
          // Only a complete, successful answer counts as acknowledged.
          if (answer.data?.register?.__typename === 'AuthPayload') {
            acknowledged.push({ username, password, id: answer.data.register.user.id, accessToken: answer.data.register.accessToken });
          }
        } catch {
          // The connection died with the server: not acknowledged.
        } finally {
          settled += 1;
        }
        if (!killed && acknowledged.length >= KILL_AFTER) {
          killed = true;
          inFlightAtKill = attempted - settled;
          server.child.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    expect(await server.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // The kill did land mid-load: other registrations were still on the wire.
    expect(inFlightAtKill).toBeGreaterThan(0);
    const acknowledgedCount = acknowledged.length;

    const again = await startServer({}, server.dataDir);
    const db = new Database(again.dbPath, { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      const found = (db.prepare('SELECT count(*) AS n FROM "User"').get() as { n: number }).n;
      const ids = new Set((db.prepare('SELECT id FROM "User"').all() as { id: string }[]).map((row) => row.id));
      console.log(
        `durability: ${attempted} registrations attempted, ${acknowledgedCount} acknowledged, ${inFlightAtKill} in flight at the SIGKILL; ${found} users found after the restart`,
      );
      for (const { id } of acknowledged) expect(ids.has(id)).toBe(true);
      expect(found).toBeGreaterThanOrEqual(acknowledgedCount);
      expect(found).toBeLessThanOrEqual(attempted);
    } finally {
      db.close();
    }

    for (const { username, password, id, accessToken } of acknowledged) {
      const login = await httpGql(again.base, LOGIN, { input: { username, password } });
      expect(login.data?.login).toMatchObject({ __typename: 'AuthPayload', user: { id, username } });
      // The session and the keys survived too: the token issued before the kill still works.
      const me = await httpGql(again.base, '{ me { id } }', {}, { authorization: `Bearer ${accessToken}` });
      expect(me.data).toEqual({ me: { id } });
    }
    await again.stop();
  });
});
