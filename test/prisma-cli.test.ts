import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The Prisma CLI can only reach databases through our schema-engine stand-in (prisma/engine), which speaks
// a version-specific protocol: these tests run the real CLI as a user would, so an upgrade that breaks
// the stand-in fails here.

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const prismaCli = path.join(repoRoot, 'node_modules', 'prisma', 'build', 'index.js');
const standIn = path.join(repoRoot, 'prisma', 'engine', 'schema-engine.mjs');

interface CliResult {
  code: number | null;
  output: string;
}

// One CLI run starts Node, the CLI and the wasm engine: a few seconds on an idle machine, many times that
// on a loaded two-core one (other test files run beside this one). The limits only catch a hung run.
const CLI_TIMEOUT_MS = 180_000;
// The longest test runs the CLI five times, one after the other.
const TEST_TIMEOUT_MS = 5 * CLI_TIMEOUT_MS + 60_000;

function prisma(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [prismaCli, ...args],
      { cwd: repoRoot, env: { ...process.env, CHECKPOINT_DISABLE: '1', ...env }, timeout: CLI_TIMEOUT_MS, encoding: 'utf8' },
      (error, stdout, stderr) =>
        resolve({
          code: error ? (typeof error.code === 'number' ? error.code : null) : 0,
          // Said in the output, which the failing assertion shows: a killed run looks like a crash otherwise.
          output: stdout + stderr + (error?.killed ? `\n[prisma ${args.join(' ')}: killed after ${CLI_TIMEOUT_MS / 1000} s]` : ''),
        }),
    );
  });
}

const migrationNames = async (dir: string) =>
  (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();

function inspect(file: string) {
  const db = new Database(file, { readonly: true });
  try {
    return {
      applied: db
        .prepare('SELECT migration_name AS name FROM _prisma_migrations WHERE finished_at IS NOT NULL ORDER BY migration_name')
        .all()
        .map((row) => (row as { name: string }).name),
      sessionColumns: db
        .prepare(`SELECT name FROM pragma_table_info('Session')`)
        .all()
        .map((row) => (row as { name: string }).name),
    };
  } finally {
    db.close();
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-prisma-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('Prisma CLI through the wasm schema-engine stand-in', { timeout: TEST_TIMEOUT_MS }, () => {
  it('migrate deploy migrates a new database, and migrate status then finds it up to date', async () => {
    const file = path.join(dir, 'deploy.db');
    // Without the variable, prisma.config.ts must point the CLI at the stand-in by itself.
    const env = { DATABASE_URL: `file:${file}`, PRISMA_SCHEMA_ENGINE_BINARY: undefined };
    const migrations = await migrationNames(path.join(repoRoot, 'prisma', 'migrations'));
    expect(migrations.length).toBeGreaterThan(0);

    const deploy = await prisma(['migrate', 'deploy'], env);
    expect(deploy.output).toContain('All migrations have been successfully applied.');
    expect(deploy.code).toBe(0);
    expect(inspect(file).applied).toEqual(migrations);

    const status = await prisma(['migrate', 'status'], env);
    expect(status.output).toContain('Database schema is up to date!');
    expect(status.code).toBe(0);
  });

  it('turns a schema change on a copy of prisma/ into a migration (diff, migrate dev --create-only) that deploys', async () => {
    // A scratch project: the real prisma/ folder must not change.
    const project = path.join(dir, 'project');
    await cp(path.join(repoRoot, 'prisma', 'migrations'), path.join(project, 'prisma', 'migrations'), { recursive: true });
    const schema = await readFile(path.join(repoRoot, 'prisma', 'schema.prisma'), 'utf8');
    const changed = schema.replace(/^model Session \{\n/m, '$&  deviceName     String?\n');
    expect(changed).not.toBe(schema);
    await writeFile(path.join(project, 'prisma', 'schema.prisma'), changed);
    // A config without imports: `prisma/config` would not resolve from a temp folder.
    const config = path.join(project, 'prisma.config.ts');
    await writeFile(
      config,
      `export default { schema: 'prisma/schema.prisma', migrations: { path: 'prisma/migrations' }, datasource: { url: process.env.DATABASE_URL } };\n`,
    );
    const env = { PRISMA_SCHEMA_ENGINE_BINARY: standIn, DATABASE_URL: `file:${path.join(dir, 'dev.db')}` };
    const realMigrations = await migrationNames(path.join(repoRoot, 'prisma', 'migrations'));

    // Replays the migrations on a shadow database and prints the SQL through the engine's `print` call.
    const diff = await prisma(
      [
        'migrate',
        'diff',
        '--from-migrations',
        path.join(project, 'prisma', 'migrations'),
        '--to-schema',
        path.join(project, 'prisma', 'schema.prisma'),
        '--script',
        '--config',
        config,
      ],
      env,
    );
    expect(diff.output).toContain('ALTER TABLE "Session" ADD COLUMN "deviceName" TEXT;');
    expect(diff.code).toBe(0);

    const create = await prisma(['migrate', 'dev', '--create-only', '--name', 'add_device_name', '--config', config], env);
    expect(create.output).toContain('Prisma Migrate created the following migration without applying it');
    expect(create.code).toBe(0);
    const created = (await migrationNames(path.join(project, 'prisma', 'migrations'))).filter((name) => !realMigrations.includes(name));
    expect(created).toEqual([expect.stringMatching(/^\d{14}_add_device_name$/)]);
    const sql = await readFile(path.join(project, 'prisma', 'migrations', created[0]!, 'migration.sql'), 'utf8');
    expect(sql).toContain('ALTER TABLE "Session" ADD COLUMN "deviceName" TEXT;');

    const deployed = path.join(dir, 'deployed.db');
    const deploy = await prisma(['migrate', 'deploy', '--config', config], { ...env, DATABASE_URL: `file:${deployed}` });
    expect(deploy.code, deploy.output).toBe(0);
    expect(inspect(deployed)).toMatchObject({ applied: [...realMigrations, created[0]], sessionColumns: expect.arrayContaining(['deviceName']) });

    const status = await prisma(['migrate', 'status', '--config', config], { ...env, DATABASE_URL: `file:${deployed}` });
    expect(status.output).toContain('Database schema is up to date!');
    expect(status.code).toBe(0);
    expect(await migrationNames(path.join(repoRoot, 'prisma', 'migrations'))).toEqual(realMigrations);
  });

  it('reports the stand-in as its schema engine', async () => {
    const version = await prisma(['--version'], { PRISMA_SCHEMA_ENGINE_BINARY: undefined });
    expect(version.code).toBe(0);
    expect(version.output).toMatch(/Schema Engine\s*: schema-engine-cli [0-9a-f]{40} \(@prisma\/schema-engine-wasm stand-in\)/);
  });
});
