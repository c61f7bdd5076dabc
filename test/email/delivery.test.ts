import { readdir, stat } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { EmailSecrets } from '../../src/auth/email-secrets.js';
import { readKeyFile } from '../../src/auth/keys.js';
import { loadConfig } from '../../src/config.js';
import { bearer, createTestApp, registerUser, type TestApp } from '../support/app.js';
import { freshTestDatabase, onPostgres } from '../support/db.js';
import { capturingLogger } from '../support/logs.js';
import { rawDb } from '../support/raw-db.js';
import { startServer } from '../support/server-process.js';
import { startSmtpServer, type TestSmtpServer } from '../support/smtp.js';
import { APP_URL, createMailApp, linkOf, mailsTo, mailTo, registerWithEmail, SUBJECT, uniqueEmail } from './support.js';

// Delivery: the outbox and its sender against a real SMTP server that goes down, refuses, hangs, or is
// shared by two senders; a server process killed with mail pending; the development outbox; the settings.
// On SQLite, and on PostgreSQL in `npm run test:postgres`.

const REQUEST_RESET = `mutation ($email: String!) { requestPasswordReset(email: $email) }`;
const REQUEST_CODE = `mutation ($email: String!) { requestSignInCode(email: $email) }`;
const RESET = `mutation ($token: String!, $password: String!) { resetPassword(token: $token, newPassword: $password) { __typename ... on AuthPayload { accessToken user { id } } ... on Error { code message } } }`;
const VERIFY = `mutation ($token: String!) { verifyEmail(token: $token) { __typename ... on User { id email emailVerified } ... on Error { code message } } }`;
const MAIL_FROM = 'Gatehouse <no-reply@gatehouse.test>';

// Everything a test starts is ended when that test ends (onTestFinished): vitest ignores an afterAll
// registered inside a test, so createTestApp's own afterAll does not run for apps made here.

/** A real SMTP server for one test (stopping it twice is harmless). */
async function ownSmtpServer(port?: number): Promise<TestSmtpServer> {
  const smtp = await startSmtpServer(port === undefined ? {} : { port });
  onTestFinished(() => smtp.stop());
  return smtp;
}

/** An app for one test, closed (its sender stopped) when the test ends. */
async function closedAfterTest(app: Promise<TestApp>): Promise<TestApp> {
  const started = await app;
  onTestFinished(() => started.close());
  return started;
}

/** The outbox row of the mail of `kind` to `recipient`, read past the stores. */
async function outboxRow(app: TestApp, kind: string, recipient: string) {
  const rows = await rawDb(app.services).mailOutbox.findMany({ where: { kind, recipient } });
  expect(rows.length, `outbox rows of ${kind} to ${recipient}`).toBeLessThanOrEqual(1);
  return rows[0];
}

