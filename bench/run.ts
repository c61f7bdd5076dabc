import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import { type CpuPerRequest, perRequest, processCpuMs, threadCpuMs } from './cpu.js';
import { formatInstances, runInstances } from './instances.js';
import { type RefreshChain, refreshChainRequests } from './refresh-chains.js';
import { BENCH_PASSWORD, seedDatabase, usernameOf } from './seed.js';

// `npm run bench`: the real server (`node --import tsx src/main.ts`) on a fresh, seeded SQLite and/or
// PostgreSQL database, measured against bare graphql-yoga started the same way. See README.md, "Performance".

const root = path.resolve(import.meta.dirname, '..');

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    users: { type: 'string', default: '10000' },
    sessions: { type: 'string', default: '300' },
    connections: { type: 'string', default: '10' },
    'login-connections': { type: 'string', default: String(os.availableParallelism()) },
    'paced-rate': { type: 'string' },
    'paced-connections': { type: 'string', default: '4' },
    json: { type: 'string', default: path.join(root, 'bench', 'results.json') },
    stdout: { type: 'boolean', default: false },
    'keep-data': { type: 'boolean', default: false },
    phases: { type: 'string' },
    'server-node-args': { type: 'string', default: '' },
    engine: { type: 'string', default: process.env.BENCH_ENGINE ?? 'sqlite' },
    'postgres-url': { type: 'string', default: process.env.BENCH_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres' },
    instances: { type: 'string' },
    'instance-rate': { type: 'string', default: '100' },
    'instance-login-rate': { type: 'string', default: '5' },
    'sticky-refresh': { type: 'boolean', default: false },
    'redis-url': { type: 'string', default: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  console.log(`usage: npm run bench -- [options]
  --rounds N              measured rounds per phase (5)
  --duration S            seconds per round (8)
  --warmup S              unmeasured warm-up seconds before each phase (2; 0 = none)
  --users N               seeded users (10000)
  --sessions N            users logged in first; their tokens drive me and refresh (300)
  --connections N         connections for baseline, me and refresh (10)
  --login-connections N   connections for login, the storm and raw argon2 (core count)
  --paced-rate N          req/s of the paced me probe, idle and under the storm (25% of me's rate)
  --paced-connections N   connections of the paced me probe (4)
  --json PATH             where to write the results (bench/results.json)
  --stdout                print the results JSON on stdout after the table instead of writing a file
  --keep-data             keep the temporary data directory
  --phases a,b            only these phases (baseline,me,login,rawArgon2,refresh,storm); ratios needing
                          a skipped phase are null
  --server-node-args "…"  extra Node flags for the Gatehouse server only, e.g. "--cpu-prof --cpu-prof-dir=prof"
  --engine E              sqlite, postgres or both (sqlite; or BENCH_ENGINE): both runs every phase on each
                          engine in turn and prints them side by side
  --postgres-url URL      a database on the PostgreSQL server to connect to for CREATE/DROP DATABASE
                          (postgresql://postgres@127.0.0.1:5432/postgres; or BENCH_POSTGRES_URL); each run
                          makes its own gatehouse_bench_<random> database and drops it at the end
  --instances N           instead of the phases above (issue 15): N servers on one PostgreSQL database and
                          Redis against one server on its own database and the same Redis, paced me, refresh
                          and login taking turns; CPU per request of each server, and each over the single
  --instance-rate N       req/s per server for me and refresh in --instances (100)
  --instance-login-rate N logins/s per server in --instances (5); connections per server: --paced-connections
                          for me and refresh, --login-connections for login
  --sticky-refresh        in --instances, each refresh chain stays on the server that logged it in (a load
                          balancer with session affinity); by default any server may take a chain's next refresh
  --redis-url URL         Redis for --instances (redis://127.0.0.1:6379; or BENCH_REDIS_URL); keys and channels
                          under gatehouse_bench_<random>_…: prefixes, its keys deleted at the end, never a flush`);
  process.exit(0);
}

const int = (name: string, value: string | undefined, min = 0): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}, got ${value}`);
  return n;
};
const settings = {
  rounds: int('rounds', args.rounds, 1),
  durationSeconds: int('duration', args.duration, 1),
  warmupSeconds: int('warmup', args.warmup, 0),
  users: int('users', args.users, 1),
  sessions: int('sessions', args.sessions, 1),
  connections: int('connections', args.connections, 1),
  loginConnections: int('login-connections', args['login-connections'], 1),
  pacedRate: args['paced-rate'] === undefined ? undefined : int('paced-rate', args['paced-rate'], 1),
  pacedConnections: int('paced-connections', args['paced-connections'], 1),
  instances: args.instances === undefined ? undefined : int('instances', args.instances, 2),
};
if (settings.sessions > settings.users) settings.sessions = settings.users;
// Refresh chains are lost when a round ends with their request in flight; every connection needs one.
if (settings.sessions < settings.connections * (settings.rounds + 2)) {
  throw new Error(`--sessions must be at least connections × (rounds + 2) = ${settings.connections * (settings.rounds + 2)}`);
}

const PHASES = ['baseline', 'me', 'login', 'rawArgon2', 'refresh', 'storm'] as const;
const selected = new Set(args.phases ? args.phases.split(',').map((name) => name.trim()) : PHASES);
for (const name of selected) {
  if (!(PHASES as readonly string[]).includes(name)) throw new Error(`--phases: unknown phase ${name}; known: ${PHASES.join(', ')}`);
}
const want = (name: (typeof PHASES)[number]) => selected.has(name);

type Engine = 'sqlite' | 'postgres';
const ENGINE_NAMES: Record<Engine, string> = { sqlite: 'SQLite', postgres: 'PostgreSQL' };
if (!['sqlite', 'postgres', 'both'].includes(args.engine!)) throw new Error(`--engine must be sqlite, postgres or both, got ${args.engine}`);
const engines: Engine[] = args.engine === 'both' ? ['sqlite', 'postgres'] : [args.engine as Engine];

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);

// ---------------------------------------------------------------------------------------------------
// Processes

interface Server {
  readonly child: ChildProcess;
  readonly url: string;
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
/** Temporary data directories of engines still running, removed on Ctrl-C too. */
const dataDirs = new Set<string>();
const killAll = () => {
  for (const child of children) child.kill('SIGKILL');
};
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    if (!args['keep-data']) for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
    // The PostgreSQL databases this run made go too (best effort, a few seconds at most).
    const timer = setTimeout(() => process.exit(130), 5000);
    void Promise.all([...postgresDatabases].map((name) => dropPostgresDatabase(name).catch(() => undefined))).finally(() => {
      clearTimeout(timer);
      process.exit(130);
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// PostgreSQL: one database per run, named gatehouse_bench_<random>, dropped at the end

const postgresDatabases = new Set<string>();

async function withPostgresAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: args['postgres-url'], connectionTimeoutMillis: 10_000, application_name: 'gatehouse-bench' });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`--engine postgres needs a PostgreSQL server at ${args['postgres-url']} (--postgres-url): ${(error as Error).message}`);
  }
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

async function createPostgresDatabase(): Promise<string> {
  const name = `gatehouse_bench_${randomBytes(6).toString('hex')}`;
  postgresDatabases.add(name);
  await withPostgresAdmin((admin) => admin.query(`CREATE DATABASE "${name}"`));
  const url = new URL(args['postgres-url']!);
  url.pathname = `/${name}`;
  return url.href;
}

/**
 * CPU used so far by each PostgreSQL backend connected to database `name` (the server's pool), by pid. A
 * backend that ends within a round loses its share; the pool keeps its connections while the load runs.
 * PostgreSQL's shared background processes (WAL writer, checkpointer) are left out.
 */
async function backendCpuMs(name: string): Promise<Map<number, number>> {
  const { rows } = await withPostgresAdmin((admin) => admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [name]));
  const cpu = new Map<number, number>();
  for (const { pid } of rows) {
    const ms = processCpuMs(pid);
    if (ms !== null) cpu.set(pid, ms);
  }
  return cpu;
}

const backendDelta = (before: Map<number, number>, after: Map<number, number>) => [...after].reduce((sum, [pid, ms]) => sum + ms - (before.get(pid) ?? 0), 0);

async function dropPostgresDatabase(name: string): Promise<void> {
  await withPostgresAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  postgresDatabases.delete(name);
}

/** Every process we measure runs with the same flags and environment as `npm start`'s server. */
const NODE_ARGS = ['--import', 'tsx'];

function baseEnvironment(): NodeJS.ProcessEnv {
  // Email off: the benchmark measures the core paths, and production needs SMTP_URL with email on.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', PORT: '0', EMAIL_ENABLED: 'false' };
  for (const name of ['UV_THREADPOOL_SIZE', 'NODE_OPTIONS', 'TMPDIR', 'SQLITE_SYNCHRONOUS', 'LOG_LEVEL', 'ARGON2_CONCURRENCY']) {
    if (process.env[name] !== undefined) env[name] = process.env[name];
  }
  return env;
}

async function startServer(script: string, env: NodeJS.ProcessEnv, extraNodeArgs: string[] = []): Promise<Server> {
  const child = spawn(process.execPath, [...extraNodeArgs, ...NODE_ARGS, script], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  // Only the tail is kept: the server logs every auth event, and the runner shares the machine.
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk).slice(-65_536);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start within 60 s:\n${output}`)), 60_000);
    const onData = () => {
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code}:\n${output}`));
    });
  });
  return {
    child,
    url,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Resident set size of a process in MiB (Linux /proc; null elsewhere). */
function rssMB(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------
// GraphQL over plain fetch (set-up only; never timed)

/**
 * A client address for X-Forwarded-For (the server trusts it: TRUST_PROXY), one of 16,384: about as many
 * clients as the load represents. Each stays under the default per-address limits, and the limiter's
 * store keeps them all (it holds 100,000) instead of evicting one on every call.
 */
function clientAddress(): string {
  const n = Math.floor(Math.random() * 2 ** 14);
  return `10.0.${n >>> 8}.${n & 255}`;
}

async function gql(url: string, query: string, variables: object = {}, headers: Record<string, string> = {}): Promise<any> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': clientAddress(), ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (!response.ok || body.errors) throw new Error(`set-up request failed (${response.status}): ${JSON.stringify(body)}`);
  return body.data;
}

const LOGIN =
  'mutation Login($input: LoginInput!) { login(input: $input) { __typename ... on AuthPayload { accessToken refreshToken } ... on Error { code } } }';
const REFRESH =
  'mutation Refresh($token: String!) { refresh(refreshToken: $token) { __typename ... on AuthPayload { accessToken refreshToken } ... on Error { code } } }';
const ME = '{ me { id username } }';
const TYPENAME = '{ __typename }';

async function logInSessions(url: string, count: number, users: number): Promise<{ accessTokens: string[]; chains: RefreshChain[] }> {
  const accessTokens: string[] = [];
  const chains: RefreshChain[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      // Spread over the whole user table, not just its first rows.
      const index = Math.floor((next++ * users) / count);
      const data = await gql(url, LOGIN, { input: { username: usernameOf(index), password: BENCH_PASSWORD } });
      if (data.login.__typename !== 'AuthPayload') throw new Error(`set-up login failed: ${JSON.stringify(data)}`);
      accessTokens.push(data.login.accessToken);
      chains.push({ refreshToken: data.login.refreshToken });
    }
  };
  await Promise.all(Array.from({ length: os.availableParallelism() }, worker));
  return { accessTokens, chains };
}

// ---------------------------------------------------------------------------------------------------
// Load

interface RoundResult {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  /** non-2xx answers, connection errors, timeouts and 200s carrying GraphQL errors or failure results. */
  errors: number;
  errorSamples: string[];
  rssMB: number | null;
  /** Server CPU per answered request, ms: its main (event-loop) thread and all its other threads. */
  cpu?: CpuPerRequest | null;
}

interface Workload {
  url: string;
  connections: number;
  /** Builds one request body (and headers); called for every request. */
  body: () => { body: string; headers?: Record<string, string>; tag?: unknown };
  /** Whether a 200 answer is a success; may record state (e.g. the next refresh token). */
  check: (body: string, tag: unknown) => boolean;
  overallRate?: number;
}

async function load(workload: Workload, seconds: number): Promise<Omit<RoundResult, 'rssMB'>> {
  let bad = 0;
  const samples: string[] = [];
  const result = await autocannon({
    url: `${workload.url}/graphql`,
    connections: workload.connections,
    duration: seconds,
    ...(workload.overallRate ? { overallRate: workload.overallRate } : {}),
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    requests: [
      {
        setupRequest: (request: any, context: any) => {
          const built = workload.body();
          context.tag = built.tag;
          return { ...request, body: built.body, headers: { ...request.headers, 'x-forwarded-for': clientAddress(), ...built.headers } };
        },
        onResponse: (status: number, body: string, context: any) => {
          if (status >= 200 && status < 300 && workload.check(body, context.tag)) return;
          bad++;
          if (samples.length < 3) samples.push(`${status} ${String(body).slice(0, 300)}`);
        },
      } as any,
    ],
  });
  const rps = result.requests.total / Math.max(seconds, result.duration);
  return {
    rps,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    // non2xx is also seen by onResponse; errors and timeouts are not.
    errors: bad + result.errors + result.timeouts,
    errorSamples: samples,
  };
}

interface PhaseResult {
  description: string;
  connections: number;
  rounds: RoundResult[];
  median: { rps: number; p50: number; p99: number; cpu: CpuPerRequest | null };
  errors: number;
  rssMB: number | null;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

function summarise(description: string, connections: number, rounds: RoundResult[]): PhaseResult {
  return {
    description,
    connections,
    rounds,
    median: {
      rps: median(rounds.map((r) => r.rps)),
      p50: median(rounds.map((r) => r.p50)),
      p99: median(rounds.map((r) => r.p99)),
      cpu: rounds.every((r) => r.cpu)
        ? {
            mainMs: median(rounds.map((r) => r.cpu!.mainMs)),
            otherMs: median(rounds.map((r) => r.cpu!.otherMs)),
            ...(rounds.every((r) => r.cpu!.databaseMs !== undefined) ? { databaseMs: median(rounds.map((r) => r.cpu!.databaseMs!)) } : {}),
          }
        : null,
    },
    errors: rounds.reduce((sum, r) => sum + r.errors, 0),
    rssMB: rounds.at(-1)?.rssMB ?? null,
  };
}

const SETTLE_MS = 1000;

/** One thing measured round by round: an HTTP workload against a server, or the raw argon2 loop. */
interface Measure {
  readonly name: string;
  readonly description: string;
  readonly connections: number;
  round(seconds: number): Promise<RoundResult>;
}

function httpMeasure(name: string, description: string, workload: Workload, pid: number | undefined, database?: string): Measure {
  return {
    name,
    description,
    connections: workload.connections,
    async round(seconds) {
      const databaseBefore = database ? await backendCpuMs(database) : undefined;
      const before = threadCpuMs(pid);
      const result = await load(workload, seconds);
      const cpu = perRequest(before, threadCpuMs(pid), result.requests);
      if (cpu && databaseBefore) cpu.databaseMs = backendDelta(databaseBefore, await backendCpuMs(database!)) / result.requests;
      return { ...result, rssMB: rssMB(pid), cpu };
    },
  };
}

/**
 * Runs the measures' rounds in turn (a, b, c, a, b, c, …) after an unmeasured warm-up of each. On a VM the
 * neighbours move single figures within minutes (README, Performance); taking turns lets every measure of a ratio
 * see the same machine, and each ratio is the median of the per-round ratios.
 */
async function interleaved(measures: Measure[]): Promise<Record<string, PhaseResult>> {
  if (settings.warmupSeconds > 0) for (const measure of measures) await measure.round(settings.warmupSeconds);
  const rounds = new Map(measures.map((measure) => [measure.name, [] as RoundResult[]]));
  for (let i = 0; i < settings.rounds; i++) {
    for (const measure of measures) {
      // Let the previous round's stragglers (argon2 hashes, commits) finish before this one starts.
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      const round = await measure.round(settings.durationSeconds);
      rounds.get(measure.name)!.push(round);
      const backends = round.cpu?.databaseMs === undefined ? '' : `, PostgreSQL backends ${round.cpu.databaseMs.toFixed(2)} ms`;
      const cpu = round.cpu ? `, CPU/request: main thread ${round.cpu.mainMs.toFixed(2)} ms, other threads ${round.cpu.otherMs.toFixed(2)} ms${backends}` : '';
      log(
        `${measure.name} round ${i + 1}: ${round.rps.toFixed(round.rps < 100 ? 1 : 0)} req/s, p50 ${round.p50.toFixed(1)} ms, p99 ${round.p99.toFixed(1)} ms, errors ${round.errors}${cpu}`,
      );
    }
  }
  return Object.fromEntries(measures.map((measure) => [measure.name, summarise(measure.description, measure.connections, rounds.get(measure.name)!)]));
}

/** Raw argon2 verify in its own long-lived process (bench/raw-argon2.ts), one round per request. */
function rawArgon2Measure(passwordHash: string, env: NodeJS.ProcessEnv): Measure & { close(): void } {
  const input = { hash: passwordHash, password: BENCH_PASSWORD, concurrency: settings.loginConnections };
  const child = spawn(process.execPath, [...NODE_ARGS, 'bench/raw-argon2.ts', JSON.stringify(input)], { cwd: root, env, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-4096)));
  // A dead child surfaces below as "exited", not as an unhandled EPIPE.
  child.stdin.on('error', () => undefined);
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    name: 'rawArgon2',
    description: '@node-rs/argon2 verify, same parameters and concurrency, own process',
    connections: settings.loginConnections,
    async round(seconds) {
      child.stdin.write(`${seconds * 1000}\n`);
      const next = await lines.next();
      if (next.done) throw new Error(`raw argon2 measurement exited with ${child.exitCode}: ${stderr}`);
      const r = JSON.parse(next.value) as { rps: number; p50: number; p99: number; count: number; errors: number; cpu: CpuPerRequest | null; rssMB: number };
      return { rps: r.rps, p50: r.p50, p99: r.p99, requests: r.count, errors: r.errors, errorSamples: [], rssMB: r.rssMB, cpu: r.cpu };
    },
    close() {
      child.stdin.end();
      children.delete(child);
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The run

interface Ratio {
  value: number | null;
  target: string;
  met: boolean | null;
}

interface EngineResult {
  phases: Record<string, PhaseResult>;
  ratios: Record<string, Ratio>;
  rss: { afterSetupMB: number | null; perRoundMB: Record<string, (number | null)[]> };
  pacedRate: number;
}

/** Every selected phase against one engine: its own fresh database, server and baselines. */
async function runEngine(engine: Engine): Promise<EngineResult> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `gatehouse-bench-${engine}-`));
  dataDirs.add(dataDir);
  const servers: Server[] = [];
  let postgresUrl: string | undefined;
  try {
    if (engine === 'postgres') postgresUrl = await createPostgresDatabase();
    log(`${ENGINE_NAMES[engine]}: seeding ${settings.users} users into ${postgresUrl ?? dataDir}`);
    const seeded = await seedDatabase(dataDir, settings.users, postgresUrl);

    const env = baseEnvironment();
    // The default rate limits stay on, as in production; the clients arrive through a trusted proxy
    // from many addresses (clientAddress), as real users do, rather than as one address that any
    // production limit would stop (or whose per-address log would be unrealistically long).
    // DATA_DIR holds the key file on both engines; DATABASE_URL picks PostgreSQL.
    const serverEnv = { ...env, DATA_DIR: dataDir, TRUST_PROXY: 'true', ...(postgresUrl ? { DATABASE_URL: postgresUrl } : {}) };
    const baseline = await startServer('bench/baseline-server.ts', env);
    servers.push(baseline);
    const leanBaseline = await startServer('bench/baseline-server.ts', { ...env, BASELINE_BODY_LIMIT: 'off' });
    servers.push(leanBaseline);
    const server = await startServer('src/main.ts', serverEnv, args['server-node-args']!.split(' ').filter(Boolean));
    servers.push(server);
    const pid = server.child.pid;
    // PostgreSQL: the database server's backends for this database count towards each request's CPU too.
    const database = postgresUrl ? new URL(postgresUrl).pathname.slice(1) : undefined;
    log(`${ENGINE_NAMES[engine]}: server ${server.url} (pid ${pid}), baseline ${baseline.url}`);

    log(`logging in ${settings.sessions} users`);
    const { accessTokens, chains } = await logInSessions(server.url, settings.sessions, settings.users);
    const rssAfterSetup = rssMB(pid);

    const phases: Record<string, PhaseResult> = {};
    const typenameBody = JSON.stringify({ query: TYPENAME });
    const meBody = JSON.stringify({ query: ME });
    const meOk = (body: string) => body.includes('"me":{"id"') && !body.includes('"errors"');

    const typenameWorkload = (url: string): Workload => ({
      url,
      connections: settings.connections,
      body: () => ({ body: typenameBody }),
      check: (body) => body.includes('"__typename":"Query"'),
    });
    const baselineMeasure = httpMeasure('baseline', 'bare graphql-yoga, { __typename }, own process', typenameWorkload(baseline.url), baseline.child.pid);
    const leanBaselineMeasure = httpMeasure(
      'baselineNoBodyLimit',
      "the same without Yoga's default body limit (maxRequestBodySize: false)",
      typenameWorkload(leanBaseline.url),
      leanBaseline.child.pid,
    );

    let nextToken = 0;
    const meWorkload = (connections: number, overallRate?: number): Workload => ({
      url: server.url,
      connections,
      overallRate,
      body: () => ({ body: meBody, headers: { authorization: `Bearer ${accessTokens[nextToken++ % accessTokens.length]}` } }),
      check: meOk,
    });
    const meMeasure = httpMeasure('me', `me { id username }, ${accessTokens.length} users' tokens`, meWorkload(settings.connections), pid, database);

    // Chains of single-use tokens, walked as bench/refresh-chains.ts says.
    const available = [...chains];
    const refreshMeasure = httpMeasure(
      'refresh',
      'refresh (rotation: one write per call), chains of single-use tokens',
      {
        url: server.url,
        connections: settings.connections,
        ...refreshChainRequests(REFRESH, available, 'ran out of refresh chains; raise --sessions'),
      },
      pid,
      database,
    );
    Object.assign(
      phases,
      await interleaved([
        ...(want('baseline') ? [baselineMeasure, leanBaselineMeasure] : []),
        ...(want('me') ? [meMeasure] : []),
        ...(want('refresh') ? [refreshMeasure] : []),
      ]),
    );

    let nextUser = 0;
    const loginWorkload: Workload = {
      url: server.url,
      connections: settings.loginConnections,
      body: () => ({
        body: JSON.stringify({ query: LOGIN, variables: { input: { username: usernameOf(nextUser++ % settings.users), password: BENCH_PASSWORD } } }),
      }),
      check: (body) => body.includes('"accessToken"'),
    };
    const rawArgon2 = want('rawArgon2') ? rawArgon2Measure(seeded.passwordHash, env) : null;
    try {
      Object.assign(
        phases,
        await interleaved([
          ...(want('login') ? [httpMeasure('login', 'login with the right password, a new session each', loginWorkload, pid, database)] : []),
          ...(rawArgon2 ? [rawArgon2] : []),
        ]),
      );
    } finally {
      rawArgon2?.close();
    }

    // Latency under a login storm, against the same paced probe without it. A paced probe, not a
    // saturating one: at saturation latency is just queue length / throughput and says nothing of stalls.
    const pacedRate = settings.pacedRate ?? Math.max(20, Math.round((phases.me?.median.rps ?? 800) * 0.25));
    if (want('storm')) {
      const loginStorm: RoundResult[] = [];
      const idle = httpMeasure(
        'mePacedIdle',
        `me at ${pacedRate} req/s, nothing else running`,
        meWorkload(settings.pacedConnections, pacedRate),
        pid,
        database,
      );
      const probe = httpMeasure('mePacedStorm', `me at ${pacedRate} req/s during a login storm`, meWorkload(settings.pacedConnections, pacedRate), pid);
      const storm = httpMeasure('loginStorm', 'the login storm itself', loginWorkload, pid);
      Object.assign(
        phases,
        await interleaved([
          idle,
          {
            ...probe,
            async round(seconds) {
              const [stormRound, probeRound] = await Promise.all([storm.round(seconds), probe.round(seconds)]);
              // Both load the same server at once: its CPU cannot be split between them.
              loginStorm.push({ ...stormRound, cpu: null });
              return { ...probeRound, cpu: null };
            },
          },
        ]),
      );
      // The first storm round (if any) was the warm-up.
      phases.loginStorm = summarise(storm.description, storm.connections, loginStorm.slice(-settings.rounds));
    }

    // Each ratio is the median of its per-round ratios: the rounds of its two phases took turns.
    const paired = (a: PhaseResult | undefined, b: PhaseResult | undefined, figure: (r: RoundResult) => number) =>
      a && b && a.rounds.length === b.rounds.length && b.rounds.every((r) => figure(r) > 0)
        ? median(a.rounds.map((r, i) => figure(r) / figure(b.rounds[i]!)))
        : null;
    const rps = (r: RoundResult) => r.rps;
    const ratios = {
      meOverBaseline: { value: paired(phases.me, phases.baseline, rps), target: '>= 0.8', min: 0.8 },
      loginOverRawArgon2: { value: paired(phases.login, phases.rawArgon2, rps), target: '>= 0.9', min: 0.9 },
      refreshOverMe: { value: paired(phases.refresh, phases.me, rps), target: '>= 0.5', min: 0.5 },
      stormP99OverIdleP99: { value: paired(phases.mePacedStorm, phases.mePacedIdle, (r) => r.p99), target: '<= 2', max: 2 },
      // No target: against the leanest bare Yoga, for an honest reading of the first ratio.
      meOverBaselineNoBodyLimit: { value: paired(phases.me, phases.baselineNoBodyLimit, rps), target: 'none' },
    };
    const rssPerRound = Object.fromEntries(
      Object.entries(phases)
        .filter(([name]) => name !== 'baseline' && name !== 'rawArgon2')
        .map(([name, result]) => [name, result.rounds.map((r) => r.rssMB)]),
    );
    return {
      phases,
      ratios: Object.fromEntries(Object.entries(ratios).map(([name, r]) => [name, { value: r.value, target: r.target, met: metTarget(r) }])),
      rss: { afterSetupMB: rssAfterSetup, perRoundMB: rssPerRound },
      pacedRate,
    };
  } finally {
    for (const server of servers) await server.stop();
    if (!args['keep-data']) rmSync(dataDir, { recursive: true, force: true });
    dataDirs.delete(dataDir);
    if (postgresUrl) await dropPostgresDatabase(new URL(postgresUrl).pathname.slice(1));
  }
}

