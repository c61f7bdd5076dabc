import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { z } from 'zod';

// The server's secrets: Ed25519 signing keys for access tokens and the HMAC key that derives refresh
// tokens. They live in one file outside the database (mode 0600), so a leaked database alone can
// neither mint access tokens nor replay refresh tokens.

const storedSigningKey = z.object({
  kid: z.string().min(1),
  alg: z.literal('EdDSA'),
  createdAt: z.string(),
  /** Set when a newer key took over signing; the key then only verifies, until its tokens have expired. */
  retiredAt: z.string().optional(),
  privateJwk: z.looseObject({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), d: z.string(), x: z.string() }),
});

const keyFileSchema = z.object({
  version: z.literal(1),
  /** Newest first: the first key signs, the others only verify until their tokens have expired. */
  signingKeys: z.array(storedSigningKey).min(1),
  refreshTokenSecret: z.string().min(43),
});

export type KeyFile = z.infer<typeof keyFileSchema>;
export type StoredSigningKey = z.infer<typeof storedSigningKey>;

export async function generateSigningKey(now: Date): Promise<StoredSigningKey> {
  const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const privateJwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint({ kty: privateJwk.kty, crv: privateJwk.crv, x: privateJwk.x } as JWK);
  return storedSigningKey.parse({ kid, alg: 'EdDSA', createdAt: now.toISOString(), privateJwk });
}

/**
 * Reads the key file, creating it on first start. Creation uses O_EXCL so two processes starting at
 * once cannot each write different keys; the loser reads the winner's file.
 */
export async function loadOrCreateKeyFile(file: string, now: Date): Promise<{ keys: KeyFile; created: boolean }> {
  try {
    return { keys: await readKeyFile(file), created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const keys: KeyFile = {
    version: 1,
    signingKeys: [await generateSigningKey(now)],
    refreshTokenSecret: randomBytes(32).toString('base64url'),
  };
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    await writeFile(file, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    return { keys, created: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return { keys: await readKeyFile(file), created: false };
  }
}

/** Whether a retired key can still have valid tokens: it retired less than one token lifetime ago. */
export function isStillVerifying(key: StoredSigningKey, accessTokenTtlSeconds: number, now: Date): boolean {
  if (key.retiredAt === undefined) return true;
  // Margin: a server notices the rotation within a few seconds and may sign with the old key until then.
  return now.getTime() < Date.parse(key.retiredAt) + (accessTokenTtlSeconds + RETIREMENT_MARGIN_SECONDS) * 1000;
}

const RETIREMENT_MARGIN_SECONDS = 60;

export async function readKeyFile(file: string): Promise<KeyFile> {
  return parseKeyFile(await readFile(file, 'utf8'), file);
}

/**
 * Puts a new signing key in front; the previous one is retired (verify only) and keys retired longer
 * ago than a token lifetime are dropped. The file is replaced atomically so a server reading it never
 * sees half of it.
 */
export async function rotateSigningKeys(
  file: string,
  jwt: { readonly secret: string | undefined; readonly accessTokenTtlSeconds: number },
  now: Date,
): Promise<{ kid: string; retired: number }> {
  if (jwt.secret !== undefined) {
    throw new Error('JWT_SECRET is set, so tokens are HS256 with that secret: rotate by changing JWT_SECRET (every access token then ends).');
  }
  const { keys } = await loadOrCreateKeyFile(file, now);
  const fresh = await generateSigningKey(now);
  const previous = keys.signingKeys.map((key) => (key.retiredAt ? key : { ...key, retiredAt: now.toISOString() }));
  const kept = previous.filter((key) => isStillVerifying(key, jwt.accessTokenTtlSeconds, now));
  const next: KeyFile = { ...keys, signingKeys: [fresh, ...kept] };
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  await rename(temporary, file);
  return { kid: fresh.kid, retired: previous.length - kept.length };
}

function parseKeyFile(text: string, file: string): KeyFile {
  // Never echo the content (JSON.parse's message quotes it): it is the server's private key material.
  const invalid = new Error(`Key file ${file} is not a valid Gatehouse key file.`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw invalid;
  }
  const parsed = keyFileSchema.safeParse(json);
  if (!parsed.success) throw invalid;
  return parsed.data;
}
