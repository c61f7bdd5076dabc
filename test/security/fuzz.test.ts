import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { PasswordHasher } from '../../src/auth/passwords.js';
import { bearer, createTestApp, LOGIN, REFRESH, REGISTER, registerUser } from '../support/app.js';
import { capturingLogger } from '../support/logs.js';
import { expectNoInternalError, snapshotOf, type HttpAnswer } from './support.js';
import { OPERATOR } from '../../src/auth/admin-actor.js';

// Property-based fuzzing of every mutation's input through the whole HTTP pipeline (yoga.fetch): huge,
// empty, unicode, control characters, and wrong types sent as raw JSON variables. Whatever comes in:
// no 5xx, no internal error (masked or not; nothing logged as unexpected), and when the answer is a
// refusal the database is byte for byte what it was.

const { logger, lines: loggedErrors } = capturingLogger();
const app = await createTestApp({}, { logger });

const RUNS = { inputs: 200, ids: 100, raw: 300 } as const;
const runCounts: Record<string, number> = {};
const accepted: Record<string, number> = {};
afterAll(() => console.log(`fuzz runs per target: ${JSON.stringify(runCounts)}\nof which accepted (not refused): ${JSON.stringify(accepted)}`));
afterEach(() => {
  const logged = loggedErrors.splice(0);
  expect(logged, 'errors logged by the server').toEqual([]);
});

async function post(body: string | object, headers: Record<string, string> = {}): Promise<HttpAnswer & { raw: string }> {
  const response = await app.yoga.fetch('http://gatehouse.test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const raw = await response.text();
  let parsed: object = {};
  try {
    parsed = JSON.parse(raw);
  } catch {
    // Not every refusal (e.g. 413) needs a JSON body; the status and raw text are still checked.
  }
  return { status: response.status, raw, ...parsed };
}

// --- arbitraries -------------------------------------------------------------------------------------

const CONTROL = fc.constantFrom(
  ...Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)),
  '\u007f',
  '\u0085',
  '\u2028',
  '\u2029',
  '\u200b',
  '\u202e',
  '\ufeff',
);
const nasty = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  'null',
  'undefined',
  '__proto__',
  'constructor',
  "' OR '1'='1' --",
  '"; DROP TABLE "User"; --',
  '%',
  '_',
  '%_%',
  '../../../etc/passwd',
  '<script>alert(1)</script>',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a template-injection probe, sent as plain text
  '${7*7}',
  '{{7*7}}',
  '\ud800',
  '\udfff',
  'İ',
  'ß',
  'ǅ',
  'Ⅻ',
  'ﬀ',
  'K',
  'admin\u0000',
  'a'.repeat(256),
  'a'.repeat(257),
  'x'.repeat(10_000),
  '🔑'.repeat(300),
  'e\u0301'.repeat(100),
  '\u202eadmin',
  'user@example.com',
  'a@b',
  '@',
);
const text = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 80 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 60 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) },
  { weight: 2, arbitrary: fc.string({ unit: CONTROL, minLength: 1, maxLength: 20 }) },
  { weight: 1, arbitrary: fc.integer({ min: 257, max: 12_000 }).map((n) => 'p'.repeat(n)) },
  { weight: 3, arbitrary: nasty },
  { weight: 1, arbitrary: fc.tuple(fc.string({ maxLength: 10 }), fc.emailAddress()).map(([a, b]) => a + b) },
);
/** What a string field receives: mostly strings, sometimes JSON of the wrong type, sometimes nothing. */
const field = fc.oneof(
  { weight: 6, arbitrary: text },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.constant(undefined) },
);
/** A whole input object, or (rarely) something that is not an object at all. */
const inputOf = (shape: Record<string, fc.Arbitrary<unknown>>) =>
  fc.oneof({ weight: 9, arbitrary: fc.record(shape, { requiredKeys: [] }) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) });