/** CPU per request (Gatehouse's main and other threads and, on PostgreSQL, the database's backends), in ms; null when a phase did not run or /proc was unreadable. */
const cpuMs = (phase: PhaseResult | undefined) =>
  phase?.median.cpu ? phase.median.cpu.mainMs + phase.median.cpu.otherMs + (phase.median.cpu.databaseMs ?? 0) : null;
/** Requests per second one fully used core sustains: 1000 ms over the server's CPU per request. */
const perCore = (phase: PhaseResult | undefined) => {
  const ms = cpuMs(phase);
  return ms && ms > 0 ? 1000 / ms : null;
};

const machine = (loadAtStart: number[]) => ({
  cpus: os.availableParallelism(),
  model: os.cpus()[0]?.model ?? 'unknown',
  node: process.version,
  platform: `${os.platform()} ${os.release()}`,
  memoryGB: Math.round(os.totalmem() / 2 ** 30),
  // Other work on the machine skews every figure; a load well above 0 at the start means a noisy run.
  loadAverage: { atStart: loadAtStart, atEnd: os.loadavg().map((n) => Number(n.toFixed(2))) },
});

function writeResults(results: object) {
  const json = `${JSON.stringify(results, null, 2)}\n`;
  if (args.stdout) {
    process.stdout.write(json);
  } else {
    mkdirSync(path.dirname(path.resolve(args.json!)), { recursive: true });
    writeFileSync(path.resolve(args.json!), json);
    log(`results written to ${path.resolve(args.json!)}`);
  }
}

