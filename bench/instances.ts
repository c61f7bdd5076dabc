import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { threadCpuMs } from './cpu.js';
import { refreshChainRequests } from './refresh-chains.js';
import { BENCH_PASSWORD, seedDatabase, usernameOf } from './seed.js';

// `npm run bench -- --instances N` (issue 15): N Gatehouse processes on one PostgreSQL database and one
// Redis, against a single process on its own database with the same Redis, rounds taking turns. Two cores
// cannot show throughput scaling, so it reports what can be compared: each process's CPU per request.
// The plumbing (servers, databases, autocannon) is bench/run.ts's, handed in as InstancesHarness.

interface Server {
  readonly child: ChildProcess;
  readonly url: string;
  stop(): Promise<void>;
}

interface Workload {
  url: string;
  connections: number;
  body: () => { body: string; headers?: Record<string, string>; tag?: unknown };
  check: (body: string, tag: unknown) => boolean;
  overallRate?: number;
}

interface LoadResult {
  rps: number;
  p99: number;
  requests: number;
  errors: number;
  errorSamples: string[];
}

export interface InstancesHarness {
  instances: number;
  redisUrl: string;
  /** req/s per instance for `me` and refresh, and for login. */
  rate: number;
  loginRate: number;
  /** Each refresh chain stays on one server, as behind a load balancer with session affinity. */
  stickyRefresh: boolean;
  connections: number;
  loginConnections: number;
  rounds: number;
  durationSeconds: number;
  warmupSeconds: number;
  users: number;
  sessions: number;
  keepData: boolean;
  dataDirs: Set<string>;
  log(message: string): void;
  baseEnvironment(): NodeJS.ProcessEnv;
  startServer(script: string, env: NodeJS.ProcessEnv): Promise<Server>;
  createPostgresDatabase(): Promise<string>;
  dropPostgresDatabase(name: string): Promise<void>;
  backendCpuMs(database: string): Promise<Map<number, number>>;
  logInSessions(url: string, count: number, users: number): Promise<{ accessTokens: string[]; chains: { refreshToken: string }[] }>;
  load(workload: Workload, seconds: number): Promise<LoadResult>;
  median(values: number[]): number;
  queries: { me: string; refresh: string; login: string };
}

const KINDS = ['me', 'refresh', 'login'] as const;
type Kind = (typeof KINDS)[number];
/** The issue's target: an instance of several may spend at most this much CPU per request over a lone one. */
const TARGETS: Partial<Record<Kind, number>> = { me: 1.2, refresh: 1.2 };

/** One process's share of one round. */
interface InstanceRound {
  rps: number;
  p99: number;
  requests: number;
  errors: number;
  /** Gatehouse's CPU per answered request, ms: main thread and the others. */
  mainMs: number;
  otherMs: number;
}

interface GroupRound {
  instances: InstanceRound[];
  /** Meanwhile, the CPU of each of the other group's servers, ms per second: what they burn idle. */
  idleMsPerSecond: Map<Server, number>;
  /** The PostgreSQL backends serving the group's database, per request answered by the whole group. */
  databaseMs: number;
  errorSamples: string[];
}

/** One process (or the lone one) against its database: the servers, their sessions and their pools. */
interface Group {
  readonly name: string;
  readonly servers: Server[];
  readonly database: string;
  readonly accessTokens: string[];
  /**
   * Refresh chains of single-use tokens by server URL: by default all under '' and shared by the group's
   * servers, so a chain moves between them; with stickyRefresh each stays on the server that logged it in.
   */
  readonly chains: Map<string, { refreshToken: string }[]>;
  nextToken: number;
  nextUser: number;
}

export interface InstancesResult {
  settings: Record<string, unknown>;
  /** ratios: each instance's CPU per request over the single server's (the target); netRatios: the same less idle burn. */
  phases: Record<Kind, { single: Summary; instances: Summary[]; ratios: (number | null)[]; netRatios: (number | null)[] }>;
  targets: Record<string, { value: number | null; target: string; met: boolean | null }>;
  errors: number;
  errorSamples: string[];
}

interface Summary {
  rps: number;
  p99: number;
  mainMs: number;
  otherMs: number;
  cpuMs: number;
  idleMsPerSecond: number;
  netCpuMs: number;
  databaseMs: number;
  errors: number;
}

