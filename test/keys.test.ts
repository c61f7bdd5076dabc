import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AccessTokenService } from '../src/auth/access-tokens.js';
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