const SCOPES = ['PROFILE_READ', 'PROFILE_WRITE', 'SESSIONS_READ', 'ADMIN'];
const scopesField = fc.oneof(
  fc.array(fc.constantFrom(...SCOPES), { maxLength: 6 }),
  fc.array(fc.oneof(fc.constantFrom(...SCOPES), fc.string({ maxLength: 12 })), { maxLength: 4 }),
  fc.jsonValue({ maxDepth: 2 }),
);
const intField = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 3650, 3651, 2 ** 31, -(2 ** 31) - 1, Number.MAX_SAFE_INTEGER),
  fc.jsonValue({ maxDepth: 1 }),
);
const refreshShaped = fc
  .tuple(fc.uuid(), fc.nat(1_000_000_000), fc.string({ unit: fc.constantFrom(...'ABCxyz019_-'), minLength: 43, maxLength: 43 }))
  .map(([id, n, mac]) => `grt_${id}.${n}.${mac}`);
const apiShaped = fc.string({ unit: fc.constantFrom(...'ABCxyz019_-'), minLength: 43, maxLength: 43 }).map((secret) => `gat_${secret}`);

// --- the property ------------------------------------------------------------------------------------

const SUCCESS = new Set(['AuthPayload', 'UserCreated', 'User', 'PasswordChanged', 'ApiTokenCreated', 'AccountDeleted']);

/** A refusal: any GraphQL error, a union member implementing Error, or `false` from a revoke. */
function isRefusal(answer: HttpAnswer): boolean {
  if (answer.errors?.length || !answer.data) return true;
  return Object.values(answer.data).every(
    (value) => value === false || value === null || (typeof value === 'object' && !SUCCESS.has((value as { __typename: string }).__typename)),
  );
}

async function fuzz<T>(
  target: string,
  numRuns: number,
  arbitrary: fc.Arbitrary<T>,
  send: (value: T) => Promise<HttpAnswer>,
  after?: (answer: HttpAnswer, value: T) => void,
) {
  runCounts[target] = 0;
  await fc.assert(
    fc.asyncProperty(arbitrary, async (value) => {
      runCounts[target]! += 1;
      const before = await snapshotOf(app);
      const answer = await send(value);
      expectNoInternalError(answer, { target, value });
      accepted[target] = (accepted[target] ?? 0) + (isRefusal(answer) ? 0 : 1);
      if (isRefusal(answer))
        expect(await snapshotOf(app), `database changed by a refused ${target}: ${String(JSON.stringify(value)).slice(0, 200)}`).toEqual(before);
      after?.(answer, value);
    }),
    { numRuns },
  );
}

const TYPENAME = '__typename ... on Error { code message }';
const ME_QUERY = '{ me { id } }';