describe('when the SMTP server is down or refuses', { timeout: 90_000 }, () => {
  it('answers at once while SMTP is down, and delivers the mail once the server is back on its port', async () => {
    const smtp = await ownSmtpServer();
    const app = await closedAfterTest(createMailApp(smtp, { MAIL_MAX_ATTEMPTS: '100' }));
    const user = await registerWithEmail(app);
    await mailTo(smtp, user.email, SUBJECT.verify);
    await smtp.stop();

    expect((await app.gql(REQUEST_RESET, { email: user.email })).data.requestPasswordReset).toBe(true);
    // The sender tried and failed at least once while the server was away: the row waits for a retry.
    await expect
      .poll(async () => (await outboxRow(app, 'reset_password', user.email))?.attempts ?? 0, { timeout: 20_000, interval: 100 })
      .toBeGreaterThanOrEqual(1);
    const waiting = await outboxRow(app, 'reset_password', user.email);
    expect(waiting?.state).toBe('pending');
    expect(waiting?.lastError).toMatch(/SMTP send failed/);

    const back = await ownSmtpServer(smtp.port);
    const { token } = linkOf(await mailTo(back, user.email, SUBJECT.reset));
    await expect.poll(async () => (await outboxRow(app, 'reset_password', user.email))?.state, { timeout: 10_000 }).toBe('sent');
    expect((await outboxRow(app, 'reset_password', user.email))!.attempts).toBeGreaterThanOrEqual(1);
    expect((await app.gql(RESET, { token, password: 'a brand new password' })).data.resetPassword.__typename).toBe('AuthPayload');
  });

  it('retries a 451 with growing waits, and delivers once the server accepts', async () => {
    const smtp = await ownSmtpServer();
    const { logger, entries } = capturingLogger('debug');
    // Base 0.5 s: the waits after attempts 1, 2, 3 fall in [0.4, 0.6], [0.8, 1.2], [1.6, 2.4] s (±20% jitter), never overlapping.
    const app = await closedAfterTest(
      createMailApp(smtp, { MAIL_MAX_ATTEMPTS: '100', MAIL_RETRY_BASE_SECONDS: '0.5', MAIL_RETRY_MAX_SECONDS: '4' }, { logger }),
    );
    const user = await registerWithEmail(app);
    await mailTo(smtp, user.email, SUBJECT.verify);
    smtp.rejectWith(451);

    expect((await app.gql(REQUEST_RESET, { email: user.email })).data.requestPasswordReset).toBe(true);
    const mailId = () => entries().find((entry) => entry.event === 'mail_request' && entry.kind === 'reset_password')?.mailId;
    const retries = () => entries().filter((entry) => entry.event === 'mail_send' && entry.outcome === 'retry' && entry.mailId === mailId());
    await expect.poll(() => retries().length, { timeout: 30_000, interval: 100 }).toBeGreaterThanOrEqual(3);
    expect(mailsTo(smtp, user.email).filter((mail) => SUBJECT.reset.test(mail.subject ?? ''))).toHaveLength(0);

    const [first, second, third] = retries() as { attempt: number; retryInMs: number; reason: string }[];
    expect([first!.attempt, second!.attempt, third!.attempt]).toEqual([1, 2, 3]);
    expect(first!.reason).toMatch(/451/);
    // Exponential backoff: each wait longer than the one before.
    expect(second!.retryInMs).toBeGreaterThan(first!.retryInMs);
    expect(third!.retryInMs).toBeGreaterThan(second!.retryInMs);

    smtp.rejectWith(null);
    await mailTo(smtp, user.email, SUBJECT.reset, 30_000);
    await expect.poll(async () => (await outboxRow(app, 'reset_password', user.email))?.state, { timeout: 10_000 }).toBe('sent');
    expect((await outboxRow(app, 'reset_password', user.email))!.attempts).toBeGreaterThanOrEqual(3);
  });

  it('marks a mail that keeps failing failed after MAIL_MAX_ATTEMPTS, logs an error, and never logs its link token or code', async () => {
    const smtp = await ownSmtpServer();
    const { logger, lines, entries } = capturingLogger('debug');
    const app = await closedAfterTest(createMailApp(smtp, { MAIL_MAX_ATTEMPTS: '2' }, { logger }));
    const user = await registerWithEmail(app);
    await mailTo(smtp, user.email, SUBJECT.verify);
    // Temporary refusals: retried, until MAIL_MAX_ATTEMPTS.
    smtp.rejectWith(451);

    expect((await app.gql(REQUEST_RESET, { email: user.email })).data.requestPasswordReset).toBe(true);
    expect((await app.gql(REQUEST_CODE, { email: user.email })).data.requestSignInCode).toBe(true);
    for (const kind of ['reset_password', 'sign_in']) {
      await expect.poll(async () => (await outboxRow(app, kind, user.email))?.state, { timeout: 20_000, interval: 100 }).toBe('failed');
      const row = (await outboxRow(app, kind, user.email))!;
      expect(row.attempts).toBe(2);
      expect(row.lastError).toMatch(/451/);
      const failure = entries().filter((entry) => entry.mailId === row.id && entry.outcome === 'failed');
      expect(failure).toHaveLength(1);
      expect(failure[0]).toMatchObject({ level: 50, event: 'mail_send', kind, attempt: 2 });
    }
    expect(smtp.messages.filter((mail) => !SUBJECT.verify.test(mail.subject ?? ''))).toHaveLength(0);

    // The link tokens and the code these mails would have carried, derived as the sender derives them.
    const keys = await readKeyFile(app.services.config.keysFile);
    const secrets = new EmailSecrets(Buffer.from(keys.refreshTokenSecret, 'utf8'));
    const tokenIds = (await rawDb(app.services).mailOutbox.findMany({ where: { recipient: user.email } })).map((row) => row.tokenId!);
    expect(tokenIds).toHaveLength(3);
    const log = lines.join('');
    expect(log).toContain(user.user.id); // the capture works: the sender's lines are there
    for (const tokenId of tokenIds) expect(log).not.toContain(secrets.linkToken(tokenId));
    for (const line of lines) {
      expect(line).not.toMatch(/token=/);
      expect(line).not.toMatch(/[A-Za-z0-9_-]{43}/);
    }
    const signInTokenId = (await outboxRow(app, 'sign_in', user.email))!.tokenId!;
    expect(lines.some((line) => new RegExp(`\\b${secrets.code(signInTokenId)}\\b`).test(line))).toBe(false);
  });
});

