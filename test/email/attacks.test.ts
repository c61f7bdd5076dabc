import { createHash, hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPostgresUrl } from '../../src/db/migrate.js';
import { errorCode, readTable } from '../support/accounts.js';
import { bearer, type GraphQLResponse, type TestApp } from '../support/app.js';
import { capturingLogger } from '../support/logs.js';
import type { ParsedMail, TestSmtpServer } from '../support/smtp.js';
import { AUTH_RESULT, codeOf, createMailApp, linkOf, mailsTo, mailTo, registerWithEmail, SUBJECT, testSmtpServer, uniqueEmail } from './support.js';

// What an attacker tries against the email flows: learn which addresses have accounts (from the answer,
// its timing, or the limits), let a mail scanner's GET use a link up, flood an address or send mail from
// one client to many, read links and codes out of a copy of the database or the logs, and overload the
// input checks. Each test here fails if the protection it names is taken away.

const REQUEST_RESET = `mutation ($email: String!) { requestPasswordReset(email: $email) }`;
const REQUEST_CODE = `mutation ($email: String!) { requestSignInCode(email: $email) }`;
const REQUEST_VERIFICATION = `mutation ($email: String) { requestEmailVerification(email: $email) }`;
const REQUEST_CHANGE = `mutation ($email: String!, $password: String!) { requestEmailChange(newEmail: $email, currentPassword: $password) { __typename ... on EmailChangeRequested { email } ... on Error { code message } } }`;
const VERIFY = `mutation ($token: String!) { verifyEmail(token: $token) { __typename ... on User { id email emailVerified } ... on Error { code message } } }`;
const RESET = `mutation ($token: String!, $password: String!) { resetPassword(token: $token, newPassword: $password) { __typename ... on AuthPayload { accessToken user { id } } ... on Error { code message } } }`;
const CONFIRM_CHANGE = `mutation ($token: String!) { confirmEmailChange(token: $token) { __typename ... on User { id email emailVerified } ... on Error { code message } } }`;
const WITH_CODE = `mutation ($email: String!, $code: String!) { signInWithCode(email: $email, code: $code) { ${AUTH_RESULT} } }`;
const WITH_LINK = `mutation ($token: String!) { signInWithLink(token: $token) { ${AUTH_RESULT} } }`;

// Limits far above what a test does, unless the test is about a limit.
const HIGH_LIMITS = {
  RATE_LIMIT_EMAIL_RECIPIENT: '100000/1m',
  RATE_LIMIT_EMAIL_CLIENT: '100000/1m',
  RATE_LIMIT_LOGIN: '100000/1m',
  RATE_LIMIT_LOGIN_ACCOUNT: '100000/1m',
  LOCKOUT_THRESHOLD: '100000',
};

const from = (ip: string) => ({ 'x-forwarded-for': ip });

// At the top level, not in beforeAll: testSmtpServer registers its afterAll clean-up, which vitest ignores
// when registered inside a hook.
const smtp: TestSmtpServer = await testSmtpServer();

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Every mail asked for so far has been sent, dropped or given up on. */
const outboxIdle = (app: TestApp) => until(async () => (await app.services.db.mailOutbox.countWaiting()) === 0, 'the outbox to be empty');

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 ? sorted[Math.floor(middle)]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** A 6-digit code as a word of its own: a longer run of digits (a timestamp) does not count as holding it. */
const holdsCode = (text: string, code: string) => new RegExp(`(?<![0-9A-Za-z])${code}(?![0-9A-Za-z])`).test(text);

/** A cell of a raw row as text, whatever the engine's type for it (Date, bigint, Buffer). */
function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return `${value.toString('latin1')} ${value.toString('hex')} ${value.toString('base64')}`;
  return String(value);
}

/** Every row of `table`, raw, as someone holding the database reads it. */
async function rawRows(app: TestApp, table: string): Promise<Record<string, unknown>[]> {
  return readTable(app, `SELECT * FROM "${table}"`);
}

