import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { bearer, createTestApp, ManualClock, REFRESH, REGISTER, LOGIN, uniqueName, type TestApp } from '../support/app.js';
import { CREATE_API_TOKEN, readTable } from '../support/accounts.js';
import { fromIp } from './operations.js';

// Structured auth-event logs: one JSON line per auth event with event, outcome, requestId, ip and
// userId where known; and never a password, token or hash, whatever the log level.

const IP = '192.0.2.44';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function captured() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  });
  return { stream, text: () => chunks.join('') };
}

interface AuditLine {
  event: string;
  outcome: string;
  requestId: string;
  userId: string | null;
  ip: string | null;
  level: number;
  msg: string;
}

/** Runs the whole life of an account, collecting every secret it sees on the way. */
async function fullFlow(app: TestApp, clock: ManualClock) {
  const secrets: string[] = [];
  const keep = <T extends string>(secret: T): T => {
    secrets.push(secret);
    return secret;
  };
  const gql = async (query: string, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}) => {
    const response = await app.gql(query, variables, { ...fromIp(IP), 'user-agent': 'audit-test', ...headers });
    return response;
  };

  const username = uniqueName('audited');
  const password = keep('first Password-4-audit');
  const newPassword = keep('second Password-4-audit');
  const wrongPassword = keep('wrong Password-4-audit');

  const registered = (await gql(REGISTER, { input: { username, password, email: `${username}@example.com` } })).data.register;
  expect(registered.__typename).toBe('AuthPayload');
  keep(registered.accessToken);
  keep(registered.refreshToken);
  const userId = registered.user.id as string;
  const firstHash = keep((await readTable(app, 'SELECT passwordHash FROM User WHERE id = ?', userId))[0]!.passwordHash as string);

  const loggedIn = (await gql(LOGIN, { input: { username, password } })).data.login;
  expect(loggedIn.__typename).toBe('AuthPayload');
  keep(loggedIn.accessToken);
  keep(loggedIn.refreshToken);

  expect((await gql(LOGIN, { input: { username, password: wrongPassword } })).data.login.code).toBe('INVALID_CREDENTIALS');
  expect((await gql('{ me { id } }', {}, bearer(loggedIn.accessToken))).data.me.id).toBe(userId);

  const refreshed = (await gql(REFRESH, { token: registered.refreshToken })).data.refresh;
  expect(refreshed.__typename).toBe('AuthPayload');
  keep(refreshed.accessToken);
  keep(refreshed.refreshToken);
  clock.advance(60_000); // past the reuse grace window
  expect((await gql(REFRESH, { token: registered.refreshToken })).data.refresh.code).toBe('REFRESH_TOKEN_REUSED');

  const changed = await gql(
    'mutation ($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { __typename } }',
    { c: password, n: newPassword },
    bearer(loggedIn.accessToken),
  );
  expect(changed.data.changePassword.__typename).toBe('PasswordChanged');
  keep((await readTable(app, 'SELECT passwordHash FROM User WHERE id = ?', userId))[0]!.passwordHash as string);

  const created = await gql(CREATE_API_TOKEN, { input: { name: 'audit', scopes: ['PROFILE_READ'] } }, bearer(loggedIn.accessToken));
  const apiToken = keep(created.data.createApiToken.token as string);
  expect((await gql('{ me { id } }', {}, bearer(apiToken))).data.me.id).toBe(userId);

  expect((await gql('mutation { logout }', {}, bearer(loggedIn.accessToken))).data.logout).toBe(true);
  // The logged-out token is refused: an authentication event.
  expect((await gql('{ me { id } }', {}, bearer(loggedIn.accessToken))).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');

  const last = (await gql(LOGIN, { input: { username, password: newPassword } })).data.login;
  keep(last.accessToken);
  keep(last.refreshToken);
  const deleted = await gql('mutation ($p: String!) { deleteAccount(password: $p) { __typename } }', { p: newPassword }, bearer(last.accessToken));
  expect(deleted.data.deleteAccount.__typename).toBe('AccountDeleted');

  return { userId, secrets, firstHash };
}

