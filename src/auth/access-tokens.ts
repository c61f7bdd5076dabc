import { randomUUID } from 'node:crypto';
import { SignJWT, errors as joseErrors, importJWK, jwtVerify, type CryptoKey, type JWK, type JWTHeaderParameters } from 'jose';
import { LRUCache } from 'lru-cache';
import type { Clock } from './clock.js';
import { AuthenticationError } from './errors.js';
import { isStillVerifying, type KeyFile } from './keys.js';

export interface AccessTokenSettings {
  readonly issuer: string;
  readonly audience: string;
  readonly secret: string | undefined;
  readonly accessTokenTtlSeconds: number;
}

export interface AccessClaims {
  readonly userId: string;
  readonly sessionId: string;
  readonly expiresAt: number;
}

export interface AccessTokenCacheOptions {
  /** Most verified tokens remembered (LRU); 0 turns the cache off. */
  readonly maxEntries: number;
}

export interface AccessTokenServiceOptions {
  readonly cache?: AccessTokenCacheOptions;
  /**
   * Reads the key file again (keys.ts readKeyFile). Given, the service can take up keys another process
   * rotated in: reloadFromFile, and a token whose `kid` is unknown (see #reloadForUnknownKid).
   */
  readonly loadKeys?: () => Promise<KeyFile>;
}

/**
 * Least time between two key-file reads caused by tokens with an unknown `kid`. Anyone can send such a
 * token without credentials, so this (not the number of requests) bounds the work they cause: one file
 * read and key import per second per process, however many made-up kids arrive.
 */
const UNKNOWN_KID_RELOAD_INTERVAL_MS = 1_000;

// Our kids are RFC 7638 thumbprints (SHA-256, base64url, 43 characters): a token naming anything else
// was not signed by a key of ours, rotated or not, and does not get to cause a read.
const KID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** Seconds of clock skew allowed on `exp`, as jose applies it. */
const CLOCK_TOLERANCE_SECONDS = 5;

interface Keyring {
  readonly algorithm: 'EdDSA' | 'HS256';
  readonly signingKid: string;
  readonly signingKey: CryptoKey;
  readonly verificationKeys: ReadonlyMap<string, VerificationKey>;
}

/** Imports the keys once as CryptoKeys. Retired keys verify (and are published) until their tokens have expired. */
async function buildKeyring(settings: AccessTokenSettings, keys: KeyFile, now: Date): Promise<Keyring> {
  if (settings.secret !== undefined) {
    const secret = new TextEncoder().encode(settings.secret);
    // jose would import a raw Uint8Array secret again on every call; a CryptoKey is imported once.
    const key = await crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    return { algorithm: 'HS256', signingKid: 'hs256', signingKey: key, verificationKeys: new Map([['hs256', { key, publicJwk: undefined }]]) };
  }
  const verificationKeys = new Map<string, VerificationKey>();
  for (const stored of keys.signingKeys.filter((key) => isStillVerifying(key, settings.accessTokenTtlSeconds, now))) {
    const { d: _private, ...publicJwk } = stored.privateJwk;
    verificationKeys.set(stored.kid, {
      key: (await importJWK({ ...publicJwk, alg: 'EdDSA' }, 'EdDSA')) as CryptoKey,
      publicJwk: { ...publicJwk, kid: stored.kid, alg: 'EdDSA', use: 'sig' },
    });
  }
  const current = keys.signingKeys[0]!;
  const signingKey = (await importJWK({ ...current.privateJwk, alg: 'EdDSA' }, 'EdDSA')) as CryptoKey;
  return { algorithm: 'EdDSA', signingKid: current.kid, signingKey, verificationKeys };
}

interface VerificationKey {
  readonly key: CryptoKey | Uint8Array;
  readonly publicJwk: JWK | undefined;
}

/**
 * Signs and verifies access tokens (JWT). EdDSA with the key file's keys by default, HS256 when a shared
 * secret is configured. Keys are imported once as CryptoKeys: re-importing them per call costs throughput
 * (README, Performance).
 */
export class AccessTokenService {
  // Tokens that passed full verification, keyed by the exact token string, so a client sending the same
  // token on every request pays for the Ed25519 signature check once (a large share of `me`'s CPU). Only
  // valid tokens enter, so garbage cannot fill it; expiry is still checked on every hit, and whether the
  // session is still alive is the SessionService's check, made on every request regardless.
  readonly #verified: LRUCache<string, AccessClaims> | undefined;

  #keyring: Keyring;
  readonly #loadKeys: (() => Promise<KeyFile>) | undefined;
  // Reloads run one after another, each reading the file inside its turn: a slow read of the old file
  // can never land after a newer one and put the old keys back.
  #reloads: Promise<void> = Promise.resolve();
  #unknownKidReload: Promise<void> | undefined;
  #lastUnknownKidReloadAt = Number.NEGATIVE_INFINITY;

  private constructor(
    private readonly settings: AccessTokenSettings,
    private readonly clock: Clock,
    keyring: Keyring,
    options: AccessTokenServiceOptions,
  ) {
    this.#keyring = keyring;
    this.#loadKeys = options.loadKeys;
    const maxEntries = options.cache?.maxEntries ?? 10_000;
    this.#verified = maxEntries > 0 ? new LRUCache({ max: maxEntries }) : undefined;
  }

  static async create(settings: AccessTokenSettings, keys: KeyFile, clock: Clock, options: AccessTokenServiceOptions = {}): Promise<AccessTokenService> {
    return new AccessTokenService(settings, clock, await buildKeyring(settings, keys, new Date(clock.now())), options);
  }

  /** Takes up a rotated key file (admin CLI `rotate-keys`): its first key signs from now on. */
  reload(keys: KeyFile): Promise<void> {
    return this.#reloadWith(async () => keys);
  }