async function everyTable(app: TestApp): Promise<string[]> {
  const sql = isPostgresUrl(app.services.config.databaseUrl)
    ? `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
    : `SELECT name FROM sqlite_master WHERE type = 'table'`;
  return (await readTable(app, sql)).map((row) => String(row.name));
}

// ---- 1. Enumeration --------------------------------------------------------------------------------

describe('the answers do not tell which addresses have accounts', { timeout: 180_000 }, () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await createMailApp(smtp, HIGH_LIMITS);
  });
  // createTestApp's own clean-up is not registered from inside a hook.
  afterAll(() => app.close());

  const TRIES = 30;

  /**
   * As in test/security/enumeration.test.ts: one call of each kind back to back per try, alternating which
   * goes first, and the median of the paired differences, so a burst of load on the shared machine hits
   * both sides of a pair alike. Each call starts with the outbox empty, so the sender's work for the call
   * before (resolving, sending) does not land in the next measurement.
   */
  async function comparePaired(
    label: string,
    sides: {
      before?: (i: number) => Promise<void>;
      known: (i: number) => Promise<GraphQLResponse<unknown>>;
      unknown: (i: number) => Promise<GraphQLResponse<unknown>>;
    },
  ) {
    const run = async (kind: 'known' | 'unknown', i: number) => {
      await outboxIdle(app);
      const started = performance.now();
      const answer = await sides[kind](i);
      return { ms: performance.now() - started, answer };
    };
    // Warm-up, not measured.
    for (let i = 0; i < 3; i++) {
      await sides.before?.(-1 - i);
      await run('known', -1 - i);
      await run('unknown', -1 - i);
    }
    const times = { known: [] as number[], unknown: [] as number[] };
    const differences: number[] = [];
    for (let i = 0; i < TRIES; i++) {
      await sides.before?.(i);
      const order = i % 2 === 0 ? (['known', 'unknown'] as const) : (['unknown', 'known'] as const);
      const answers: Partial<Record<'known' | 'unknown', unknown>> = {};
      for (const kind of order) {
        const { ms, answer } = await run(kind, i);
        answers[kind] = answer;
        times[kind].push(ms);
      }
      // Byte for byte the same answer, and never RATE_LIMITED / LOGIN_LOCKED.
      expect(answers.unknown).toEqual(answers.known);
      differences.push(times.known[i]! - times.unknown[i]!);
    }
    const knownMedian = median(times.known);
    const unknownMedian = median(times.unknown);
    const difference = median(differences);
    console.log(
      `${label}: medians over ${TRIES} tries: known ${knownMedian.toFixed(2)} ms, unknown ${unknownMedian.toFixed(2)} ms, paired difference ${difference.toFixed(2)} ms`,
    );
    expect(Math.abs(difference) / Math.min(knownMedian, unknownMedian)).toBeLessThan(0.25);
  }

  it('requestPasswordReset: true for both, in the same time', { retry: 2 }, async () => {
    const user = await registerWithEmail(app);
    await comparePaired('requestPasswordReset', {
      known: () => app.gql(REQUEST_RESET, { email: user.email }),
      unknown: () => app.gql(REQUEST_RESET, { email: uniqueEmail('nobody') }),
    });
    // Not a vacuous comparison: the known address did get reset mail.
    expect(mailsTo(smtp, user.email).filter((mail) => SUBJECT.reset.test(mail.subject ?? '')).length).toBeGreaterThan(0);
    expect((await app.gql(REQUEST_RESET, { email: user.email })).data).toEqual({ requestPasswordReset: true });
  });

  it('requestSignInCode: true for both, in the same time', { retry: 2 }, async () => {
    const user = await registerWithEmail(app);
    await comparePaired('requestSignInCode', {
      known: () => app.gql(REQUEST_CODE, { email: user.email }),
      unknown: () => app.gql(REQUEST_CODE, { email: uniqueEmail('nobody') }),
    });
    expect(mailsTo(smtp, user.email).filter((mail) => SUBJECT.signIn.test(mail.subject ?? '')).length).toBeGreaterThan(0);
    expect((await app.gql(REQUEST_CODE, { email: user.email })).data).toEqual({ requestSignInCode: true });
  });

  it('signInWithCode with a wrong code: the same refusal, in the same time, for an account with a code out and an unknown address that asked for one', {
    retry: 2,
  }, async () => {
    const user = await registerWithEmail(app);
    const strangers = new Map<number, string>();
    let realCode = '';
    await comparePaired('signInWithCode (wrong code)', {
      // Both sides have just asked for a code, as an attacker would before guessing.
      before: async (i) => {
        const stranger = uniqueEmail('nobody');
        strangers.set(i, stranger);
        smtp.messages.length = 0;
        expect((await app.gql(REQUEST_CODE, { email: user.email })).data.requestSignInCode).toBe(true);
        expect((await app.gql(REQUEST_CODE, { email: stranger })).data.requestSignInCode).toBe(true);
        realCode = codeOf(await mailTo(smtp, user.email, SUBJECT.signIn));
      },
      known: () => app.gql(WITH_CODE, { email: user.email, code: String((Number(realCode) + 1) % 1_000_000).padStart(6, '0') }),
      unknown: (i) => app.gql(WITH_CODE, { email: strangers.get(i)!, code: String(Math.floor(Math.random() * 1_000_000)).padStart(6, '0') }),
    });
    // The refusal compared is the wrong-code one, and the right code still works for the account.
    const wrong = await app.gql(WITH_CODE, { email: user.email, code: String((Number(realCode) + 1) % 1_000_000).padStart(6, '0') });
    expect(wrong.data.signInWithCode).toMatchObject({ __typename: 'InvalidTokenError', code: 'TOKEN_INVALID' });
    expect((await app.gql(WITH_CODE, { email: user.email, code: realCode })).data.signInWithCode.__typename).toBe('AuthPayload');
  });
});

// ---- 2. A mail scanner's GET ----------------------------------------------------------------------

describe("a mail scanner's GET changes nothing", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await createMailApp(smtp, HIGH_LIMITS);
  });
  // createTestApp's own clean-up is not registered from inside a hook.
  afterAll(() => app.close());

  const get = async (pathAndQuery: string, headers: Record<string, string> = {}) => {
    const response = await app.yoga.fetch(`http://gatehouse.test${pathAndQuery}`, { method: 'GET', headers });
    return { status: response.status, body: await response.text() };
  };

  /** What a scanner (or a prefetching client) might GET with a mailed link, all of which must fail. */
  async function scan(link: { url: URL; token: string }, mutation: string) {
    const graphqlGet = `/graphql?query=${encodeURIComponent(mutation)}`;
    // As a scanner sends it: refused before any GraphQL (CSRF prevention wants a header a browser would preflight)...
    const plain = await get(graphqlGet);
    expect(plain.status).toBe(403);
    // ...and even with that header and JSON accepted: GraphQL over GET carries no mutation.
    const withHeader = await get(graphqlGet, { 'x-graphql-yoga-csrf': '1', accept: 'application/json' });
    expect(withHeader.status).toBe(405);
    expect(withHeader.body).toMatch(/mutation operation from a POST request/);
    // The mailed link's own path and query, on the API rather than the app: nothing there.
    expect((await get(link.url.pathname + link.url.search)).status).toBe(404);
  }

  it('verifyEmail, confirmEmailChange, signInWithLink and resetPassword: refused over GET, and the token still works by POST', async () => {
    const user = await registerWithEmail(app);

    const verification = linkOf(await mailTo(smtp, user.email, SUBJECT.verify));
    await scan(verification, `mutation { verifyEmail(token: "${verification.token}") { __typename } }`);
    expect((await app.gql(VERIFY, { token: verification.token })).data.verifyEmail).toMatchObject({ __typename: 'User', emailVerified: true });

    const newEmail = uniqueEmail('moved');
    expect((await app.gql(REQUEST_CHANGE, { email: newEmail, password: user.password }, user.auth)).data.requestEmailChange.__typename).toBe(
      'EmailChangeRequested',
    );
    const change = linkOf(await mailTo(smtp, newEmail, SUBJECT.changeConfirm));
    await scan(change, `mutation { confirmEmailChange(token: "${change.token}") { __typename } }`);
    expect((await app.gql(CONFIRM_CHANGE, { token: change.token })).data.confirmEmailChange).toMatchObject({ __typename: 'User', email: newEmail });

    expect((await app.gql(REQUEST_CODE, { email: newEmail })).data.requestSignInCode).toBe(true);
    const signIn = linkOf(await mailTo(smtp, newEmail, SUBJECT.signIn));
    await scan(signIn, `mutation { signInWithLink(token: "${signIn.token}") { __typename } }`);
    expect((await app.gql(WITH_LINK, { token: signIn.token })).data.signInWithLink).toMatchObject({ __typename: 'AuthPayload', user: { id: user.user.id } });

    expect((await app.gql(REQUEST_RESET, { email: newEmail })).data.requestPasswordReset).toBe(true);
    const reset = linkOf(await mailTo(smtp, newEmail, SUBJECT.reset));
    await scan(reset, `mutation { resetPassword(token: "${reset.token}", newPassword: "a scanner's password") { __typename } }`);
    expect((await app.gql(RESET, { token: reset.token, password: 'the password I chose' })).data.resetPassword).toMatchObject({
      __typename: 'AuthPayload',
      user: { id: user.user.id },
    });
  });
});

