import { copyFileSync, existsSync, mkdtempSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { prepareDataFiles } from '../../src/db/data-files.js';
import { capturingLogger } from '../support/logs.js';
import { startServer } from '../support/server-process.js';
import { bearer, createTestApp, REGISTER, registerUser, uniqueName, type TestApp } from '../support/app.js';

// A database file deleted or replaced under a running server: SQLite keeps writing into the file it has
// open, fsyncs succeed, and at the next start the writes are gone. Nothing may be acknowledged then.

const UPDATE_PROFILE = /* GraphQL */ `
  mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { __typename ... on User { id fullname } } }
`;

const databaseFile = (app: TestApp) => app.services.config.databaseUrl.slice('file:'.length);

const FILE_CHANGES: [string, (file: string) => void][] = [
  ['the database file is deleted', (file) => unlinkSync(file)],
  // A backup copied back under the running server: a different file at the same path.
  [
    'the database file is replaced',
    (file) => {
      copyFileSync(file, `${file}.copy`);
      renameSync(`${file}.copy`, file);
    },
  ],
  ['its -wal file is deleted', (file) => unlinkSync(`${file}-wal`)],
];

describe('writes after the database file went away under a running server', { timeout: 60_000 }, () => {
  it.each(FILE_CHANGES)('are refused, never acknowledged, once %s', async (_, change) => {
    const { logger, lines: logged } = capturingLogger();
    const app = await createTestApp({}, { logger });
    const { accessToken } = await registerUser(app);

    change(databaseFile(app));

    const registered = await app.gql(REGISTER, { input: { username: uniqueName(), password: 'a long enough password' } });
    expect(registered.errors?.length).toBeGreaterThan(0);
    expect(registered.data?.register?.__typename).not.toBe('AuthPayload');
    expect(JSON.stringify(registered)).not.toContain('accessToken');

    // Every later write is refused before it runs, not only the one that found out.
    const updated = await app.gql(UPDATE_PROFILE, { input: { fullname: 'Never Stored' } }, bearer(accessToken));
    expect(updated.data?.updateProfile?.__typename).not.toBe('User');
    expect(JSON.stringify(updated)).not.toContain('Never Stored');

    // The operator is told what happened, in the log (clients get the masked error).
    expect(logged.join('\n')).toMatch(/was deleted or replaced while the server ran; refusing writes/);
  });
});

describe('starting on the leftovers of a deleted database', { timeout: 60_000 }, () => {
  it.each(['-wal', '-shm', '-journal'])('refuses to create a new database when its %s file remains', (suffix) => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-leftover-'));
    const file = path.join(dataDir, 'gatehouse.db');
    writeFileSync(`${file}${suffix}`, 'left over', { mode: 0o600 });
    expect(() => prepareDataFiles(`file:${file}`, path.join(dataDir, 'keys.json'))).toThrow(
      /gatehouse\.db is missing, but .*gatehouse\.db-.* is still there.*Refusing to create a new database/,
    );
    expect(existsSync(file)).toBe(false);
  });

  it('creates the database as before when nothing of an old one is there', () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-leftover-'));
    const file = path.join(dataDir, 'gatehouse.db');
    expect(prepareDataFiles(`file:${file}`, path.join(dataDir, 'keys.json'))).toEqual([]);
    expect(existsSync(file)).toBe(true);
  });

  it('the real server refuses to start, and creates no database, when only the -wal file of one is left', async () => {
    const first = await startServer();
    // A crash leaves the -wal and -shm; then the database file is deleted.
    first.child.kill('SIGKILL');
    await first.exited;
    expect(existsSync(`${first.dbPath}-wal`)).toBe(true);
    unlinkSync(first.dbPath);

    const start = startServer({}, first.dataDir);
    await expect(start).rejects.toThrow(/server exited with 1: .*is missing, but .*gatehouse\.db-wal.* still there/s);
    expect(existsSync(first.dbPath)).toBe(false);
  });
});