describe('fuzzing every mutation through the HTTP pipeline', { timeout: 60_000 }, () => {
  let user: Awaited<ReturnType<typeof registerUser>>;
  let admin: Awaited<ReturnType<typeof registerUser>>;
  let password: string;
  beforeAll(async () => {
    user = await registerUser(app);
    password = user.password;
    admin = await registerUser(app);
    await app.services.users.setRole(admin.user.id, 'ADMIN', OPERATOR);
  });

  it('register', async () => {
    // Valid-looking names and passwords too, so some registrations succeed and later ones collide
    // (in another letter case) with them.
    const username = fc.oneof(field, fc.stringMatching(/^[a-zA-Z0-9_.-]{3,6}$/));
    const password = fc.oneof(field, fc.string({ minLength: 8, maxLength: 40 }));
    const input = inputOf({ username, password, email: fc.oneof(field, fc.emailAddress()), fullname: field });
    await fuzz('register', RUNS.inputs, input, (value) => post({ query: REGISTER, variables: { input: value } }));
  });

  it('login', async () => {
    // Known names too, so the password check itself is reached (and must refuse).
    const username = fc.oneof(field, fc.constantFrom(user.username, user.username.toUpperCase(), admin.username));
    await fuzz('login', RUNS.inputs, inputOf({ username, password: field }), (value) => post({ query: LOGIN, variables: { input: value } }));
  });

  it('refresh', async () => {
    await fuzz('refresh', RUNS.inputs, fc.oneof(field, refreshShaped, fc.constant(`${user.refreshToken.slice(0, -1)}A`)), (token) =>
      post({ query: REFRESH, variables: { token } }),
    );
  });

  it('logout (wrong types only: a well-typed logout would succeed) and any Authorization header', async () => {
    const LOGOUT = 'mutation L($all: Boolean!) { logout(allSessions: $all) }';
    const notBoolean = fc.jsonValue({ maxDepth: 2 }).filter((value) => typeof value !== 'boolean');
    await fuzz('logout', RUNS.ids, notBoolean, (all) => post({ query: LOGOUT, variables: { all } }, bearer(user.accessToken)));
    // Header values must be Latin-1 without CR/LF to be sendable at all.
    const headerText = fc.oneof(
      fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 200 }),
      fc.string({ maxLength: 5000 }).map((s) => s.replace(/[^\x20-\x7e]/g, 'x')),
    );
    const authorization = fc.oneof(
      headerText,
      headerText.map((s) => `Bearer ${s}`),
      refreshShaped.map((s) => `Bearer ${s}`),
      apiShaped.map((s) => `Bearer ${s}`),
    );
    await fuzz(
      'logout:authorization',
      RUNS.raw,
      authorization,
      (header) => post({ query: 'mutation { logout(allSessions: true) }' }, { authorization: header }),
      (answer) => {
        // Without a usable token nothing may be logged out.
        expect(answer.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      },
    );
  });

  it('revokeSession and revokeApiToken', async () => {
    const id = fc.oneof(field, fc.uuid());
    await fuzz('revokeSession', RUNS.ids, id, (value) =>
      post({ query: 'mutation R($id: ID!) { revokeSession(id: $id) }', variables: { id: value } }, bearer(user.accessToken)),
    );
    await fuzz('revokeApiToken', RUNS.ids, id, (value) =>
      post({ query: 'mutation R($id: ID!) { revokeApiToken(id: $id) }', variables: { id: value } }, bearer(user.accessToken)),
    );
  });

  it('updateProfile', async () => {
    const query = `mutation U($input: UpdateProfileInput!) { updateProfile(input: $input) { ${TYPENAME} } }`;
    await fuzz('updateProfile', RUNS.inputs, inputOf({ fullname: field, email: field }), (input) =>
      post({ query, variables: { input } }, bearer(user.accessToken)),
    );
  });

  it('changePassword (with the right current password too, so the new one gets validated)', async () => {
    const query = `mutation C($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { ${TYPENAME} } }`;
    const args = fc.record({ c: fc.oneof(field, fc.constant('CURRENT')), n: field }, { requiredKeys: [] });
    await fuzz(
      'changePassword',
      RUNS.inputs,
      args,
      (value) => post({ query, variables: { ...value, ...(value.c === 'CURRENT' ? { c: password } : {}) } }, bearer(user.accessToken)),
      (answer, value) => {
        if (answer.data?.changePassword?.__typename === 'PasswordChanged') password = value.n as string;
      },
    );
  });

  it('deleteAccount (never with the right password)', async () => {
    const query = `mutation D($p: String!) { deleteAccount(password: $p) { ${TYPENAME} } }`;
    await fuzz(
      'deleteAccount',
      RUNS.inputs,
      field.filter((value) => value !== password),
      (p) => post({ query, variables: { p } }, bearer(user.accessToken)),
      (answer) => {
        expect(answer.data?.deleteAccount?.__typename).not.toBe('AccountDeleted');
      },
    );
  });

  it('createApiToken', async () => {
    const query = `mutation C($input: CreateApiTokenInput!) { createApiToken(input: $input) { ${TYPENAME} } }`;
    const input = inputOf({ name: field, scopes: scopesField, expiresInDays: intField });
    await fuzz('createApiToken', RUNS.inputs, input, (value) => post({ query, variables: { input: value } }, bearer(user.accessToken)));
  });

  it('setUserRole, disableUser, enableUser and deleteUser (as an administrator)', async () => {
    const id = fc.oneof(field, fc.uuid(), fc.integer());
    const role = fc.oneof(fc.constantFrom('USER', 'ADMIN'), field);
    await fuzz('setUserRole', RUNS.ids, fc.record({ id, role }, { requiredKeys: [] }), (variables) =>
      post({ query: `mutation S($id: ID!, $role: Role!) { setUserRole(id: $id, role: $role) { ${TYPENAME} } }`, variables }, bearer(admin.accessToken)),
    );
    for (const name of ['disableUser', 'enableUser', 'deleteUser']) {
      await fuzz(name, RUNS.ids, id, (value) =>
        post({ query: `mutation M($id: ID!) { ${name}(id: $id) { ${TYPENAME} } }`, variables: { id: value } }, bearer(admin.accessToken)),
      );
    }
  });

  it('raw request bodies: not JSON, JSON of the wrong shape, wrong types for query and variables', async () => {
    const body = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value)),
      fc
        .record(
          {
            query: fc.oneof(fc.constantFrom(REGISTER, LOGIN, REFRESH), fc.jsonValue({ maxDepth: 1 })),
            variables: fc.jsonValue({ maxDepth: 3 }),
            operationName: fc.jsonValue({ maxDepth: 1 }),
          },
          { requiredKeys: [] },
        )
        .map((value) => JSON.stringify(value)),
      fc.constantFrom(REGISTER, LOGIN).chain((query) => fc.string({ maxLength: 40 }).map((junk) => JSON.stringify({ query: query.replace('$input', junk) }))),
    );
    await fuzz('raw body', RUNS.raw, body, (value) => post(value));
  });

  it('the user survived every fuzzed deleteAccount, and the administrator is still one', async () => {
    // (Logging in would meet the lockout the login and deleteAccount fuzzing earned this account from the
    // fuzzer's address, and re-authentication shares that lockout; check the password from another address.)
    await expect(app.services.accounts.verifyPassword(user.user.id, password, { ip: '192.0.2.1', network: '192.0.2.1' })).resolves.toMatchObject({
      id: user.user.id,
    });
    expect((await post({ query: ME_QUERY }, bearer(user.accessToken))).data.me.id).toBe(user.user.id);
    expect((await app.services.accounts.findUser(admin.user.id))?.role).toBe('ADMIN');
  });
});