/** --instances: bench/instances.ts with this file's servers, databases and load. */
async function mainInstances(instances: number, startedAt: Date, loadAtStart: number[]) {
  const result = await runInstances({
    ...settings,
    instances,
    redisUrl: args['redis-url']!,
    rate: int('instance-rate', args['instance-rate'], 1),
    loginRate: int('instance-login-rate', args['instance-login-rate'], 1),
    stickyRefresh: args['sticky-refresh']!,
    connections: settings.pacedConnections,
    keepData: args['keep-data']!,
    dataDirs,
    log,
    baseEnvironment,
    startServer: (script, env) => startServer(script, env, args['server-node-args']!.split(' ').filter(Boolean)),
    createPostgresDatabase,
    dropPostgresDatabase,
    backendCpuMs,
    logInSessions,
    load,
    median,
    queries: { me: ME, refresh: REFRESH, login: LOGIN },
  });
  console.log(formatInstances(result));
  writeResults({
    startedAt: startedAt.toISOString(),
    machine: machine(loadAtStart),
    settings: { ...settings, argon2: 'argon2id m=19456 t=2 p=1' },
    instances: result,
  });
  if (result.errors > 0) {
    console.error(`ERROR: --instances had ${result.errors} failed responses, e.g.\n  ${result.errorSamples.slice(0, 3).join('\n  ')}`);
    process.exitCode = 1;
  }
}

