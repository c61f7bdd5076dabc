import { mkdtempSync, openSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { PasswordHasher } from '../src/auth/passwords.js';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { threadCpuMs } from './cpu.js';
import { BENCH_PASSWORD, seedDatabase, usernameOf } from './seed.js';

// `npx tsx bench/login-path.ts`: where a login's main-thread CPU goes, in process and one request at a
// time (no contention, no HTTP). Builds the app as the server does (NODE_ENV=production, SQLite with
// SQLITE_SYNCHRONOUS=FULL, audit lines written to a file) on a seeded database and measures, per call,
// the main thread's CPU (/proc, so argon2's pool threads and the fsync thread are not counted) of:
// the user read, the session start (startIfCurrent), the hash, the access token's signature,
// AccountService.login, and the whole GraphQL login through yoga.fetch. `--only <step>` runs one step
// (to profile it: node --cpu-prof --import tsx bench/login-path.ts --only accounts.login). See README.md, "Performance".

const { values: args } = parseArgs({
  options: {
    iterations: { type: 'string', default: '2000' },
    users: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '3' },
    // e.g. "accounts.login" alone, to profile it with node --cpu-prof
    only: { type: 'string' },
  },
});
const iterations = Number(args.iterations);
const users = Number(args.users);
const rounds = Number(args.rounds);

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-login-path-'));
try {
  const { databaseUrl } = await seedDatabase(dataDir, users);
  const config = loadConfig({
    NODE_ENV: 'production',
    // No mail is measured here (and production needs SMTP_URL with email on).
    EMAIL_ENABLED: 'false',
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl,
    // The login itself is measured here, not the limits: every iteration logs in as another user.
    RATE_LIMIT_LOGIN: '1000000/1m',
    RATE_LIMIT_LOGIN_ACCOUNT: '1000000/1m',
    LOG_LEVEL: 'info',
  });
  const logger = pino({ level: 'info', base: { service: 'gatehouse' } }, pino.destination({ fd: openSync(path.join(dataDir, 'audit.log'), 'a'), sync: false }));
  const app = await createApp(config, { logger });
  const { db, sessions, accessTokens, accounts } = app.services;
  const meta = { userAgent: 'login-path-bench', ip: '127.0.0.1', network: '127.0.0.1' };
  const seeded = await Promise.all(Array.from({ length: Math.min(users, 200) }, (_, i) => db.users.findByUsernameKey(usernameOf(i))));
  const userAt = (i: number) => seeded[i % seeded.length]!;

  /** Main-thread CPU per call in µs, `count` calls one after another. */
  const measure = async (count: number, call: (i: number) => Promise<unknown>): Promise<number> => {
    for (let i = 0; i < Math.min(count, 200); i++) await call(i); // warm-up
    const before = threadCpuMs(process.pid)!.mainMs;
    for (let i = 0; i < count; i++) await call(i);
    return ((threadCpuMs(process.pid)!.mainMs - before) / count) * 1000;
  };
  const login = async (i: number) => {
    const response = await app.yoga.fetch('http://gatehouse.bench/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': `10.0.${(i >> 8) & 255}.${i & 255}` },
      body: JSON.stringify({
        query: 'mutation Login($input: LoginInput!) { login(input: $input) { __typename ... on AuthPayload { accessToken refreshToken } } }',
        variables: { input: { username: usernameOf(i % users), password: BENCH_PASSWORD } },
      }),
    });
    const answer = (await response.json()) as { data?: { login?: { __typename?: string } } };
    if (answer.data?.login?.__typename !== 'AuthPayload') throw new Error(`login failed: ${JSON.stringify(answer)}`);
  };

  const hasher = new PasswordHasher(config.argon2);
  const results: Record<string, number[]> = {};
  const step = async (name: string, count: number, call: (i: number) => Promise<unknown>) => {
    if (args.only !== undefined && args.only !== name) return;
    const us = await measure(count, call);
    results[name] = [...(results[name] ?? []), us];
  };
  for (let round = 0; round < rounds; round++) {
    await step('users.findByUsernameKey', iterations, (i) => db.users.findByUsernameKey(usernameOf(i % users)));
    await step('sessions.startIfCurrent', iterations, (i) => sessions.startIfCurrent(userAt(i).id, meta, userAt(i).credentialsVersion));
    // The hash's own main-thread part (argon2 runs on libuv's pool).
    await step('PasswordHasher.verify', Math.ceil(iterations / 10), () => hasher.verify(userAt(0).passwordHash, BENCH_PASSWORD));
    await step('accessTokens.sign', iterations, (i) => accessTokens.sign(userAt(i).id, `session-${i}`));
    // All of the above together, and then through GraphQL (validation, lockout, audit line, answer).
    await step('accounts.login', Math.ceil(iterations / 10), (i) => accounts.login({ username: usernameOf(i % users), password: BENCH_PASSWORD }, meta));
    await step('GraphQL login', Math.ceil(iterations / 10), login);
  }
  const width = Math.max(...Object.keys(results).map((name) => name.length));
  console.log(`main-thread CPU per call, µs (${rounds} rounds; median [all])`);
  for (const [name, values] of Object.entries(results)) {
    const sorted = [...values].sort((a, b) => a - b);
    console.log(`${name.padEnd(width)}  ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0).padStart(6)}  [${values.map((v) => v.toFixed(0)).join(', ')}]`);
  }
  await app.close();
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