describe('a permanent refusal', () => {
  it('(5xx) fails the mail at once: retrying would not change it', async () => {
    const smtp = await ownSmtpServer();
    const app = await closedAfterTest(createMailApp(smtp, { MAIL_MAX_ATTEMPTS: '5' }));
    const user = await registerWithEmail(app);
    await mailTo(smtp, user.email, SUBJECT.verify);
    smtp.rejectWith(550);
    expect((await app.gql(REQUEST_RESET, { email: user.email })).data.requestPasswordReset).toBe(true);
    await expect.poll(async () => (await outboxRow(app, 'reset_password', user.email))?.state, { timeout: 20_000, interval: 100 }).toBe('failed');
    expect((await outboxRow(app, 'reset_password', user.email))?.attempts).toBe(1);
  });
});

describe('the GraphQL answer does not wait on SMTP', { timeout: 90_000 }, () => {
  it('answers requestPasswordReset and requestSignInCode quickly while the SMTP server accepts and never speaks', async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    let connections = 0;
    silent.on('connection', () => (connections += 1));
    const closeSilent = () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        silent.close(() => resolve());
      });
    try {
      const app = await closedAfterTest(createTestApp({ SMTP_URL: `smtp://127.0.0.1:${port}`, MAIL_FROM, APP_URL, MAIL_MAX_ATTEMPTS: '100' }));
      const user = await registerWithEmail(app);
      // The sender is inside a delivery that waits on the silent server (the transport's 10 s timeout).
      await expect.poll(() => connections, { timeout: 10_000, interval: 20 }).toBeGreaterThanOrEqual(1);

      for (const [query, field] of [
        [REQUEST_RESET, 'requestPasswordReset'],
        [REQUEST_CODE, 'requestSignInCode'],
      ] as const) {
        const started = performance.now();
        const answer = await app.gql(query, { email: user.email });
        const elapsed = performance.now() - started;
        expect(answer.data[field]).toBe(true);
        expect(elapsed).toBeLessThan(5_000);
      }
      // Both requests are queued, waiting on the hanging delivery, not lost.
      expect(await app.services.db.mailOutbox.countWaiting()).toBeGreaterThanOrEqual(3);
    } finally {
      // Cut the hanging connections, so the app's close (its sender's stop) does not wait out the timeout.
      await closeSilent();
    }
  });
});

/** One GraphQL operation over HTTP against a server process. */
async function httpGql(base: string, query: string, variables: Record<string, unknown> = {}) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as { data?: any; errors?: { message: string }[] };
}