async function main() {
  const startedAt = new Date();
  const loadAtStart = os.loadavg().map((n) => Number(n.toFixed(2)));
  if (settings.instances !== undefined) return mainInstances(settings.instances, startedAt, loadAtStart);
  const byEngine: Partial<Record<Engine, EngineResult>> = {};
  // One engine after the other: each gets the whole machine, and its own server and database.
  for (const engine of engines) byEngine[engine] = await runEngine(engine);
  const first = byEngine[engines[0]!]!;

  const sqlite = byEngine.sqlite;
  const postgres = byEngine.postgres;
  // The engines ran minutes apart, so these are ratios of medians, not of paired rounds.
  const over = (phase: string) => {
    const a = postgres?.phases[phase]?.median.rps;
    const b = sqlite?.phases[phase]?.median.rps;
    return a !== undefined && b !== undefined && b > 0 ? a / b : null;
  };
  const engineTargets = {
    mePostgresOverSqlite: { value: over('me'), target: '>= 0.9', min: 0.9 },
    refreshPostgresOverSqlite: { value: over('refresh'), target: '>= 0.5', min: 0.5 },
    loginPostgresOverSqlite: { value: over('login'), target: '>= 0.95', min: 0.95 },
    // The hash runs on libuv's pool; everything else a login costs runs on the main thread.
    loginMainThreadMsSqlite: { value: sqlite?.phases.login?.median.cpu?.mainMs ?? null, target: '< 2.5', below: 2.5 },
  };
  const sizing = Object.fromEntries(
    engines.map((engine) => {
      const phases = byEngine[engine]!.phases;
      return [engine, { loginsPerCore: perCore(phases.login), refreshesPerCore: perCore(phases.refresh), mePerCore: perCore(phases.me) }];
    }),
  );

  const results = {
    startedAt: startedAt.toISOString(),
    machine: machine(loadAtStart),
    settings: { ...settings, engines, pacedRate: first.pacedRate, argon2: 'argon2id m=19456 t=2 p=1', nodeEnv: 'production' },
    // The first engine's figures (SQLite unless --engine postgres), where a single-engine run always had them.
    phases: first.phases,
    ratios: first.ratios,
    rss: first.rss,
    engines: byEngine,
    engineTargets: Object.fromEntries(
      Object.entries(engineTargets).map(([name, r]) => [name, { value: r.value, target: r.target, met: r.value === null ? null : metTarget(r) }]),
    ),
    // Requests per second per fully used core, from the CPU per request (Gatehouse's threads and, on PostgreSQL, its backends).
    sizingPerCore: sizing,
  };

  for (const engine of engines) {
    if (engines.length > 1) console.log(`\n${ENGINE_NAMES[engine]}\n`);
    printTable(byEngine[engine]!);
  }
  if (engines.length > 1) printSideBySide(byEngine as Record<Engine, EngineResult>, results.engineTargets);
  printSizing(sizing);
  writeResults(results);

  for (const engine of engines) {
    const failed = Object.entries(byEngine[engine]!.phases).filter(([, p]) => p.errors > 0);
    for (const [name, p] of failed) {
      console.error(
        `ERROR: ${ENGINE_NAMES[engine]} phase ${name} had ${p.errors} failed responses, e.g.\n  ${p.rounds
          .flatMap((r) => r.errorSamples)
          .slice(0, 3)
          .join('\n  ')}`,
      );
      process.exitCode = 1;
    }
  }
}

