import { readFileSync, statSync } from 'node:fs';
import { SignJWT, UnsecuredJWT, createLocalJWKSet, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { bearer, createTestApp, ManualClock, ME, registerUser } from './support/app.js';
import { rawDb } from './support/raw-db.js';

const clock = new ManualClock();
const app = await createTestApp({}, { clock });
const keyFile = JSON.parse(readFileSync(app.services.config.keysFile, 'utf8'));
const privateJwk = keyFile.signingKeys[0].privateJwk;

async function meWith(token: string) {
  return app.gql(ME, {}, bearer(token));
}

function expectUnauthenticated(response: Awaited<ReturnType<typeof meWith>>, reason?: string) {
  expect(response.data?.me ?? null).toBeNull();
  expect(response.errors).toHaveLength(1);
  expect(response.errors![0]!.extensions).toMatchObject({ code: 'UNAUTHENTICATED', ...(reason ? { reason } : {}) });
}

/** Signs a token with the server's real private key but claims of our choosing. */
async function forge(claims: Record<string, unknown>, header: Record<string, unknown> = {}) {
  const key = await importJWK({ ...privateJwk, alg: 'EdDSA' }, 'EdDSA');
  const now = Math.floor(clock.now() / 1000);
  return new SignJWT({ sid: 'x', jti: 'j', ...claims })
    .setProtectedHeader({ alg: 'EdDSA', kid: keyFile.signingKeys[0].kid, ...header })
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(key);
}

describe('me and access tokens', () => {
  it('answers null without an Authorization header', async () => {
    const response = await app.gql(ME);
    expect(response.errors).toBeUndefined();
    expect(response.data.me).toBeNull();
  });

  it('returns the caller for a valid token', async () => {
    const { accessToken, user, username } = await registerUser(app);
    const response = await meWith(accessToken);
    expect(response.errors).toBeUndefined();
    expect(response.data.me).toEqual({ id: user.id, username, email: null, role: 'USER' });
  });

  it('issues EdDSA tokens with a kid and the required claims', async () => {
    const { accessToken, user } = await registerUser(app);
    const header = decodeProtectedHeader(accessToken);
    expect(header).toMatchObject({ alg: 'EdDSA', kid: keyFile.signingKeys[0].kid });
    const payload = JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString());
    expect(payload).toMatchObject({ iss: 'gatehouse', aud: 'gatehouse', sub: user.id });
    expect(payload.exp - payload.iat).toBe(900);
    expect(typeof payload.sid).toBe('string');
    expect(typeof payload.jti).toBe('string');
  });

  it('rejects an expired token', async () => {
    const { accessToken } = await registerUser(app);
    clock.advance(901_000 + 5_000);
    try {
      expectUnauthenticated(await meWith(accessToken), 'expired');
    } finally {
      clock.advance(-(901_000 + 5_000));
    }
    expect((await meWith(accessToken)).data.me).not.toBeNull();
  });

  it('rejects a token with a tampered payload', async () => {
    const { accessToken } = await registerUser(app);
    const other = await registerUser(app);
    const [header, payload, signature] = accessToken.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const tampered = Buffer.from(JSON.stringify({ ...claims, sub: other.user.id })).toString('base64url');
    expectUnauthenticated(await meWith(`${header}.${tampered}.${signature}`), 'invalid');
  });

  it('rejects a token with a tampered signature', async () => {
    const { accessToken } = await registerUser(app);
    const flipped = accessToken.slice(0, -2) + (accessToken.at(-2) === 'A' ? 'B' : 'A') + accessToken.at(-1);
    expectUnauthenticated(await meWith(flipped));
  });

  it('rejects alg none', async () => {
    const { user } = await registerUser(app);
    const token = new UnsecuredJWT({ sid: 'x' }).setIssuer('gatehouse').setAudience('gatehouse').setSubject(user.id).setExpirationTime('5m').encode();
    expectUnauthenticated(await meWith(token));
  });

  it('rejects an HS256 token signed with the public key (algorithm confusion)', async () => {
    const { user } = await registerUser(app);
    const publicKeyBytes = new TextEncoder().encode(JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: privateJwk.x }));
    const token = await new SignJWT({ sid: 'x', jti: 'j' })
      .setProtectedHeader({ alg: 'HS256', kid: keyFile.signingKeys[0].kid })
      .setIssuer('gatehouse')
      .setAudience('gatehouse')
      .setSubject(user.id)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(publicKeyBytes);
    expectUnauthenticated(await meWith(token), 'invalid');
  });

  it('rejects an unknown kid, a wrong issuer and a wrong audience', async () => {
    const { user } = await registerUser(app);
    const base = { sub: user.id, iss: 'gatehouse', aud: 'gatehouse' };
    expectUnauthenticated(await meWith(await forge(base, { kid: 'unknown-kid' })), 'invalid');
    expectUnauthenticated(await meWith(await forge({ ...base, iss: 'someone-else' })), 'invalid');
    expectUnauthenticated(await meWith(await forge({ ...base, aud: 'another-api' })), 'invalid');
  });

  it('rejects a validly signed token whose session does not exist', async () => {
    const { user } = await registerUser(app);
    expectUnauthenticated(await meWith(await forge({ sub: user.id, iss: 'gatehouse', aud: 'gatehouse', sid: crypto.randomUUID() })), 'session_ended');
  });

  it('rejects the token of a revoked session at once', async () => {
    const { accessToken } = await registerUser(app);
    expect((await meWith(accessToken)).data.me).not.toBeNull(); // now cached as active
    const response = await app.gql('mutation { logout }', {}, bearer(accessToken));
    expect(response.data.logout).toBe(true);
    expectUnauthenticated(await meWith(accessToken), 'session_ended');
  });

  it('rejects the token of a disabled or a deleted user', async () => {
    const disabled = await registerUser(app);
    await rawDb(app.services).user.update({ where: { id: disabled.user.id }, data: { disabledAt: new Date() } });
    expectUnauthenticated(await meWith(disabled.accessToken));

    const deleted = await registerUser(app);
    await rawDb(app.services).user.delete({ where: { id: deleted.user.id } });
    expectUnauthenticated(await meWith(deleted.accessToken));
  });

  it('rejects a malformed Authorization header', async () => {
    for (const header of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer a b', `Bearer ${'x'.repeat(5000)}`, 'Bearer not.a.jwt']) {
      const response = await app.gql(ME, {}, { authorization: header });
      expect(response.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
  });

  it('serves a JWKS that verifies an issued token', async () => {
    const { accessToken, user } = await registerUser(app);
    const response = await app.yoga.fetch('http://gatehouse.test/.well-known/jwks.json');
    expect(response.status).toBe(200);
    const jwks = await response.json();
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).not.toHaveProperty('d');
    const { payload } = await jwtVerify(accessToken, createLocalJWKSet(jwks), {
      issuer: 'gatehouse',
      audience: 'gatehouse',
      currentDate: new Date(clock.now()),
    });
    expect(payload.sub).toBe(user.id);
  });

  it('keeps the key file private and reuses it on the next start', async () => {
    expect(statSync(app.services.config.keysFile).mode & 0o777).toBe(0o600);
    const { accessToken } = await registerUser(app);
    const again = await createTestApp({ DATA_DIR: app.services.config.dataDir, DATABASE_URL: app.services.config.databaseUrl });
    expect(again.keysCreated).toBe(false);
    expect((await again.gql(ME, {}, bearer(accessToken))).data.me).not.toBeNull();
  });
});

const hsApp = await createTestApp({ JWT_SECRET: 'a shared secret that is at least 32 bytes long' });

describe('HS256 mode', () => {
  it('signs with HS256 when a secret is configured, and still pins the algorithm', async () => {
    const { accessToken } = await registerUser(hsApp);
    expect(decodeProtectedHeader(accessToken).alg).toBe('HS256');
    expect((await hsApp.gql(ME, {}, bearer(accessToken))).data.me).not.toBeNull();
    // An EdDSA token of the other app is refused here.
    const { accessToken: edToken } = await registerUser(app);
    expect((await hsApp.gql(ME, {}, bearer(edToken))).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    // The shared secret is never published.
    const jwks = await (await hsApp.yoga.fetch('http://gatehouse.test/.well-known/jwks.json')).json();
    expect(jwks.keys).toEqual([]);
  });
});