// ---- 3. Limits -------------------------------------------------------------------------------------

describe('mail limits', () => {
  it('per recipient: the 6th reset request for an address (any spelling) is refused and mails nothing; the same for an unknown address; others are unaffected', async () => {
    const app = await createMailApp(smtp, { ...HIGH_LIMITS, RATE_LIMIT_EMAIL_RECIPIENT: '5/1h', TRUST_PROXY: 'true' });
    const user = await registerWithEmail(app);
    const stranger = uniqueEmail('nobody');
    const spellings = (email: string) => [
      email,
      email.toUpperCase(),
      email[0]!.toUpperCase() + email.slice(1),
      email.toLowerCase(),
      email.toUpperCase(),
      email,
    ];
    const resetMails = () => mailsTo(smtp, user.email).filter((mail) => SUBJECT.reset.test(mail.subject ?? ''));
    const outboxRowsFor = async (email: string) =>
      (await rawRows(app, 'MailOutbox')).filter((row) => row.kind === 'reset_password' && String(row.recipient).toLowerCase() === email.toLowerCase()).length;
    // Whoever asks, from wherever: each request from another client address.
    const request = async (email: string, i: number) => {
      const answer = await app.gql(REQUEST_RESET, { email }, from(`198.51.100.${i + 1}`));
      return { data: answer.data ?? null, code: errorCode(answer) ?? null };
    };

    const known = [];
    for (const [i, spelling] of spellings(user.email).entries()) {
      known.push(await request(spelling, i));
      // Each mail out before the next request: a newer reset link would end this one before it is sent.
      if (i < 5) await until(() => resetMails().length === i + 1, `reset mail ${i + 1}`);
    }
    const unknown = [];
    for (const [i, spelling] of spellings(stranger).entries()) unknown.push(await request(spelling, i));

    const expected = [...Array(5).fill({ data: { requestPasswordReset: true }, code: null }), { data: null, code: 'RATE_LIMITED' }];
    expect(known).toEqual(expected);
    // The same answers for an address no account has: the limit tells nothing either.
    expect(unknown).toEqual(known);

    await outboxIdle(app);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(resetMails()).toHaveLength(5);
    // The refused requests wrote nothing: no 6th row for either address.
    expect(await outboxRowsFor(user.email)).toBe(5);
    expect(await outboxRowsFor(stranger)).toBe(5);

    // Another address has its own budget, and so has another purpose for the same address.
    const other = await registerWithEmail(app);
    expect(await request(other.email, 0)).toEqual({ data: { requestPasswordReset: true }, code: null });
    expect((await app.gql(REQUEST_CODE, { email: user.email })).data).toEqual({ requestSignInCode: true });
  });

  it('per client: one client address (or IPv6 /64) mailing many addresses is refused after the limit; another client is not', async () => {
    const app = await createMailApp(smtp, { ...HIGH_LIMITS, RATE_LIMIT_EMAIL_CLIENT: '5/1h', TRUST_PROXY: 'true' });
    const ask = async (query: string, email: string, ip: string) => {
      const answer = await app.gql(query, { email }, from(ip));
      return errorCode(answer) ?? Object.values(answer.data ?? {})[0];
    };
    const user = await registerWithEmail(app);
    const targets = [user.email, ...Array.from({ length: 6 }, () => uniqueEmail('target'))];

    // The budget is the client's, across purposes and addresses.
    const answers = [];
    for (const [i, email] of targets.entries()) answers.push(await ask(i % 2 ? REQUEST_CODE : REQUEST_RESET, email, '203.0.113.50'));
    expect(answers).toEqual([true, true, true, true, true, 'RATE_LIMITED', 'RATE_LIMITED']);
    // The refused requests wrote nothing.
    await outboxIdle(app);
    const recipients = (await rawRows(app, 'MailOutbox')).map((row) => String(row.recipient).toLowerCase());
    expect(recipients).not.toContain(targets[5]!.toLowerCase());
    expect(recipients).not.toContain(targets[6]!.toLowerCase());

    expect(await ask(REQUEST_RESET, targets[6]!, '203.0.113.51')).toBe(true);

    // An IPv6 client counts per /64 (RATE_LIMIT_IPV6_PREFIX), so rotating addresses inside it does not help.
    const v6 = [];
    for (let i = 1; i <= 6; i++) v6.push(await ask(REQUEST_RESET, uniqueEmail('target'), `2001:db8:77:1::${i}`));
    expect(v6).toEqual([true, true, true, true, true, 'RATE_LIMITED']);
  });
});

