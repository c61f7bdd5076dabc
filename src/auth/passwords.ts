import { hash, verify } from '@node-rs/argon2';

export interface Argon2Settings {
  readonly memoryKiB: number;
  readonly timeCost: number;
  readonly parallelism: number;
}

/** Passwords longer than this are refused before any hashing: argon2 cost must not be attacker-sized. */
export const MAX_PASSWORD_LENGTH = 256;
export const MIN_PASSWORD_LENGTH = 8;

// @node-rs/argon2's Algorithm is an ambient const enum; 2 is its Argon2id member.
const ARGON2ID = 2;

/** argon2id hashing and verification, run on libuv's thread pool so the event loop stays free. */
export class PasswordHasher {
  readonly #options;
  #dummyHash: Promise<string> | undefined;

  constructor(settings: Argon2Settings) {
    this.#options = {
      algorithm: ARGON2ID,
      memoryCost: settings.memoryKiB,
      timeCost: settings.timeCost,
      parallelism: settings.parallelism,
    };
  }

  hash(password: string): Promise<string> {
    return hash(password, this.#options);
  }

  async verify(passwordHash: string, password: string): Promise<boolean> {
    try {
      return await verify(passwordHash, password);
    } catch {
      // A malformed stored hash is a failed verification, never a crash that tells the caller something.
      return false;
    }
  }

  /**
   * Spends the same work as a real verification for a user that does not exist, so an unknown username
   * and a wrong password take similar time and cannot be told apart.
   */
  async verifyAgainstDummy(password: string): Promise<false> {
    this.#dummyHash ??= hash('gatehouse-dummy-password', this.#options);
    await this.verify(await this.#dummyHash, password);
    return false;
  }
}
