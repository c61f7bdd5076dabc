import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair, importJWK, type JWK, type JWTPayload } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { httpGql, type HttpAnswer } from './support.js';
import { startServer, type SpawnedServer } from '../support/server-process.js';

// Every forged or dead credential, presented over real HTTP to `npm start`'s server. Each forgery signed
// with the server's real key differs from a working token (checked first) in exactly one respect.

const ME = '{ me { id username } }';
const AUTH = 'accessToken refreshToken user { id username }';
const REGISTER = `mutation R($input: RegisterInput!) { register(input: $input) { __typename ... on AuthPayload { ${AUTH} } } }`;
const LOGIN = `mutation L($input: LoginInput!) { login(input: $input) { __typename ... on AuthPayload { ${AUTH} } } }`;

let server: SpawnedServer;
let privateJwk: JWK;
let kid: string;

beforeAll(async () => {
  server = await startServer();
  const keyFile = JSON.parse(readFileSync(server.keysFile, 'utf8'));
  privateJwk = keyFile.signingKeys[0].privateJwk;
  kid = keyFile.signingKeys[0].kid;
});

let counter = 0;
async function register(password = 'a long enough password') {
  const username = `jwt${++counter}_${Math.random().toString(36).slice(2, 8)}`;
  const answer = await httpGql(server.base, REGISTER, { input: { username, password } });
  expect(answer.data?.register.__typename).toBe('AuthPayload');
  return { username, password, ...answer.data!.register } as {
    username: string;
    password: string;
    accessToken: string;
    refreshToken: string;
    user: { id: string };
  };
}

async function login(username: string, password: string) {
  const answer = await httpGql(server.base, LOGIN, { input: { username, password } });
  expect(answer.data?.login.__typename).toBe('AuthPayload');
  return answer.data!.login as { accessToken: string; refreshToken: string };
}

const meWith = (token: string, headers: Record<string, string> = {}) => httpGql(server.base, ME, {}, { authorization: `Bearer ${token}`, ...headers });

function expectUnauthenticated(answer: HttpAnswer, reason?: string) {
  expect(answer.status).toBeLessThan(500);
  expect(answer.data?.me ?? null).toBeNull();
  expect(answer.errors).toHaveLength(1);
  expect(answer.errors![0]!.extensions).toMatchObject({ code: 'UNAUTHENTICATED', ...(reason ? { reason } : {}) });
}

async function expectWorks(token: string, userId: string) {
  const answer = await meWith(token);
  expect(answer.errors).toBeUndefined();
  expect(answer.data.me.id).toBe(userId);
}

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** The claims of a working token of `victim`, ready to be altered one at a time. */
function claimsOf(accessToken: string): JWTPayload {
  const { sub, sid, iss, aud } = decodeJwt(accessToken);
  return { sub, sid, iss, aud, iat: now(), exp: now() + 600, jti: `forged-${Math.random()}` };
}

/** Signed with the server's own private key: only the altered claim or header can make it fail. */
async function signWithServerKey(claims: JWTPayload, header: Record<string, unknown> = {}) {
  const key = await importJWK({ ...privateJwk, alg: 'EdDSA' }, 'EdDSA');
  return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT', ...header }).sign(key);
}