describe('a server process killed with mail pending', { timeout: 180_000 }, () => {
  it('delivers the mail after a restart on the same data, and its link works', async () => {
    // A port with nothing on it: the mail stays pending while the first process runs.
    const probe = await startSmtpServer();
    const port = probe.port;
    await probe.stop();
    const database = onPostgres ? await freshTestDatabase() : undefined;
    onTestFinished(() => database?.drop());
    const env = {
      SMTP_URL: `smtp://127.0.0.1:${port}`,
      MAIL_FROM,
      APP_URL,
      MAIL_MAX_ATTEMPTS: '100',
      MAIL_POLL_INTERVAL_SECONDS: '0.2',
      // About a second between attempts, each over in milliseconds (connection refused): killed right after a
      // logged retry, the process holds no claim on the row (a claim would make the next process wait out its lease).
      MAIL_RETRY_BASE_SECONDS: '1',
      MAIL_RETRY_MAX_SECONDS: '1',
      RATE_LIMIT_EMAIL_RECIPIENT: '1000/1m',
      RATE_LIMIT_EMAIL_CLIENT: '1000/1m',
      ...(database ? { DATABASE_URL: database.url } : {}),
    };
    const first = await startServer(env);
    const email = uniqueEmail('killed');
    const registered = await httpGql(first.base, `mutation ($input: RegisterInput!) { register(input: $input) { __typename } }`, {
      input: { username: `killed${Date.now()}`, password: 'a long enough password', email },
    });
    expect(registered.data?.register?.__typename).toBe('AuthPayload');
    expect((await httpGql(first.base, REQUEST_RESET, { email })).data?.requestPasswordReset).toBe(true);

    // Wait for a failed attempt of the reset mail (logged at warn), then kill at once.
    const retriedReset = () =>
      first
        .output()
        .split('\n')
        .some((line) => line.includes('"kind":"reset_password"') && line.includes('"outcome":"retry"'));
    await expect.poll(retriedReset, { timeout: 30_000, interval: 20 }).toBe(true);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');

    const smtp = await ownSmtpServer(port);
    const second = await startServer(env, first.dataDir);
    onTestFinished(() => second.stop().then(() => undefined));
    const { token } = linkOf(await mailTo(smtp, email, SUBJECT.reset, 60_000));
    const reset = await httpGql(second.base, RESET, { token, password: 'a brand new password' });
    expect(reset.data?.resetPassword?.__typename).toBe('AuthPayload');
  });
});

describe('two apps on one database, each with a sender', { timeout: 120_000 }, () => {
  it('delivers each mail exactly once', async () => {
    const smtp = await ownSmtpServer();
    const a = await closedAfterTest(createMailApp(smtp));
    const b = await closedAfterTest(createMailApp(smtp, { DATABASE_URL: a.services.config.databaseUrl, KEYS_FILE: a.services.config.keysFile }));
    const apps = [a, b];
    const users = await Promise.all(Array.from({ length: 10 }, (_, index) => registerWithEmail(apps[index % 2]!)));
    // Requests through both apps at once: each app's sender is woken, the other's finds the rows by polling.
    const answers = await Promise.all(users.map((user, index) => apps[(index + 1) % 2]!.gql(REQUEST_RESET, { email: user.email })));
    expect(answers.every((answer) => answer.data.requestPasswordReset === true)).toBe(true);

    for (const user of users) await mailTo(smtp, user.email, SUBJECT.reset, 30_000);
    await expect.poll(() => a.services.db.mailOutbox.countWaiting(), { timeout: 20_000 }).toBe(0);
    // Time for a second copy to arrive, were a row ever taken by both senders.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    for (const user of users) {
      const subjects = mailsTo(smtp, user.email).map((mail) => mail.subject ?? '');
      expect(
        subjects.filter((subject) => SUBJECT.verify.test(subject)),
        user.email,
      ).toHaveLength(1);
      expect(
        subjects.filter((subject) => SUBJECT.reset.test(subject)),
        user.email,
      ).toHaveLength(1);
    }
    const rows = await rawDb(a.services).mailOutbox.findMany({ where: { recipient: { in: users.map((user) => user.email) } } });
    expect(rows).toHaveLength(20);
    expect(rows.every((row) => row.state === 'sent')).toBe(true);
  });
});

describe('the development outbox (no SMTP_URL)', { timeout: 60_000 }, () => {
  it('writes each mail to DATA_DIR/mail (0600) and logs one line with its link, which works', async () => {
    const { logger, entries } = capturingLogger('debug');
    const app = await closedAfterTest(createTestApp({ APP_URL }, { logger }));
    const user = await registerWithEmail(app);
    const dir = path.join(app.services.config.dataDir, 'mail');
    const emlFiles = async () => (await readdir(dir).catch(() => [] as string[])).filter((name) => name.endsWith('.eml'));
    await expect.poll(emlFiles, { timeout: 20_000, interval: 50 }).toHaveLength(1);
    await expect.poll(async () => (await rawDb(app.services).mailOutbox.findMany({ where: { state: 'sent' } })).length, { timeout: 10_000 }).toBe(1);
    expect(await emlFiles()).toHaveLength(1);
    const [file] = await emlFiles();
    expect((await stat(path.join(dir, file!))).mode & 0o777).toBe(0o600);

    const notices = entries().filter((entry) => entry.event === 'mail_outbox');
    expect(notices).toHaveLength(1);
    expect(notices[0]!.to).toBe(user.email);
    const link = /(https?:\/\/\S+\?token=[A-Za-z0-9_-]+)/.exec(String(notices[0]!.msg));
    expect(link, String(notices[0]!.msg)).not.toBeNull();
    const url = new URL(link![1]!);
    expect(url.origin + url.pathname).toBe(`${APP_URL}/verify-email`);
    const verified = await app.gql(VERIFY, { token: url.searchParams.get('token') });
    expect(verified.data.verifyEmail).toMatchObject({ __typename: 'User', email: user.email, emailVerified: true });
  });
});