// ---- 4. Storage ------------------------------------------------------------------------------------

describe('the database alone yields no link, code or key', () => {
  it('no column of EmailToken or MailOutbox (nor of any table) holds a mailed token or code, or the key file', async () => {
    const app = await createMailApp(smtp, HIGH_LIMITS);
    const user = await registerWithEmail(app);
    const newEmail = uniqueEmail('moved');
    await app.gql(REQUEST_RESET, { email: user.email });
    await app.gql(REQUEST_CODE, { email: user.email });
    await app.gql(REQUEST_CHANGE, { email: newEmail, password: user.password }, user.auth);

    const mails: ParsedMail[] = [
      await mailTo(smtp, user.email, SUBJECT.verify),
      await mailTo(smtp, user.email, SUBJECT.reset),
      await mailTo(smtp, user.email, SUBJECT.signIn),
      await mailTo(smtp, newEmail, SUBJECT.changeConfirm),
    ];
    await mailTo(smtp, user.email, SUBJECT.changeNotice);
    await outboxIdle(app);
    const tokens = mails.map((mail) => linkOf(mail).token);
    const code = codeOf(mails[2]!);
    expect(new Set(tokens).size).toBe(4);

    const rows = { EmailToken: await rawRows(app, 'EmailToken'), MailOutbox: await rawRows(app, 'MailOutbox') };
    // The rows read are the ones behind these mails: the database finds each token by its SHA-256 alone.
    const secretHashes = rows.EmailToken.map((row) => row.secretHash);
    for (const token of tokens) expect(secretHashes).toContain(createHash('sha256').update(token).digest('hex'));
    expect(rows.MailOutbox.length).toBeGreaterThanOrEqual(5);

    for (const [table, tableRows] of Object.entries(rows)) {
      for (const row of tableRows) {
        for (const [column, value] of Object.entries(row)) {
          const text = cellText(value);
          for (const token of tokens) expect(text.includes(token), `${table}.${column} holds a mailed link token`).toBe(false);
          expect(holdsCode(text, code), `${table}.${column} holds the mailed code`).toBe(false);
        }
      }
    }

    // The key file's secrets (and the email key derived from them) are nowhere in the database.
    const keyFile = JSON.parse(readFileSync(app.services.config.keysFile, 'utf8')) as {
      refreshTokenSecret: string;
      signingKeys: { privateJwk: { d: string } }[];
    };
    const emailKey = Buffer.from(hkdfSync('sha256', Buffer.from(keyFile.refreshTokenSecret, 'utf8'), Buffer.alloc(0), 'gatehouse email tokens', 32));
    const secrets = [
      keyFile.refreshTokenSecret,
      ...keyFile.signingKeys.map((key) => key.privateJwk.d),
      emailKey.toString('hex'),
      emailKey.toString('base64'),
      emailKey.toString('base64url'),
    ];
    const tables = await everyTable(app);
    expect(tables).toEqual(expect.arrayContaining(['User', 'Session', 'EmailToken', 'MailOutbox']));
    for (const table of tables) {
      for (const row of await rawRows(app, table)) {
        const text = Object.values(row).map(cellText).join('\u0000');
        for (const secret of secrets) expect(text.includes(secret), `${table} holds a secret of the key file`).toBe(false);
        for (const token of tokens) expect(text.includes(token), `${table} holds a mailed link token`).toBe(false);
      }
    }
  });
});

