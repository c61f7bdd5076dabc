import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { applyMigrations, pendingMigrations } from '../src/db/migrate.js';
import { freshDatabaseUrl } from './support/db.js';

describe('migrations at start-up', () => {
  it('knows every migration is pending on a new database and none on a migrated one', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-migrate-'));
    const fresh = `file:${path.join(dir, 'new.db')}`;
    expect(pendingMigrations(fresh)).toEqual(expect.arrayContaining(['20261124034447_init']));
    expect(pendingMigrations(await freshDatabaseUrl())).toEqual([]);
  });

  it('starts on an up-to-date database that another process is writing to (a second server)', async () => {
    const url = await freshDatabaseUrl();
    const writer = new Database(url.slice('file:'.length));
    writer.pragma('journal_mode = WAL');
    writer.exec('BEGIN IMMEDIATE');
    try {
      await expect(applyMigrations(url)).resolves.toBeUndefined();
    } finally {
      writer.exec('ROLLBACK');
      writer.close();
    }
  });
});
