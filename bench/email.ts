import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SMTPServer } from 'smtp-server';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { applyMigrations } from '../src/db/migrate.js';
import { createLogger } from '../src/logger.js';

// `npx tsx bench/email.ts [--requests 300] [--database-url postgresql://…]`: the email flows in process
// (yoga.fetch, no HTTP), with the outbox sender delivering to a real SMTP server on 127.0.0.1.
// 1. requestPasswordReset's answer time for registered and unregistered addresses, alternated (the
//    answer must not tell them apart; the sender works in the background meanwhile).
// 2. Delivery: how long the outbox takes to deliver a burst of resets, in mails per second.
// Production settings (OWASP argon2, SQLITE_SYNCHRONOUS=FULL) except the mail limits. See README.md, "Performance".

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '300' },
    'database-url': { type: 'string' },
  },
});
const requests = Number(args.requests);
// Registered addresses: each gets one reset in the burst, so every mail of the burst is sent.
const USERS = 200;

let received = 0;
const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  logger: false,
  onData(stream, _session, callback) {
    stream.on('data', () => {});
    stream.on('end', () => {
      received += 1;
      callback();
    });
  },
});
await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
const smtpPort = (smtp.server.address() as AddressInfo).port;

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-email-bench-'));
try {
  const config = loadConfig({
    NODE_ENV: 'production',
    DATA_DIR: dataDir,
    ...(args['database-url'] ? { DATABASE_URL: args['database-url'] } : {}),
    SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
    MAIL_FROM: 'Bench <bench@example.test>',
    APP_URL: 'https://app.example.test',
    RATE_LIMIT_EMAIL_RECIPIENT: '100000/1h',
    RATE_LIMIT_EMAIL_CLIENT: '100000/1h',
    RATE_LIMIT_REGISTER: '100000/1h',
    EMAIL_VERIFICATION: 'off',
    LOG_LEVEL: 'silent',
  });
  await applyMigrations(config.databaseUrl);
  const app = await createApp(config, { logger: createLogger('silent') });
  const gql = async (query: string, variables: Record<string, unknown>) => {
    const response = await app.yoga.fetch('http://bench/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query, variables }),
    });
    return (await response.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
  };
  const known: string[] = [];
  for (let i = 0; i < USERS; i++) {
    const email = `known${i}@example.test`;
    await gql('mutation ($input: RegisterInput!) { register(input: $input) { __typename } }', {
      input: { username: `known${i}`, password: 'a long bench password', email },
    });
    known.push(email);
  }
  const reset = `mutation ($email: String!) { requestPasswordReset(email: $email) }`;
  const time = async (email: string) => {
    const started = process.hrtime.bigint();
    const answer = await gql(reset, { email });
    if (answer.data?.requestPasswordReset !== true) throw new Error(JSON.stringify(answer));
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  // Warm-up, then alternate registered / unregistered.
  for (let i = 0; i < 40; i++) await time(i % 2 ? known[i % known.length]! : `nobody${i}@example.test`);
  const knownMs: number[] = [];
  const unknownMs: number[] = [];
  for (let i = 0; i < requests; i++) {
    knownMs.push(await time(known[i % known.length]!));
    unknownMs.push(await time(`nobody-${i}@example.test`));
  }
  const stats = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(2);
    return `median ${at(0.5)} ms, p95 ${at(0.95)} ms`;
  };
  console.log(`engine: ${app.services.db.engine}; ${requests} of each, alternated`);
  console.log(`requestPasswordReset, registered address:   ${stats(knownMs)}`);
  console.log(`requestPasswordReset, unregistered address: ${stats(unknownMs)}`);

  // Delivery of a burst: every registered address gets a reset, as fast as the outbox can send.
  await waitUntil(async () => (await app.services.db.mailOutbox.countWaiting()) === 0, 120_000);
  const burst = known.length;
  const before = received;
  const started = performance.now();
  for (const email of known) await gql(reset, { email });
  const queuedMs = performance.now() - started;
  await waitUntil(async () => (await app.services.db.mailOutbox.countWaiting()) === 0, 300_000);
  const totalMs = performance.now() - started;
  console.log(
    `burst of ${burst} resets to ${burst} addresses: queued in ${(queuedMs / 1000).toFixed(2)} s, outbox empty after ${(totalMs / 1000).toFixed(2)} s; ` +
      `${received - before} mails delivered (${((received - before) / (totalMs / 1000)).toFixed(0)}/s)`,
  );
  await app.close();
} finally {
  smtp.close(() => {});
  rmSync(dataDir, { recursive: true, force: true });
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