  /** Reads the key file again and takes it up (the server's watcher on the file); rejects if it cannot be read. */
  reloadFromFile(): Promise<void> {
    const load = this.#loadKeys;
    if (!load) return Promise.reject(new Error('this AccessTokenService was created without loadKeys'));
    return this.#reloadWith(load);
  }

  #reloadWith(read: () => Promise<KeyFile>): Promise<void> {
    if (this.settings.secret !== undefined) return Promise.resolve();
    const run = this.#reloads.then(async () => {
      const keys = await read();
      this.#keyring = await buildKeyring(this.settings, keys, new Date(this.clock.now()));
    });
    this.#reloads = run.catch(() => undefined);
    return run;
  }

  get signingKeyId(): string {
    return this.#keyring.signingKid;
  }

  get ttlSeconds(): number {
    return this.settings.accessTokenTtlSeconds;
  }

  /** The public keys, for other services to verify our tokens. Empty under HS256: a shared secret is never published. */
  jwks(): { keys: JWK[] } {
    return { keys: [...this.#keyring.verificationKeys.values()].flatMap((key) => (key.publicJwk ? [key.publicJwk] : [])) };
  }

  async sign(userId: string, sessionId: string): Promise<string> {
    const issuedAt = Math.floor(this.clock.now() / 1000);
    return new SignJWT({ sid: sessionId })
      .setProtectedHeader({ alg: this.#keyring.algorithm, kid: this.#keyring.signingKid, typ: 'JWT' })
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.audience)
      .setSubject(userId)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + this.settings.accessTokenTtlSeconds)
      .setJti(randomUUID())
      .sign(this.#keyring.signingKey);
  }

  /** Verifies signature, algorithm, issuer, audience and lifetime; throws AuthenticationError otherwise. */
  async verify(token: string): Promise<AccessClaims> {
    const cached = this.#verified?.get(token);
    if (cached) {
      // The same rule as jose's: expired once exp <= now - tolerance (whole seconds). `exp` is a wall-clock
      // time written into the token, so this is the wall clock (no duration of ours is measured here).
      if (cached.expiresAt / 1000 <= Math.floor(this.clock.now() / 1000) - CLOCK_TOLERANCE_SECONDS) {
        this.#verified!.delete(token);
        throw new AuthenticationError('expired', 'The access token has expired.');
      }
      return cached;
    }
    const claims = await this.#verifyFully(token);
    this.#verified?.set(token, claims);
    return claims;
  }

  async #verifyFully(token: string): Promise<AccessClaims> {
    try {
      const { payload } = await jwtVerify(token, (header: JWTHeaderParameters) => this.keyFor(header), {
        // Pinned: a token naming any other algorithm (none, HS256 against our public key, ...) is refused.
        algorithms: [this.#keyring.algorithm],
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        requiredClaims: ['sub', 'sid', 'iat', 'exp', 'jti'],
        currentDate: new Date(this.clock.now()),
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      });
      if (typeof payload.sid !== 'string' || typeof payload.sub !== 'string') {
        throw new AuthenticationError('invalid', 'The access token is invalid.');
      }
      return Object.freeze({ userId: payload.sub, sessionId: payload.sid, expiresAt: payload.exp! * 1000 });
    } catch (error) {
      if (error instanceof AuthenticationError) throw error;
      if (error instanceof joseErrors.JWTExpired) throw new AuthenticationError('expired', 'The access token has expired.');
      if (error instanceof joseErrors.JWSInvalid || error instanceof joseErrors.JWTInvalid) {
        throw new AuthenticationError('malformed', 'The access token is malformed.');
      }
      throw new AuthenticationError('invalid', 'The access token is invalid.');
    }
  }

  private async keyFor(header: JWTHeaderParameters): Promise<CryptoKey | Uint8Array> {
    const { kid } = header;
    const key = kid === undefined ? undefined : this.#keyring.verificationKeys.get(kid);
    if (key) return key.key;
    if (kid !== undefined && (await this.#reloadForUnknownKid(kid))) {
      const reloaded = this.#keyring.verificationKeys.get(kid);
      if (reloaded) return reloaded.key;
    }
    throw new AuthenticationError('invalid', 'The access token is invalid.');
  }

  /**
   * Another instance may sign with a key that `rotate-keys` put into the shared key file a moment ago,
   * before this process's watcher (app.ts, every second) has read it: the token would be refused here
   * although the JWKS of its issuer already lists the key. So an unknown kid of our shape makes the
   * process read the key file once, and the verification is retried once. Tokens arriving while that
   * read runs wait for it; after it, further unknown kids cause no read until UNKNOWN_KID_RELOAD_INTERVAL_MS
   * of monotonic time have passed, so made-up kids cost at most one read per second. A genuine new key
   * refused in that second is taken up by the watcher shortly after. Returns whether a read was waited for.
   */
  async #reloadForUnknownKid(kid: string): Promise<boolean> {
    if (!this.#loadKeys || this.settings.secret !== undefined || !KID_PATTERN.test(kid)) return false;
    if (this.#unknownKidReload) {
      await this.#unknownKidReload;
      return true;
    }
    const now = this.clock.monotonicMs();
    if (now - this.#lastUnknownKidReloadAt < UNKNOWN_KID_RELOAD_INTERVAL_MS) return false;
    this.#lastUnknownKidReloadAt = now;
    // A file that cannot be read leaves the keys in memory in use; the watcher logs why.
    const reload = this.reloadFromFile().catch(() => undefined);
    this.#unknownKidReload = reload;
    try {
      await reload;
    } finally {
      this.#unknownKidReload = undefined;
    }
    return true;
  }
}
