import { readFileSync } from 'node:fs';
import { decodeJwt, decodeProtectedHeader, importJWK, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { rotateSigningKeys } from '../../src/auth/keys.js';
import { onPostgres } from '../support/db.js';
import { type Instance, pollUntil, useInstances } from '../support/instances.js';
import { loginSession, meAccepted, register } from './operations.js';

// `rotate-keys` on a key file that several instances share (one volume): every instance takes the new key
// up, and a token signed with it verifies everywhere at once, even on an instance whose watcher (app.ts,
// every second) has not read the file yet (access-tokens.ts reads it again on an unknown kid).
// Only on PostgreSQL (npm run test:postgres): several servers on one database; the SQLite run skips it.

const kidOf = (token: string) => decodeProtectedHeader(token).kid;
const jwksKids = async (instance: Instance) =>
  ((await (await instance.get('/.well-known/jwks.json')).json()) as { keys: { kid: string }[] }).keys.map((key) => key.kid);
// LOG_LEVEL=info below: the watcher's "signing keys reloaded" line says whether it had fired.
const watcherReloads = (instance: Instance) => instance.output().split('"event":"keys_reloaded"').length - 1;

describe.runIf(onPostgres)('rotate-keys with two instances on one key file', { timeout: 120_000 }, () => {
  const cluster = useInstances({ count: 2, env: { LOG_LEVEL: 'info' } });

  it('reaches both: a token A signs with the new key verifies on B at once, both JWKS list it within seconds, old tokens stay valid', async () => {
    const [a, b] = cluster.instances;
    const user = await register(a!);
    const oldKid = kidOf(user.accessToken);
    const oldToken = (await loginSession(b!, user.username, user.password)).accessToken;

    const rotation = await cluster.admin(['rotate-keys']);
    expect(rotation.code, rotation.stderr).toBe(0);
    const newKid = /New signing key (\S+) is current/.exec(rotation.stdout)?.[1];
    expect(newKid).toBeDefined();
    expect(newKid).not.toBe(oldKid);

    // A logs in until it signs with the new key; then B gets the token at once.
    let token = '';
    const waited = await pollUntil(
      async () => {
        token = (await loginSession(a!, user.username, user.password)).accessToken;
        return kidOf(token) === newKid;
      },
      10_000,
      performance.now(),
      50,
    );
    expect(waited, 'A signs with the new key within 10 s').not.toBeNull();
    const bHadReloaded = watcherReloads(b!) > 0;
    expect(await meAccepted(b!, token)).toBe(true);
    console.log(
      `[multi-instance] A signed with the new key ${waited!.toFixed(0)} ms after rotate-keys; B's watcher had ${bHadReloaded ? 'already' : 'not yet'} read the file`,
    );

    for (const instance of cluster.instances) {
      const listed = await pollUntil(async () => (await jwksKids(instance)).includes(newKid!), 5_000);
      expect(listed, `JWKS of ${instance.name} lists the new key`).not.toBeNull();
      expect(await jwksKids(instance)).toContain(oldKid);
      expect(await meAccepted(instance, oldToken)).toBe(true);
      expect(await meAccepted(instance, token)).toBe(true);
    }
  });

  it('a token signed with a key rotated in a moment ago verifies on an instance that has not read the file yet', async () => {
    const [a, b] = cluster.instances;
    const user = await register(a!);
    const claims = decodeJwt(user.accessToken);
    // Unknown kids cause at most one read of the key file a second per process; the test before may have
    // caused B's last one a moment ago (on a loaded machine this test starts within that second).
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const before = watcherReloads(b!);
    // In process (the CLI's own function), to sign within milliseconds of the rename: B's watcher polls once a second.
    const { kid } = await rotateSigningKeys(cluster.keysFile, { secret: undefined, accessTokenTtlSeconds: 900 }, new Date());
    const stored = JSON.parse(readFileSync(cluster.keysFile, 'utf8')).signingKeys[0];
    expect(stored.kid).toBe(kid);
    // Signed as A would, with the new private key, naming `withKid`.
    const signedAs = async (withKid: string) =>
      new SignJWT({ sid: claims.sid })
        .setProtectedHeader({ alg: 'EdDSA', kid: withKid, typ: 'JWT' })
        .setIssuer('gatehouse')
        .setAudience('gatehouse')
        .setSubject(claims.sub!)
        .setIssuedAt()
        .setExpirationTime('5m')
        .setJti(crypto.randomUUID())
        .sign(await importJWK({ ...stored.privateJwk, alg: 'EdDSA' }, 'EdDSA'));
    const token = await signedAs(kid);
    expect(await meAccepted(b!, token)).toBe(true);
    const bHadReloaded = watcherReloads(b!) > before;
    console.log(`[multi-instance] token of a key rotated in just now: accepted by B; B's watcher had ${bHadReloaded ? 'already' : 'not yet'} read the file`);
    // A made-up kid of the same shape is refused (and costs B at most one read of the file a second).
    const forged = await signedAs('A'.repeat(43));
    expect(await meAccepted(b!, forged)).toBe(false);
  });
});