export async function runInstances(h: InstancesHarness): Promise<InstancesResult> {
  const runId = randomBytes(4).toString('hex');
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-instances-'));
  h.dataDirs.add(dataDir);
  const groups: Group[] = [];
  const prefixes: string[] = [];
  try {
    for (const [name, count] of [
      ['single', 1],
      ['several', h.instances],
    ] as const) {
      // Each group has its own database (NOTIFY is per database) and Redis prefix (the channel is per
      // prefix): the lone process must not hear the others' changes, nor they its.
      const postgresUrl = await h.createPostgresDatabase();
      const groupDir = path.join(dataDir, name);
      h.log(`instances: seeding ${h.users} users into ${postgresUrl} for ${count} server(s)`);
      await seedDatabase(groupDir, h.users, postgresUrl);
      const prefix = `gatehouse_bench_${runId}_${name}:`;
      prefixes.push(prefix);
      const env = {
        ...h.baseEnvironment(),
        DATA_DIR: groupDir,
        TRUST_PROXY: 'true',
        DATABASE_URL: postgresUrl,
        REDIS_URL: h.redisUrl,
        REDIS_KEY_PREFIX: prefix,
      };
      const group: Group = {
        name,
        servers: [],
        database: new URL(postgresUrl).pathname.slice(1),
        accessTokens: [],
        chains: new Map(),
        nextToken: 0,
        nextUser: 0,
      };
      groups.push(group);
      for (let i = 0; i < count; i++) group.servers.push(await h.startServer('src/main.ts', env));
      h.log(`instances: ${name}: ${group.servers.map((s) => `${s.url} (pid ${s.child.pid})`).join(', ')}`);
      // Sessions begin on every server of the group, so requests meet tokens issued elsewhere.
      for (const server of group.servers) {
        const { accessTokens, chains } = await h.logInSessions(server.url, Math.ceil(h.sessions / count), h.users);
        group.accessTokens.push(...accessTokens);
        const key = h.stickyRefresh ? server.url : '';
        group.chains.set(key, [...(group.chains.get(key) ?? []), ...chains]);
      }
    }
    const rounds = await takeTurns(h, groups);
    return summariseAll(h, groups, rounds);
  } finally {
    for (const group of groups) for (const server of group.servers) await server.stop();
    for (const group of groups) await h.dropPostgresDatabase(group.database);
    await removeRedisKeys(h.redisUrl, prefixes);
    if (!h.keepData) rmSync(dataDir, { recursive: true, force: true });
    h.dataDirs.delete(dataDir);
  }
}

function workload(h: InstancesHarness, group: Group, kind: Kind, url: string): Workload {
  const { me, refresh, login } = h.queries;
  if (kind === 'me') {
    const body = JSON.stringify({ query: me });
    return {
      url,
      connections: h.connections,
      overallRate: h.rate,
      body: () => ({ body, headers: { authorization: `Bearer ${group.accessTokens[group.nextToken++ % group.accessTokens.length]}` } }),
      check: (text) => text.includes('"me":{"id"') && !text.includes('"errors"'),
    };
  }
  if (kind === 'refresh') {
    const queue = group.chains.get(h.stickyRefresh ? url : '')!;
    return {
      url,
      connections: h.connections,
      overallRate: h.rate,
      ...refreshChainRequests(refresh, queue, 'instances: ran out of refresh chains; raise --sessions'),
    };
  }
  return {
    url,
    connections: h.loginConnections,
    overallRate: h.loginRate,
    body: () => ({
      body: JSON.stringify({ query: login, variables: { input: { username: usernameOf(group.nextUser++ % h.users), password: BENCH_PASSWORD } } }),
    }),
    check: (text) => text.includes('"accessToken"'),
  };
}

/** Every server of the group at the same per-instance rate at once, each measured on its own. */
async function groupRound(h: InstancesHarness, group: Group, kind: Kind, seconds: number, idle: Server[]): Promise<GroupRound> {
  const databaseBefore = await h.backendCpuMs(group.database);
  const before = group.servers.map((s) => threadCpuMs(s.child.pid));
  const idleBefore = idle.map((s) => threadCpuMs(s.child.pid));
  const startedAt = performance.now();
  const results = await Promise.all(group.servers.map((s) => h.load(workload(h, group, kind, s.url), seconds)));
  const after = group.servers.map((s) => threadCpuMs(s.child.pid));
  const idleAfter = idle.map((s) => threadCpuMs(s.child.pid));
  const elapsedSeconds = (performance.now() - startedAt) / 1000;
  const idleMsPerSecond = new Map<Server, number>();
  idle.forEach((server, i) => {
    const a = idleBefore[i];
    const b = idleAfter[i];
    if (a && b) idleMsPerSecond.set(server, (b.mainMs + b.otherMs - a.mainMs - a.otherMs) / elapsedSeconds);
  });
  const databaseAfter = await h.backendCpuMs(group.database);
  const databaseCpu = [...databaseAfter].reduce((sum, [pid, ms]) => sum + ms - (databaseBefore.get(pid) ?? 0), 0);
  const total = results.reduce((sum, r) => sum + r.requests, 0);
  return {
    instances: results.map((r, i) => {
      const a = before[i];
      const b = after[i];
      if (!a || !b) throw new Error('instances: cannot read a server process CPU from /proc (Linux only)');
      const n = Math.max(1, r.requests);
      return { rps: r.rps, p99: r.p99, requests: r.requests, errors: r.errors, mainMs: (b.mainMs - a.mainMs) / n, otherMs: (b.otherMs - a.otherMs) / n };
    }),
    idleMsPerSecond,
    databaseMs: databaseCpu / Math.max(1, total),
    errorSamples: results.flatMap((r) => r.errorSamples),
  };
}