// ---- 5. Logs ---------------------------------------------------------------------------------------

describe('the logs', () => {
  it('at debug level, with every flow through SMTP: audit lines for requests, sends and redemptions, and never a token, code or password', async () => {
    const { logger, lines } = capturingLogger('debug');
    const app = await createMailApp(smtp, { ...HIGH_LIMITS, LOG_LEVEL: 'debug' }, { logger });
    const secrets: string[] = [];
    const codes: string[] = [];

    const user = await registerWithEmail(app);
    secrets.push(user.password);
    const verification = linkOf(await mailTo(smtp, user.email, SUBJECT.verify)).token;
    secrets.push(verification);
    expect((await app.gql(VERIFY, { token: verification })).data.verifyEmail.emailVerified).toBe(true);

    const newPassword = 'a reset password for the logs';
    secrets.push(newPassword);
    expect((await app.gql(REQUEST_RESET, { email: user.email })).data.requestPasswordReset).toBe(true);
    const reset = linkOf(await mailTo(smtp, user.email, SUBJECT.reset)).token;
    secrets.push(reset);
    const afterReset = await app.gql(RESET, { token: reset, password: newPassword });
    expect(afterReset.data.resetPassword.__typename).toBe('AuthPayload');
    secrets.push(afterReset.data.resetPassword.accessToken);

    const newEmail = uniqueEmail('moved');
    const changed = await app.gql(REQUEST_CHANGE, { email: newEmail, password: newPassword }, bearer(afterReset.data.resetPassword.accessToken));
    expect(changed.data.requestEmailChange.__typename).toBe('EmailChangeRequested');
    const change = linkOf(await mailTo(smtp, newEmail, SUBJECT.changeConfirm)).token;
    secrets.push(change);
    await mailTo(smtp, user.email, SUBJECT.changeNotice);
    expect((await app.gql(CONFIRM_CHANGE, { token: change })).data.confirmEmailChange.email).toBe(newEmail);

    expect((await app.gql(REQUEST_CODE, { email: newEmail })).data.requestSignInCode).toBe(true);
    const codeMail = await mailTo(smtp, newEmail, SUBJECT.signIn);
    const code = codeOf(codeMail);
    codes.push(code);
    secrets.push(linkOf(codeMail).token);
    const wrongCode = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    codes.push(wrongCode);
    expect((await app.gql(WITH_CODE, { email: newEmail, code: wrongCode })).data.signInWithCode.code).toBe('TOKEN_INVALID');
    const byCode = await app.gql(WITH_CODE, { email: newEmail, code });
    expect(byCode.data.signInWithCode.__typename).toBe('AuthPayload');
    secrets.push(byCode.data.signInWithCode.accessToken, byCode.data.signInWithCode.refreshToken);

    smtp.messages.length = 0;
    expect((await app.gql(REQUEST_CODE, { email: newEmail })).data.requestSignInCode).toBe(true);
    const linkMail = await mailTo(smtp, newEmail, SUBJECT.signIn);
    codes.push(codeOf(linkMail));
    const link = linkOf(linkMail).token;
    secrets.push(link);
    expect((await app.gql(WITH_LINK, { token: link })).data.signInWithLink.__typename).toBe('AuthPayload');

    // Requests for addresses no account has (dropped by the sender) and a resend for a verified address.
    expect((await app.gql(REQUEST_RESET, { email: uniqueEmail('nobody') })).data.requestPasswordReset).toBe(true);
    expect((await app.gql(REQUEST_CODE, { email: uniqueEmail('nobody') })).data.requestSignInCode).toBe(true);
    expect((await app.gql(REQUEST_VERIFICATION, { email: newEmail })).data.requestEmailVerification).toBe(true);
    await outboxIdle(app);

    const entries = lines.map((line) => JSON.parse(line) as { level: number; event?: string; outcome?: string });
    // Debug lines are there: the level really was debug.
    expect(entries.some((entry) => entry.level === 20)).toBe(true);
    for (const line of lines) {
      for (const secret of secrets) expect(line.includes(secret), `a log line holds a secret: ${line.slice(0, 300)}`).toBe(false);
      for (const typed of codes) expect(holdsCode(line, typed), `a log line holds a code: ${line.slice(0, 300)}`).toBe(false);
    }

    const outcomes = (event: string) => entries.filter((entry) => entry.event === event).map((entry) => entry.outcome);
    for (const request of ['requestPasswordReset', 'requestSignInCode', 'requestEmailChange', 'requestEmailVerification']) {
      expect(outcomes(request), request).toContain('success');
    }
    for (const redemption of ['verifyEmail', 'resetPassword', 'confirmEmailChange', 'signInWithCode', 'signInWithLink']) {
      expect(outcomes(redemption), redemption).toContain('success');
    }
    expect(outcomes('signInWithCode')).toContain('TOKEN_INVALID');
    // Verification, reset, confirmation, notice and two sign-in mails went out, each logged.
    expect(outcomes('mail_send').filter((outcome) => outcome === 'sent').length).toBeGreaterThanOrEqual(6);
    expect(outcomes('mail_request')).toEqual(expect.arrayContaining(['queued', 'dropped:no_account', 'dropped:already_verified']));
  });
});