describe('oversized passwords are refused before any hashing', () => {
  const hash = vi.spyOn(PasswordHasher.prototype, 'hash');
  const verify = vi.spyOn(PasswordHasher.prototype, 'verify');
  const dummy = vi.spyOn(PasswordHasher.prototype, 'verifyAgainstDummy');
  const hashingCalls = () => hash.mock.calls.length + verify.mock.calls.length + dummy.mock.calls.length;

  it('control: the spies see the server hash a normal registration and login', async () => {
    const [hashes, verifies] = [hash.mock.calls.length, verify.mock.calls.length];
    const registered = await registerUser(app);
    const login = await post({ query: LOGIN, variables: { input: { username: registered.username, password: registered.password } } });
    expect(login.data.login.__typename).toBe('AuthPayload');
    expect(hash.mock.calls.length - hashes).toBe(1);
    expect(verify.mock.calls.length - verifies).toBe(1);
  });

  it('a 10 kB password is a ValidationError for register, login, changePassword and deleteAccount, with no hashing', async () => {
    const { username, accessToken } = await registerUser(app);
    const long = 'p'.repeat(10_000);
    const before = await snapshotOf(app);
    const calls = hashingCalls();

    const answers = [
      await post({ query: REGISTER, variables: { input: { username: 'longpw_user', password: long } } }),
      await post({ query: LOGIN, variables: { input: { username, password: long } } }),
      await post(
        {
          query: `mutation C($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { ${TYPENAME} } }`,
          variables: { c: long, n: 'a fine new password' },
        },
        bearer(accessToken),
      ),
      await post({ query: `mutation D($p: String!) { deleteAccount(password: $p) { ${TYPENAME} } }`, variables: { p: long } }, bearer(accessToken)),
    ];
    for (const answer of answers) {
      expectNoInternalError(answer);
      const result = Object.values(answer.data!)[0] as { __typename: string; code: string };
      expect(result).toMatchObject({ __typename: 'ValidationError', code: 'VALIDATION_FAILED' });
    }
    expect(hashingCalls()).toBe(calls);
    expect(await snapshotOf(app)).toEqual(before);
  });

  it('a 1 MB password is refused with HTTP 413 before the body is even parsed, with no hashing', async () => {
    const { username } = await registerUser(app);
    const huge = 'p'.repeat(1_000_000);
    const before = await snapshotOf(app);
    const calls = hashingCalls();
    for (const body of [
      { query: REGISTER, variables: { input: { username: 'hugepw_user', password: huge } } },
      { query: LOGIN, variables: { input: { username, password: huge } } },
    ]) {
      const answer = await post(body);
      expect(answer.status).toBe(413);
      expect(answer.raw).not.toMatch(/prisma|sqlite|argon/i);
    }
    expect(hashingCalls()).toBe(calls);
    expect(await snapshotOf(app)).toEqual(before);
  });
});