type Rounds = Record<Kind, Record<string, GroupRound[]>>;

/** me (lone, several), refresh (lone, several), login (lone, several), then again: every ratio pairs rounds that ran back to back. */
async function takeTurns(h: InstancesHarness, groups: Group[]): Promise<Rounds> {
  const rounds = Object.fromEntries(KINDS.map((kind) => [kind, Object.fromEntries(groups.map((g) => [g.name, [] as GroupRound[]]))])) as Rounds;
  const others = (group: Group) => groups.filter((g) => g !== group).flatMap((g) => g.servers);
  if (h.warmupSeconds > 0) for (const kind of KINDS) for (const group of groups) await groupRound(h, group, kind, h.warmupSeconds, others(group));
  for (let i = 0; i < h.rounds; i++) {
    for (const kind of KINDS) {
      for (const group of groups) {
        // Let the previous round's stragglers (argon2 hashes, commits, announcements) finish first.
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const round = await groupRound(h, group, kind, h.durationSeconds, others(group));
        rounds[kind][group.name]!.push(round);
        const each = round.instances.map(
          (r, n) =>
            `#${n + 1} ${r.rps.toFixed(1)} req/s ${(r.mainMs + r.otherMs).toFixed(2)} ms (main ${r.mainMs.toFixed(2)})${r.errors ? ` errors ${r.errors}` : ''}`,
        );
        h.log(`instances ${kind} ${group.name} round ${i + 1}: ${each.join(', ')}; PostgreSQL backends ${round.databaseMs.toFixed(2)} ms/request`);
      }
    }
  }
  return rounds;
}

function summariseAll(h: InstancesHarness, groups: Group[], rounds: Rounds): InstancesResult {
  const m = h.median;
  // Each server's idle burn (timers, heartbeats, GC): median over the rounds where only the other group ran.
  const all = KINDS.flatMap((kind) => Object.values(rounds[kind]).flat());
  const idleOf = (server: Server) => {
    const seen = all.flatMap((r) => (r.idleMsPerSecond.has(server) ? [r.idleMsPerSecond.get(server)!] : []));
    return seen.length ? m(seen) : 0;
  };
  const idle = new Map(groups.flatMap((g) => g.servers.map((s) => [s, idleOf(s)] as const)));
  // CPU per request less the idle burn spread over the round's requests: the paced rates are low, and a
  // server that answers fewer requests per second than another spreads the same idle cost thinner.
  const net = (r: InstanceRound, server: Server) => Math.max(0, r.mainMs + r.otherMs - (r.rps > 0 ? idle.get(server)! / r.rps : 0));
  const summary = (rs: GroupRound[], server: Server, index: number): Summary => {
    const own = rs.map((r) => r.instances[index]!);
    return {
      rps: m(own.map((r) => r.rps)),
      p99: m(own.map((r) => r.p99)),
      mainMs: m(own.map((r) => r.mainMs)),
      otherMs: m(own.map((r) => r.otherMs)),
      cpuMs: m(own.map((r) => r.mainMs + r.otherMs)),
      idleMsPerSecond: idle.get(server)!,
      netCpuMs: m(own.map((r) => net(r, server))),
      databaseMs: m(rs.map((r) => r.databaseMs)),
      errors: own.reduce((sum, r) => sum + r.errors, 0),
    };
  };
  const [lone, several] = [groups[0]!, groups[1]!];
  const phases = {} as InstancesResult['phases'];
  const targets: InstancesResult['targets'] = {};
  let errors = 0;
  const errorSamples: string[] = [];
  for (const kind of KINDS) {
    const singleRounds = rounds[kind][lone.name]!;
    const severalRounds = rounds[kind][several.name]!;
    // Each instance's ratio is the median of its per-round ratios against the lone server's round just before.
    const ratio = (figure: (r: InstanceRound, server: Server) => number) =>
      several.servers.map((server, index) => {
        const perRound = severalRounds
          .map((r, i) => {
            const base = figure(singleRounds[i]!.instances[0]!, lone.servers[0]!);
            return base > 0 ? figure(r.instances[index]!, server) / base : null;
          })
          .filter((x): x is number => x !== null);
        return perRound.length ? m(perRound) : null;
      });
    const ratios = ratio((r) => r.mainMs + r.otherMs);
    phases[kind] = {
      single: summary(singleRounds, lone.servers[0]!, 0),
      instances: several.servers.map((server, i) => summary(severalRounds, server, i)),
      ratios,
      netRatios: ratio(net),
    };
    const limit = TARGETS[kind];
    // The worst instance decides: the target is per instance.
    const worst = ratios.some((r) => r === null) ? null : Math.max(...(ratios as number[]));
    targets[`${kind}InstanceOverSingle`] = {
      value: worst,
      target: limit === undefined ? 'none' : `<= ${limit}`,
      met: limit === undefined || worst === null ? null : worst <= limit,
    };
    for (const r of [...singleRounds, ...severalRounds]) {
      errors += r.instances.reduce((sum, x) => sum + x.errors, 0);
      errorSamples.push(...r.errorSamples);
    }
  }
  return {
    settings: {
      instances: h.instances,
      ratePerInstance: h.rate,
      loginRatePerInstance: h.loginRate,
      connectionsPerInstance: h.connections,
      loginConnectionsPerInstance: h.loginConnections,
      stickyRefresh: h.stickyRefresh,
      redis: h.redisUrl,
    },
    phases,
    targets,
    errors,
    errorSamples: errorSamples.slice(0, 5),
  };
}

