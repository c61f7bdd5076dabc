import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';

// `npm run bench` end to end, for one very short round on a small database. It checks that the script runs
// and reports every phase and ratio; it never asserts on a timing (the figures are whatever this machine gives).

const root = path.resolve(import.meta.dirname, '..');

async function runBench(extra: string[]): Promise<{ code: number | null; stdout: string; stderr: string; json: string }> {
  const json = path.join(mkdtempSync(path.join(tmpdir(), 'gatehouse-bench-test-')), 'results.json');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/run.ts',
      '--rounds',
      '1',
      '--duration',
      '1',
      '--warmup',
      '0',
      '--users',
      '60',
      '--sessions',
      '40',
      '--connections',
      '4',
      '--json',
      json,
      ...extra,
    ],
    { cwd: root, env: { ...process.env, NODE_ENV: undefined, BENCH_ENGINE: undefined }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stdout, stderr, json };
}

describe('npm run bench', () => {
  it('runs one short round, prints the table and writes every phase and ratio as JSON', async () => {
    const { code, stdout, stderr, json } = await runBench([]);
    expect(code, stderr).toBe(0);

    const phases = ['baseline', 'baselineNoBodyLimit', 'me', 'login', 'rawArgon2', 'refresh', 'mePacedIdle', 'mePacedStorm', 'loginStorm'];
    const targets = ['meOverBaseline', 'loginOverRawArgon2', 'refreshOverMe', 'stormP99OverIdleP99'];
    const ratios = [...targets, 'meOverBaselineNoBodyLimit'];
    for (const name of [...phases, ...ratios]) expect(stdout).toContain(`| ${name} `);
    expect(stdout).toMatch(/\| phase\s+\| conns \| req\/s \(median\) \| p50 ms \| p99 ms \| CPU\/req main ms \| CPU\/req other ms \| errors \| RSS MB \|/);

    const results = JSON.parse(readFileSync(json, 'utf8'));
    expect(Object.keys(results.phases).sort()).toEqual([...phases].sort());
    for (const name of phases) {
      const phase = results.phases[name];
      expect(phase.rounds).toHaveLength(1);
      expect(phase.errors).toBe(0);
      for (const field of ['rps', 'p50', 'p99']) expect(typeof phase.median[field]).toBe('number');
      expect(phase.median.rps).toBeGreaterThan(0);
    }
    expect(Object.keys(results.ratios).sort()).toEqual([...ratios].sort());
    for (const name of ratios) expect(typeof results.ratios[name].value).toBe('number');
    for (const name of targets) expect(typeof results.ratios[name].met).toBe('boolean');
    // Server CPU per request, split by thread, for every phase measured alone (/proc counts in 10 ms ticks,
    // so a one-second round may show 0).
    for (const name of ['baseline', 'me', 'login', 'rawArgon2', 'refresh']) {
      expect(results.phases[name].median.cpu.mainMs).toBeGreaterThanOrEqual(0);
      expect(results.phases[name].median.cpu.otherMs).toBeGreaterThanOrEqual(0);
    }
    expect(results.machine.cpus).toBeGreaterThan(0);
    expect(results.rss.perRoundMB.me).toHaveLength(1);
  }, 120_000);

  // The same on PostgreSQL, side by side with SQLite, for the phases the engine targets compare.
  it('runs one short round of me, refresh and login on both engines, side by side, and drops its PostgreSQL database', async () => {
    const { code, stdout, stderr, json } = await runBench(['--engine', 'both', '--phases', 'me,refresh,login']);
    expect(code, stderr).toBe(0);
    expect(stdout).toContain('| phase   | SQLite req/s | PostgreSQL req/s | PG/SQLite |');
    const targets = ['mePostgresOverSqlite', 'refreshPostgresOverSqlite', 'loginPostgresOverSqlite', 'loginMainThreadMsSqlite'];
    for (const name of targets) expect(stdout).toContain(`| ${name} `);
    expect(stdout).toMatch(/\| PostgreSQL \|\s+[\d.]+ \|\s+[\d.]+ \|\s+[\d.]+ \|/);

    const results = JSON.parse(readFileSync(json, 'utf8'));
    expect(results.settings.engines).toEqual(['sqlite', 'postgres']);
    for (const engine of ['sqlite', 'postgres']) {
      expect(Object.keys(results.engines[engine].phases).sort()).toEqual(['login', 'me', 'refresh']);
      for (const phase of ['me', 'refresh', 'login']) {
        const result = results.engines[engine].phases[phase];
        expect(result.errors).toBe(0);
        expect(result.median.rps).toBeGreaterThan(0);
        expect(result.median.cpu.mainMs).toBeGreaterThanOrEqual(0);
        expect(result.median.cpu.otherMs).toBeGreaterThanOrEqual(0);
        // PostgreSQL's backends' CPU, on PostgreSQL only.
        if (engine === 'postgres') expect(result.median.cpu.databaseMs).toBeGreaterThanOrEqual(0);
        else expect(result.median.cpu.databaseMs).toBeUndefined();
      }
      for (const figure of ['loginsPerCore', 'refreshesPerCore', 'mePerCore']) expect(results.sizingPerCore[engine][figure]).toBeGreaterThan(0);
    }
    for (const name of targets) {
      expect(typeof results.engineTargets[name].value).toBe('number');
      expect(typeof results.engineTargets[name].met).toBe('boolean');
    }

    // The run made its own database and dropped it.
    const name = /seeding \d+ users into postgresql:\/\/[^/]+\/(gatehouse_bench_[0-9a-f]+)/.exec(stderr)?.[1];
    expect(name, stderr).toBeDefined();
    const admin = new pg.Client({ connectionString: process.env.BENCH_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres' });
    await admin.connect();
    try {
      const { rows } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      expect(rows).toEqual([]);
    } finally {
      await admin.end();
    }
  }, 120_000);

  // Issue 15's phase: two servers on one PostgreSQL database and the shared Redis against one server, at a
  // low paced rate (the figures of a one-second round mean nothing; the shape of the report does).
  it('--instances 2 reports CPU per request of each server for me, refresh and login against a single one', async () => {
    const { code, stdout, stderr, json } = await runBench(['--instances', '2', '--instance-rate', '20', '--instance-login-rate', '2']);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(
      /\| phase\s+\| process\s+\| req\/s \| p99 ms \| CPU\/req main ms \| other ms \| total ms \| × single \| idle ms\/s \| less idle ms \| × single \| PG backends ms\/req \| errors \|/,
    );
    for (const name of ['meInstanceOverSingle', 'refreshInstanceOverSingle', 'loginInstanceOverSingle']) expect(stdout).toContain(`| ${name} `);

    const { instances } = JSON.parse(readFileSync(json, 'utf8'));
    expect(instances.settings.instances).toBe(2);
    expect(instances.errors).toBe(0);
    for (const kind of ['me', 'refresh', 'login']) {
      const phase = instances.phases[kind];
      expect(phase.instances).toHaveLength(2);
      for (const server of [phase.single, ...phase.instances]) {
        expect(server.rps).toBeGreaterThan(0);
        expect(server.cpuMs).toBeGreaterThanOrEqual(0);
        expect(server.netCpuMs).toBeGreaterThanOrEqual(0);
        expect(server.idleMsPerSecond).toBeGreaterThanOrEqual(0);
        expect(server.databaseMs).toBeGreaterThanOrEqual(0);
      }
      expect(phase.ratios).toHaveLength(2);
      expect(phase.netRatios).toHaveLength(2);
      // /proc counts in 10 ms ticks: a one-second round of the single server may show 0, and then no ratio.
      if (phase.single.cpuMs > 0) for (const ratio of phase.ratios) expect(typeof ratio).toBe('number');
    }
    for (const kind of ['me', 'refresh']) {
      const target = instances.targets[`${kind}InstanceOverSingle`];
      expect(target.met).toBe(target.value === null ? null : target.value <= 1.2);
    }
    expect(instances.targets.loginInstanceOverSingle.met).toBeNull();

    // Both databases dropped.
    const names = [...stderr.matchAll(/seeding \d+ users into postgresql:\/\/[^/]+\/(gatehouse_bench_[0-9a-f]+)/g)].map((m) => m[1]);
    expect(names, stderr).toHaveLength(2);
    const admin = new pg.Client({ connectionString: process.env.BENCH_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres' });
    await admin.connect();
    try {
      const { rows } = await admin.query('SELECT datname FROM pg_database WHERE datname = ANY($1)', [names]);
      expect(rows).toEqual([]);
    } finally {
      await admin.end();
    }
  }, 240_000);
});
