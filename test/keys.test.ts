import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { AccessTokenService } from '../src/auth/access-tokens.js';
import { AuthenticationError } from '../src/auth/errors.js';
import { loadOrCreateKeyFile, readKeyFile, rotateSigningKeys } from '../src/auth/keys.js';
import { ManualClock } from './support/app.js';

const jwt = { issuer: 'gatehouse', audience: 'gatehouse', secret: undefined, accessTokenTtlSeconds: 900 };

describe('signing key rotation', () => {
  it('keeps a retired key until its tokens have expired, then drops it from the JWKS and the file', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'gatehouse-keys-')), 'keys.json');
    const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
    const { keys } = await loadOrCreateKeyFile(file, new Date(clock.now()));
    const first = { kid: keys.signingKeys[0]!.kid };
    const service = await AccessTokenService.create(jwt, keys, clock);
    const oldToken = await service.sign('user', 'session');

    const second = await rotateSigningKeys(file, jwt, new Date(clock.now()));
    await service.reload(await readKeyFile(file));
    expect(service.signingKeyId).toBe(second.kid);
    expect(
      service
        .jwks()
        .keys.map((key) => key.kid)
        .sort(),
    ).toEqual([first.kid, second.kid].sort());
    await expect(service.verify(oldToken)).resolves.toMatchObject({ userId: 'user' });

    // Past one token lifetime (plus the margin), nothing the old key signed can still be valid.
    clock.advance((900 + 61) * 1000);
    await service.reload(await readKeyFile(file));
    expect(service.jwks().keys.map((key) => key.kid)).toEqual([second.kid]);
    const third = await rotateSigningKeys(file, jwt, new Date(clock.now()));
    expect(third.retired).toBe(1);
    const kids = JSON.parse(readFileSync(file, 'utf8')).signingKeys.map((key: { kid: string }) => key.kid);
    expect(kids).toEqual([third.kid, second.kid]);
  });

  it('refuses to rotate when tokens are HS256 with a configured secret', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'gatehouse-keys-')), 'keys.json');
    await expect(rotateSigningKeys(file, { ...jwt, secret: 'x'.repeat(32) }, new Date())).rejects.toThrow(/JWT_SECRET/);
  });
});

describe('a token signed with a key this process has not read yet (several instances, one key file)', () => {
  const unknownKidToken = async (kid: string) => {
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    return new SignJWT({ sid: 'session' })
      .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })
      .setIssuer(jwt.issuer)
      .setAudience(jwt.audience)
      .setSubject('user')
      .setIssuedAt()
      .setExpirationTime('5m')
      .setJti('jti')
      .sign(privateKey);
  };
  const madeUpKid = () => randomBytes(32).toString('base64url');

  async function twoInstances() {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'gatehouse-keys-')), 'keys.json');
    const clock = new ManualClock();
    const { keys } = await loadOrCreateKeyFile(file, new Date(clock.now()));
    let reads = 0;
    const loadKeys = () => {
      reads += 1;
      return readKeyFile(file);
    };
    const a = await AccessTokenService.create(jwt, keys, clock, { loadKeys: () => readKeyFile(file) });
    const b = await AccessTokenService.create(jwt, keys, clock, { loadKeys });
    return { file, clock, a, b, reads: () => reads };
  }

  it('verifies at once: the unknown kid makes it read the key file once and retry', async () => {
    const { file, clock, a, b, reads } = await twoInstances();
    const { kid } = await rotateSigningKeys(file, jwt, new Date(clock.now()));
    await a.reloadFromFile();
    const token = await a.sign('user', 'session');
    expect(b.signingKeyId).not.toBe(kid);
    await expect(b.verify(token)).resolves.toMatchObject({ userId: 'user', sessionId: 'session' });
    expect(reads()).toBe(1);
    expect(b.signingKeyId).toBe(kid);
    expect(b.jwks().keys.map((key) => key.kid)).toContain(kid);
  });

  it('reads the file at most once a second however many made-up kids arrive, parallel or not', async () => {
    const { clock, b, reads } = await twoInstances();
    const burst = await Promise.all(Array.from({ length: 50 }, () => unknownKidToken(madeUpKid())));
    const outcomes = await Promise.allSettled(burst.map((token) => b.verify(token)));
    expect(outcomes.every((outcome) => outcome.status === 'rejected' && (outcome.reason as AuthenticationError).reason === 'invalid')).toBe(true);
    expect(reads()).toBe(1);
    for (let i = 0; i < 20; i += 1) await expect(b.verify(await unknownKidToken(madeUpKid()))).rejects.toThrow(AuthenticationError);
    expect(reads()).toBe(1);
    clock.advance(999);
    await expect(b.verify(await unknownKidToken(madeUpKid()))).rejects.toThrow(AuthenticationError);
    expect(reads()).toBe(1);
    clock.advance(1);
    await expect(b.verify(await unknownKidToken(madeUpKid()))).rejects.toThrow(AuthenticationError);
    expect(reads()).toBe(2);
    // A kid that is not one of our thumbprints, or no kid at all, causes no read.
    clock.advance(1_000);
    await expect(b.verify(await unknownKidToken('not-a-thumbprint'))).rejects.toThrow(AuthenticationError);
    expect(reads()).toBe(2);
  });

  it('never reads a file under HS256 (JWT_SECRET): there is no key to rotate in', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'gatehouse-keys-')), 'keys.json');
    const clock = new ManualClock();
    const { keys } = await loadOrCreateKeyFile(file, new Date(clock.now()));
    let reads = 0;
    const service = await AccessTokenService.create({ ...jwt, secret: 'x'.repeat(32) }, keys, clock, {
      loadKeys: () => {
        reads += 1;
        return readKeyFile(file);
      },
    });
    await expect(service.verify(await unknownKidToken(madeUpKid()))).rejects.toThrow(AuthenticationError);
    expect(reads).toBe(0);
  });

  it('applies reloads in the order they were asked for: an old file read slowly never replaces a newer one', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'gatehouse-keys-')), 'keys.json');
    const clock = new ManualClock();
    const { keys: before } = await loadOrCreateKeyFile(file, new Date(clock.now()));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reads = 0;
    const service = await AccessTokenService.create(jwt, before, clock, {
      // The first read is slow and returns the file as it was before the rotation; the second reads the new one.
      loadKeys: async () => {
        reads += 1;
        if (reads === 1) {
          await gate;
          return before;
        }
        return readKeyFile(file);
      },
    });
    const { kid } = await rotateSigningKeys(file, jwt, new Date(clock.now()));
    const first = service.reloadFromFile();
    const second = service.reloadFromFile();
    await new Promise((resolve) => setTimeout(resolve, 20));
    release();
    await Promise.all([first, second]);
    expect(reads).toBe(2);
    expect(service.signingKeyId).toBe(kid);
  });
});