// ---- 6. Input bounds -------------------------------------------------------------------------------

describe('oversized input', () => {
  it('a 10 000-character email, token or code is refused quickly as invalid: no internal error, nothing written', async () => {
    const app = await createMailApp(smtp, HIGH_LIMITS);
    const user = await registerWithEmail(app);
    await mailTo(smtp, user.email, SUBJECT.verify);
    await outboxIdle(app);

    const snapshot = async () => {
      const tables: Record<string, string> = {};
      for (const table of ['User', 'EmailToken', 'MailOutbox']) {
        const rows = await readTable(app, `SELECT * FROM "${table}" ORDER BY id`);
        tables[table] = rows.map((row) => Object.values(row).map(cellText).join('|')).join('\n');
      }
      return tables;
    };
    const before = await snapshot();

    const longEmail = `${'a'.repeat(9_987)}@example.test`;
    // Shapes that make backtracking address checks slow, at the same length.
    const awkwardEmails = [longEmail, 'a'.repeat(10_000), `a@${'a-'.repeat(4_999)}`, `a@${'a.'.repeat(4_999)}`, `${'.'.repeat(9_990)}@x.example`];
    const longToken = 'A'.repeat(10_000);
    const longCode = '1'.repeat(10_000);
    const validShapedToken = 'A'.repeat(43);

    // [operation, variables, headers, what it must answer]
    const cases: [string, Record<string, unknown>, Record<string, string>, string][] = [
      ...awkwardEmails.flatMap((email): [string, Record<string, unknown>, Record<string, string>, string][] => [
        [REQUEST_RESET, { email }, {}, 'VALIDATION_FAILED'],
        [REQUEST_CODE, { email }, {}, 'VALIDATION_FAILED'],
        [REQUEST_VERIFICATION, { email }, {}, 'VALIDATION_FAILED'],
        [REQUEST_CHANGE, { email, password: user.password }, user.auth, 'ValidationError'],
        [WITH_CODE, { email, code: '123456' }, {}, 'ValidationError'],
      ]),
      [WITH_CODE, { email: user.email, code: longCode }, {}, 'ValidationError'],
      [VERIFY, { token: longToken }, {}, 'InvalidTokenError'],
      [CONFIRM_CHANGE, { token: longToken }, {}, 'InvalidTokenError'],
      [WITH_LINK, { token: longToken }, {}, 'InvalidTokenError'],
      [RESET, { token: longToken, password: 'a long enough password' }, {}, 'InvalidTokenError'],
      [RESET, { token: validShapedToken, password: 'p'.repeat(10_000) }, {}, 'ValidationError'],
    ];

    for (const [query, variables, headers, expected] of cases) {
      const started = performance.now();
      const answer = await app.gql(query, variables, headers);
      const ms = performance.now() - started;
      const where = `${query.slice(0, 40)} ${JSON.stringify(variables).slice(0, 60)}`;
      expect(answer.status, where).toBe(200);
      expect(JSON.stringify(answer), where).not.toMatch(/INTERNAL_SERVER_ERROR|Unexpected error/);
      const result = answer.data ? (Object.values(answer.data)[0] as { __typename?: string } | null) : null;
      expect(errorCode(answer) ?? result?.__typename, where).toBe(expected);
      // A Boolean answer cannot be a ValidationError: the GraphQL error carries its code and field errors.
      if (expected === 'VALIDATION_FAILED')
        expect(answer.errors?.[0]?.extensions?.fieldErrors, where).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'email' })]));
      // Generous for a loaded machine; a backtracking check on 10 000 characters takes far longer.
      expect(ms, where).toBeLessThan(2_000);
    }

    await new Promise((resolve) => setTimeout(resolve, 300));
    await outboxIdle(app);
    expect(await snapshot()).toEqual(before);
  });
});