describe.each(['info', 'trace'])('auth-event logs at level %s', (level) => {
  it('has one JSON line per auth event with event, outcome, requestId, ip and userId; no secret anywhere', async () => {
    const log = captured();
    const clock = new ManualClock();
    const app = await createTestApp({ TRUST_PROXY: 'true', LOG_LEVEL: level }, { clock, logger: createLogger(level, log.stream) });
    const { userId, secrets, firstHash } = await fullFlow(app, clock);

    const lines = log.text().split('\n').filter(Boolean);
    const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    // The request's auth events; mail delivery logs its own (component "mail", test/email/attacks.test.ts).
    const events = parsed.filter((entry) => typeof entry.event === 'string' && entry.component !== 'mail') as unknown as AuditLine[];
    // Accepted tokens are logged too, but at debug: one line per authenticated request.
    const accepted = events.filter((entry) => entry.level < 30);
    const audit = events.filter((entry) => entry.level >= 30);
    if (level === 'trace') {
      expect(accepted.length).toBeGreaterThan(0);
      for (const entry of accepted) expect(entry).toMatchObject({ event: 'authenticate', userId, level: 20 });
      expect(accepted.map((entry) => entry.outcome)).toContain('success:api_token');
    } else {
      expect(accepted).toEqual([]);
    }

    expect(audit.map(({ event, outcome, userId: subject }) => [event, outcome, subject])).toEqual([
      ['register', 'success', userId],
      ['login', 'success', userId],
      ['login', 'INVALID_CREDENTIALS', null],
      ['refresh', 'success', userId],
      ['refresh', 'REFRESH_TOKEN_REUSED', null],
      ['changePassword', 'success', userId],
      ['createApiToken', 'success', userId],
      ['logout', 'success', userId],
      ['authenticate', 'UNAUTHENTICATED:session_ended', null],
      ['login', 'success', userId],
      ['deleteAccount', 'success', userId],
    ]);
    for (const entry of audit) {
      expect(entry.requestId).toMatch(UUID);
      expect(entry.ip).toBe(IP);
      expect(entry.msg).toBe(`${entry.event}: ${entry.outcome}`);
      // Successes at info (30), refusals at warn (40).
      expect(entry.level).toBe(entry.outcome === 'success' ? 30 : 40);
    }
    // Every event came from its own request.
    expect(new Set(audit.map((entry) => entry.requestId)).size).toBe(audit.length);

    const text = log.text();
    expect(secrets).toHaveLength(14); // 3 passwords, 4 access + 4 refresh tokens, 1 API token, 2 hashes
    for (const secret of secrets) {
      expect(text).not.toContain(secret);
      // Nor a recognisable part of one: a JWT's signature, a refresh token's MAC, a hash's digest.
      const tail = secret.split(/[.$]/).at(-1)!;
      if (tail.length >= 16) expect(text).not.toContain(tail);
    }
    expect(text).not.toContain('$argon2');
    expect(firstHash).toMatch(/^\$argon2id\$/);
  });
});

describe('the logger itself', () => {
  it('redacts secret-named fields even if a code path logged one', () => {
    const log = captured();
    const logger = createLogger('info', log.stream);
    logger.info({ password: 'p4ssw0rd-1', input: { newPassword: 'p4ssw0rd-2', currentPassword: 'p4ssw0rd-3' }, authorization: 'Bearer abc.def.ghi' }, 'oops');
    logger.info({ token: 'gat_secret', args: { refreshToken: 'grt_secret', accessToken: 'eyJsecret' }, user: { passwordHash: '$argon2id$x' } }, 'oops');
    const text = log.text();
    for (const secret of ['p4ssw0rd-1', 'p4ssw0rd-2', 'p4ssw0rd-3', 'abc.def.ghi', 'gat_secret', 'grt_secret', 'eyJsecret', '$argon2id$x']) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain('[redacted]');
  });
});