describe('settings', { timeout: 60_000 }, () => {
  it('refuses production with email on and no SMTP_URL, MAIL_FROM or APP_URL, naming each', () => {
    let message = '';
    try {
      loadConfig({ NODE_ENV: 'production' });
    } catch (error) {
      message = (error as Error).message;
    }
    for (const name of ['SMTP_URL', 'MAIL_FROM', 'APP_URL']) expect(message).toMatch(new RegExp(`${name}: required when NODE_ENV=production`));
    // One missing is named alone.
    expect(() => loadConfig({ NODE_ENV: 'production', SMTP_URL: 'smtp://mail.example.test:587', MAIL_FROM: 'a@example.test' })).toThrow(/APP_URL/);
    expect(() =>
      loadConfig({ NODE_ENV: 'production', SMTP_URL: 'smtp://mail.example.test:587', MAIL_FROM: 'a@example.test', APP_URL: 'https://app.example.test' }),
    ).not.toThrow();
    expect(loadConfig({ NODE_ENV: 'production', EMAIL_ENABLED: 'false' }).email.enabled).toBe(false);
  });

  it('refuses EMAIL_VERIFICATION=required with EMAIL_ENABLED=false', () => {
    expect(() => loadConfig({ EMAIL_ENABLED: 'false', EMAIL_VERIFICATION: 'required' })).toThrow(
      /EMAIL_VERIFICATION: cannot be required with EMAIL_ENABLED=false/,
    );
    expect(loadConfig({ EMAIL_ENABLED: 'false', EMAIL_VERIFICATION: 'optional' }).email.enabled).toBe(false);
  });

  it('with EMAIL_ENABLED=false, every email mutation answers FEATURE_DISABLED and nothing reaches the outbox', async () => {
    const smtp = await ownSmtpServer();
    const app = await closedAfterTest(createMailApp(smtp, { EMAIL_ENABLED: 'false' }));
    expect(app.services.mailSender).toBeNull();
    const user = await registerUser(app, { email: uniqueEmail() });
    const auth = bearer(user.accessToken);
    const email = uniqueEmail();
    const token = 'A'.repeat(43);
    const mutations: [string, Record<string, unknown>, Record<string, string>?][] = [
      ['mutation { requestEmailVerification }', {}, auth],
      ['mutation ($email: String) { requestEmailVerification(email: $email) }', { email }],
      [VERIFY, { token }],
      [REQUEST_RESET, { email }],
      [RESET, { token, password: 'a brand new password' }],
      [
        'mutation ($email: String!, $password: String!) { requestEmailChange(newEmail: $email, currentPassword: $password) { __typename } }',
        { email, password: user.password },
        auth,
      ],
      ['mutation ($token: String!) { confirmEmailChange(token: $token) { __typename } }', { token }],
      [REQUEST_CODE, { email }],
      ['mutation ($email: String!, $code: String!) { signInWithCode(email: $email, code: $code) { __typename } }', { email, code: '123456' }],
      ['mutation ($token: String!) { signInWithLink(token: $token) { __typename } }', { token }],
    ];
    const codes: Record<string, unknown> = {};
    for (const [query, variables, headers] of mutations) {
      const answer = await app.gql(query, variables, headers);
      codes[query] = answer.errors?.[0]?.extensions?.code;
    }
    expect(codes).toEqual(Object.fromEntries(mutations.map(([query]) => [query, 'FEATURE_DISABLED'])));
    expect(await rawDb(app.services).mailOutbox.count()).toBe(0);
    expect(await rawDb(app.services).emailToken.count()).toBe(0);
    expect(smtp.messages).toHaveLength(0);
  });
});