/** The keys the servers left under this run's prefixes (limits' counters); never a FLUSH: Redis is shared. */
async function removeRedisKeys(url: string, prefixes: string[]): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    for (const prefix of prefixes) {
      for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 500 }) as AsyncIterable<string[]>) {
        if (keys.length) await redis.unlink(...keys);
      }
    }
  } catch {
    // Best effort: whatever is left expires with its limit window.
  } finally {
    redis.disconnect();
  }
}

const fixed = (value: number | null | undefined, digits: number) => (value === null || value === undefined ? '-' : value.toFixed(digits));

/** The per-instance table and the targets, as markdown. */
export function formatInstances(result: InstancesResult): string {
  const rows: string[][] = [];
  for (const kind of KINDS) {
    const phase = result.phases[kind];
    const row = (who: string, s: Summary, ratio?: number | null, netRatio?: number | null) => [
      kind,
      who,
      s.rps.toFixed(1),
      s.p99.toFixed(1),
      s.mainMs.toFixed(2),
      s.otherMs.toFixed(2),
      s.cpuMs.toFixed(2),
      fixed(ratio, 2),
      s.idleMsPerSecond.toFixed(1),
      s.netCpuMs.toFixed(2),
      fixed(netRatio, 2),
      s.databaseMs.toFixed(2),
      String(s.errors),
    ];
    rows.push(row('single', phase.single));
    for (const [i, s] of phase.instances.entries()) rows.push(row(`instance ${i + 1} of ${phase.instances.length}`, s, phase.ratios[i], phase.netRatios[i]));
  }
  const header = [
    'phase',
    'process',
    'req/s',
    'p99 ms',
    'CPU/req main ms',
    'other ms',
    'total ms',
    '× single',
    'idle ms/s',
    'less idle ms',
    '× single',
    'PG backends ms/req',
    'errors',
  ];
  const widths = header.map((text, i) => Math.max(text.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const out = [
    '',
    `${result.settings.instances} instances on one PostgreSQL database + Redis, against a single instance (medians; CPU per request)`,
    '',
    line(header),
    `|${widths.map((w, i) => `${'-'.repeat(w + 1)}${i < 2 ? '-' : ':'}`).join('|')}|`,
    ...rows.map(line),
    '',
    '| target | value (worst instance) | target | met |',
    '|---|---|---|---|',
    ...Object.entries(result.targets).map(([name, t]) => `| ${name} | ${fixed(t.value, 2)} | ${t.target} | ${t.met === null ? '' : t.met ? 'yes' : 'NO'} |`),
  ];
  return out.join('\n');
}