function metTarget(r: { value: number | null; min?: number; max?: number; below?: number }): boolean | null {
  if (r.value !== null && r.below !== undefined) return r.value < r.below;
  if (r.min === undefined && r.max === undefined) return null;
  return r.value !== null && (r.min !== undefined ? r.value >= r.min : r.value <= r.max!);
}

function markdownTable(header: string[], rows: string[][], rightAligned: (column: number) => boolean): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (rightAligned(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => `${'-'.repeat(w + 1)}${rightAligned(i) ? ':' : '-'}`).join('|')}|`, ...rows.map(line)];
}

const fixed = (value: number | null | undefined, digits: number) => (value === null || value === undefined ? '-' : value.toFixed(digits));
const rate = (value: number | null | undefined) => (value === null || value === undefined ? '-' : value.toFixed(value < 100 ? 1 : 0));

/** Both engines' medians per phase, with CPU per request split by thread, then the issue's engine targets. */
function printSideBySide(byEngine: Record<Engine, EngineResult>, targets: Record<string, Ratio>) {
  const names = [...new Set([...Object.keys(byEngine.sqlite.phases), ...Object.keys(byEngine.postgres.phases)])];
  const rows = names.map((name) => {
    const s = byEngine.sqlite.phases[name];
    const p = byEngine.postgres.phases[name];
    return [
      name,
      rate(s?.median.rps),
      rate(p?.median.rps),
      s && p && s.median.rps > 0 ? (p.median.rps / s.median.rps).toFixed(2) : '-',
      fixed(s?.median.p99, 1),
      fixed(p?.median.p99, 1),
      fixed(s?.median.cpu?.mainMs, 2),
      fixed(p?.median.cpu?.mainMs, 2),
      fixed(s?.median.cpu?.otherMs, 2),
      fixed(p?.median.cpu?.otherMs, 2),
      fixed(p?.median.cpu?.databaseMs, 2),
    ];
  });
  const header = [
    'phase',
    'SQLite req/s',
    'PostgreSQL req/s',
    'PG/SQLite',
    'SQLite p99 ms',
    'PG p99 ms',
    'SQLite CPU main ms',
    'PG CPU main ms',
    'SQLite CPU other ms',
    'PG CPU other ms',
    'PG backends CPU ms',
  ];
  const out = ['', 'SQLite and PostgreSQL side by side (medians; CPU per request)', '', ...markdownTable(header, rows, (i) => i > 0), ''];
  const targetRows = Object.entries(targets).map(([name, r]) => [name, fixed(r.value, 2), r.target, r.met === null ? '' : r.met ? 'yes' : 'NO']);
  out.push(...markdownTable(['engine target', 'value', 'target', 'met'], targetRows, () => false));
  console.log(out.join('\n'));
}

function printSizing(sizing: Record<string, { loginsPerCore: number | null; refreshesPerCore: number | null; mePerCore: number | null }>) {
  const rows = Object.entries(sizing).map(([engine, s]) => [
    ENGINE_NAMES[engine as Engine],
    rate(s.loginsPerCore),
    rate(s.refreshesPerCore),
    rate(s.mePerCore),
  ]);
  const out = [
    '',
    'Per core: 1000 ms / CPU per request (Gatehouse main + other threads; PostgreSQL also its backends)',
    '',
    ...markdownTable(['engine', 'logins/s', 'refreshes/s', 'me/s'], rows, (i) => i > 0),
  ];
  console.log(out.join('\n'));
}

function printTable(results: { phases: Record<string, PhaseResult>; ratios: Record<string, Ratio> }) {
  const rows = Object.entries(results.phases).map(([name, p]) => [
    name,
    String(p.connections),
    p.median.rps.toFixed(p.median.rps < 100 ? 1 : 0),
    p.median.p50.toFixed(1),
    p.median.p99.toFixed(1),
    p.median.cpu ? p.median.cpu.mainMs.toFixed(2) : '-',
    p.median.cpu ? p.median.cpu.otherMs.toFixed(2) : '-',
    String(p.errors),
    p.rssMB === null ? '-' : p.rssMB.toFixed(0),
  ]);
  const header = ['phase', 'conns', 'req/s (median)', 'p50 ms', 'p99 ms', 'CPU/req main ms', 'CPU/req other ms', 'errors', 'RSS MB'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const out = [line(header), `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line), ''];
  const ratioHeader = ['ratio', 'value', 'target', 'met'];
  const ratioRows = Object.entries(results.ratios).map(([name, r]) => [
    name,
    r.value === null ? '-' : r.value.toFixed(2),
    r.target,
    r.met === null ? '' : r.met ? 'yes' : 'NO',
  ]);
  const rw = ratioHeader.map((h, i) => Math.max(h.length, ...ratioRows.map((r) => r[i]!.length)));
  const rline = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(rw[i]!)).join(' | ')} |`;
  out.push(rline(ratioHeader), `|${rw.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...ratioRows.map(rline));
  console.log(out.join('\n'));
}

await main();