describe('forged and altered access tokens over HTTP', { timeout: 60_000 }, () => {
  let victim: Awaited<ReturnType<typeof register>>;
  beforeAll(async () => {
    victim = await register();
  });

  it('control: the genuine token and a faithful re-signing with the server key both work', async () => {
    await expectWorks(victim.accessToken, victim.user.id);
    await expectWorks(await signWithServerKey(claimsOf(victim.accessToken)), victim.user.id);
  });

  it('refuses alg: none, with or without a kid and an empty or bogus signature', async () => {
    const payload = b64(claimsOf(victim.accessToken));
    for (const header of [{ alg: 'none' }, { alg: 'none', kid, typ: 'JWT' }, { alg: 'None', kid }, { alg: 'NONE', kid }]) {
      for (const signature of ['', 'AAAA']) {
        expectUnauthenticated(await meWith(`${b64(header)}.${payload}.${signature}`));
      }
    }
  });

  it('refuses HS256 tokens whose HMAC key is the published EdDSA public key (algorithm confusion)', async () => {
    const jwks = (await (await fetch(`${server.base}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
    const publicJwk = jwks.keys.find((key) => key.kid === kid)!;
    expect(publicJwk).toBeDefined();
    const spkiPem = createPublicKey({ key: publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
    const secrets = [
      Buffer.from(publicJwk.x!, 'base64url'), // the raw 32-byte key
      Buffer.from(publicJwk.x!), // its base64url text
      Buffer.from(JSON.stringify(publicJwk)), // the JWK as published
      Buffer.from(spkiPem), // the PEM a naive verifier would load
    ];
    for (const secret of secrets) {
      const token = await new SignJWT(claimsOf(victim.accessToken)).setProtectedHeader({ alg: 'HS256', kid, typ: 'JWT' }).sign(secret);
      expectUnauthenticated(await meWith(token));
    }
  });

  it('refuses an unknown kid, a missing kid, an attacker key under our kid, and an embedded jwk', async () => {
    const attacker = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const claims = claimsOf(victim.accessToken);
    const attackerSigned = (header: Record<string, unknown>) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', ...header } as never).sign(attacker.privateKey);
    expectUnauthenticated(await meWith(await attackerSigned({ kid: 'attacker-key' })));
    expectUnauthenticated(await meWith(await attackerSigned({ kid })));
    expectUnauthenticated(await meWith(await attackerSigned({ kid, jwk: await exportJWK(attacker.publicKey) })));
    // The real key, but a kid the server does not know, or none at all.
    expectUnauthenticated(await meWith(await signWithServerKey(claims, { kid: 'unknown-kid' })), 'invalid');
    expectUnauthenticated(await meWith(await signWithServerKey(claims, { kid: undefined })));
  });

  it('refuses a wrong issuer and a wrong audience', async () => {
    const claims = claimsOf(victim.accessToken);
    expectUnauthenticated(await meWith(await signWithServerKey({ ...claims, iss: 'evil' })));
    expectUnauthenticated(await meWith(await signWithServerKey({ ...claims, iss: undefined })));
    expectUnauthenticated(await meWith(await signWithServerKey({ ...claims, aud: 'other-service' })));
    expectUnauthenticated(await meWith(await signWithServerKey({ ...claims, aud: undefined })));
  });

  it('refuses an expired token, and one whose nbf lies in the future', async () => {
    const claims = claimsOf(victim.accessToken);
    expectUnauthenticated(await meWith(await signWithServerKey({ ...claims, iat: now() - 1000, exp: now() - 60 })), 'expired');
    expectUnauthenticated(await meWith(await signWithServerKey({ ...claims, nbf: now() + 3600 })));
  });

  it('refuses a tampered payload (another user as sub, a later exp) under the original signature', async () => {
    const other = await register();
    const [header, payload, signature] = victim.accessToken.split('.') as [string, string, string];
    const decoded = JSON.parse(Buffer.from(payload, 'base64url').toString());
    for (const change of [{ sub: other.user.id }, { exp: decoded.exp + 3600 }, { sid: decodeJwt(other.accessToken).sid }]) {
      expectUnauthenticated(await meWith(`${header}.${b64({ ...decoded, ...change })}.${signature}`));
    }
    // The other user's token still answers as the other user: nothing was confused.
    await expectWorks(other.accessToken, other.user.id);
  });

  it('refuses a tampered signature', async () => {
    const [header, payload, signature] = victim.accessToken.split('.') as [string, string, string];
    const flipped = (index: number) => signature.slice(0, index) + (signature[index] === 'A' ? 'B' : 'A') + signature.slice(index + 1);
    for (const bad of [flipped(0), flipped(20), flipped(42), '', signature.slice(0, -4), `${signature}AAAA`]) {
      expectUnauthenticated(await meWith(`${header}.${payload}.${bad}`));
    }
  });
});

describe('valid tokens whose session, user or API token is gone, over HTTP', { timeout: 60_000 }, () => {
  it('refuses a valid token of a revoked session at once, the other session still works', async () => {
    const user = await register();
    const second = await login(user.username, user.password);
    const firstSessionId = decodeJwt(user.accessToken).sid as string;
    await expectWorks(user.accessToken, user.user.id);
    const revoked = await httpGql(
      server.base,
      'mutation R($id: ID!) { revokeSession(id: $id) }',
      { id: firstSessionId },
      { authorization: `Bearer ${second.accessToken}` },
    );
    expect(revoked.data).toEqual({ revokeSession: true });
    expectUnauthenticated(await meWith(user.accessToken), 'session_ended');
    await expectWorks(second.accessToken, user.user.id);
  });

  it('refuses a valid token of a disabled user, and of a deleted user', async () => {
    const admin = await register();
    // Made administrator the way an operator with the database file could, before the server ever
    // looked at this user's role (so no cached row is stale).
    const db = new Database(server.dbPath);
    db.pragma('busy_timeout = 5000');
    db.prepare('UPDATE "User" SET role = ? WHERE id = ?').run('ADMIN', admin.user.id);
    db.close();

    const disabled = await register();
    await expectWorks(disabled.accessToken, disabled.user.id);
    const answer = await httpGql(
      server.base,
      'mutation D($id: ID!) { disableUser(id: $id) { __typename } }',
      { id: disabled.user.id },
      { authorization: `Bearer ${admin.accessToken}` },
    );
    expect(answer.data).toEqual({ disableUser: { __typename: 'User' } });
    const refused = await meWith(disabled.accessToken);
    expectUnauthenticated(refused);
    expect(['session_ended', 'user_unavailable']).toContain(refused.errors![0]!.extensions!.reason);

    const deleted = await register();
    const deletedSecond = await login(deleted.username, deleted.password);
    await expectWorks(deletedSecond.accessToken, deleted.user.id);
    const gone = await httpGql(
      server.base,
      'mutation D($p: String!) { deleteAccount(password: $p) { __typename } }',
      { p: deleted.password },
      { authorization: `Bearer ${deleted.accessToken}` },
    );
    expect(gone.data).toEqual({ deleteAccount: { __typename: 'AccountDeleted' } });
    expectUnauthenticated(await meWith(deleted.accessToken));
    expectUnauthenticated(await meWith(deletedSecond.accessToken));
    // Even re-signed with the server key, a token naming the deleted user gets nowhere.
    expectUnauthenticated(await meWith(await signWithServerKey(claimsOf(deletedSecond.accessToken))));
  });

  it('refuses an API token after its revocation', async () => {
    const user = await register();
    const auth = { authorization: `Bearer ${user.accessToken}` };
    const created = await httpGql(
      server.base,
      'mutation C($input: CreateApiTokenInput!) { createApiToken(input: $input) { __typename ... on ApiTokenCreated { token apiToken { id } } } }',
      { input: { name: 'script', scopes: ['PROFILE_READ'] } },
      auth,
    );
    const { token, apiToken } = created.data.createApiToken;
    await expectWorks(token, user.user.id);
    const revoked = await httpGql(server.base, 'mutation V($id: ID!) { revokeApiToken(id: $id) }', { id: apiToken.id }, auth);
    expect(revoked.data).toEqual({ revokeApiToken: true });
    expectUnauthenticated(await meWith(token));
    // And it stays refused on later requests (no cache brings it back).
    expectUnauthenticated(await meWith(token));
  });
});
