import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
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

export interface KeyFileCreation {
  /**
   * Called only when there is no key file, before one is created: throws to refuse (new keys would end
   * every existing session, so the caller checks whether anything depends on the old ones).
   */
  readonly beforeCreate?: () => Promise<void>;
}

/**
 * Reads the key file, creating it on first start.
 *
 * Creation is atomic for readers and exclusive between writers: the keys are written to a temporary
 * file, flushed to disk, and then hard-linked to the final name. link() fails if the name exists, so of
 * two processes starting at once exactly one wins and the other reads the winner's file; and the final
 * name never points at a partly written file (opening it with O_EXCL and then writing would let a
 * reader in between the two).
 */
export async function loadOrCreateKeyFile(file: string, now: Date, creation: KeyFileCreation = {}): Promise<{ keys: KeyFile; created: boolean }> {
  try {
    return { keys: await readKeyFile(file), created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await creation.beforeCreate?.();
  const keys: KeyFile = {
    version: 1,
    signingKeys: [await generateSigningKey(now)],
    refreshTokenSecret: randomBytes(32).toString('base64url'),
  };
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  let created = true;
  await writeThroughTemporary(file, serialize(keys), async (temporary) => {
    try {
      await link(temporary, file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
        throw new Error(
          `Cannot create the key file ${file}: its file system does not support hard links, which creating it safely needs. Put KEYS_FILE on a local file system.`,
        );
      }
      if (code !== 'EEXIST') throw error;
      created = false;
    }
  });
  return created ? { keys, created } : { keys: await readKeyFile(file), created };
}

/**
 * What is wrong with the key file's permissions, or null. It holds the private signing key and the
 * refresh-token key: anyone who can read it can sign in as anybody, so only its owner may have access.
 */
export async function keyFilePermissionProblem(file: string): Promise<string | null> {
  if (process.platform === 'win32') return null; // No POSIX mode bits to check.
  const mode = (await stat(file)).mode & 0o777;
  if ((mode & 0o077) === 0) return null;
  return `Key file ${file} can be accessed by its group or by others (mode ${mode.toString(8).padStart(4, '0')}); it holds the private signing keys. Run: chmod 600 ${file}`;
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
 * ago than a token lifetime are dropped. The file is replaced atomically (a flushed temporary file
 * renamed over it) so a server reading it never sees half of it, and the new file gets the old one's
 * owner, group and mode: whoever runs the rotation (root, another member of the group), the server
 * must still be able to read it. If that cannot be done, nothing is replaced and the error says why.
 */
export async function rotateSigningKeys(
  file: string,
  jwt: { readonly secret: string | undefined; readonly accessTokenTtlSeconds: number },
  now: Date,
): Promise<{ kid: string; retired: number }> {
  if (jwt.secret !== undefined) {
    throw new Error('JWT_SECRET is set, so tokens are HS256 with that secret: rotate by changing JWT_SECRET (every access token then ends).');
  }
  const original = await stat(file).catch((error: NodeJS.ErrnoException) => {
    // Creating keys here would end every session: that is never what a rotation means.
    if (error.code === 'ENOENT')
      throw new Error(`There is no key file at ${file}, so there is nothing to rotate. Check KEYS_FILE and DATA_DIR, or restore the file from backup.`);
    throw error;
  });
  const mode = original.mode & 0o7777;
  if ((mode & 0o400) === 0) {
    throw new Error(
      `Key file ${file} is not readable by its owner (mode ${(mode & 0o777).toString(8).padStart(4, '0')}), so no server running as its owner can read it. Fix its mode (chmod 600) first.`,
    );
  }
  const keys = await readKeyFile(file);
  const fresh = await generateSigningKey(now);
  const previous = keys.signingKeys.map((key) => (key.retiredAt ? key : { ...key, retiredAt: now.toISOString() }));
  const kept = previous.filter((key) => isStillVerifying(key, jwt.accessTokenTtlSeconds, now));
  const next: KeyFile = { ...keys, signingKeys: [fresh, ...kept] };
  await writeThroughTemporary(
    file,
    serialize(next),
    (temporary) => rename(temporary, file),
    async (handle) => {
      try {
        await handle.chown(original.uid, original.gid);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EPERM' && code !== 'EINVAL') throw error;
        throw new Error(
          `Cannot give the new key file the owner of ${file} (uid ${original.uid}, gid ${original.gid}) while running as uid ${process.getuid?.()}: ` +
            'the server could not read the result. Run rotate-keys as the user the server runs as (or as root). The key file was not changed.',
        );
      }
      await handle.chmod(mode);
    },
  );
  return { kid: fresh.kid, retired: previous.length - kept.length };
}

const serialize = (keys: KeyFile) => `${JSON.stringify(keys, null, 2)}\n`;

/**
 * Writes `content` to a new temporary file beside `file` (mode 0600 until `adjust` changes it), flushes
 * it to disk, then lets `place` put it at `file` (link or rename, both atomic) and flushes the directory.
 * Whatever happens, no temporary file is left behind.
 */
async function writeThroughTemporary(
  file: string,
  content: string,
  place: (temporary: string) => Promise<void>,
  adjust?: (handle: FileHandle) => Promise<void>,
): Promise<void> {
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(temporary, 'wx', 0o600);
  try {
    try {
      await handle.writeFile(content, 'utf8');
      await adjust?.(handle);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await place(temporary);
    await syncDirectory(path.dirname(file));
  } finally {
    // After link() this is a second name for the file; after rename() it is already gone.
    await unlink(temporary).catch(() => undefined);
  }
}

/** Makes a new directory entry (a link or rename) survive a power cut. */
async function syncDirectory(directory: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
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
