import { hash, verify } from '@node-rs/argon2';
import pLimit, { type LimitFunction } from 'p-limit';

export interface Argon2Settings {
  readonly memoryKiB: number;
  readonly timeCost: number;
  readonly parallelism: number;
  /** How many hashes may run at once; the rest wait their turn. */
  readonly concurrency: number;
}

/** Passwords longer than this are refused before any hashing: argon2 cost must not be attacker-sized. */
export const MAX_PASSWORD_LENGTH = 256;
export const MIN_PASSWORD_LENGTH = 8;

/** Told how long each argon2 run took (the wiring passes the metrics here; src/auth knows no Prometheus). */
export interface PasswordHashObserver {
  observeHash(operation: 'hash' | 'verify', ms: number): void;
}

// @node-rs/argon2's Algorithm is an ambient const enum; 2 is its Argon2id member.
const ARGON2ID = 2;

/** argon2id hashing and verification, run on libuv's thread pool so the event loop stays free. */
export class PasswordHasher {
  readonly #options;
  // The thread pool also runs every commit's fsync (db/wal-sync.ts) and the token signatures. Were every
  // pool thread hashing, each write would wait for a whole hash to finish before it could be acknowledged.
  readonly #limit: LimitFunction;
  #dummyHash: Promise<string> | undefined;

  readonly #observer: PasswordHashObserver | undefined;

  constructor(settings: Argon2Settings, observer?: PasswordHashObserver) {
    this.#observer = observer;
    this.#limit = pLimit(settings.concurrency);
    this.#options = {
      algorithm: ARGON2ID,
      memoryCost: settings.memoryKiB,
      timeCost: settings.timeCost,
      parallelism: settings.parallelism,
    };
  }

  hash(password: string): Promise<string> {
    return this.#limit(() => this.#timed('hash', () => hash(password, this.#options)));
  }

  async verify(passwordHash: string, password: string): Promise<boolean> {
    try {
      return await this.#limit(() => this.#timed('verify', () => verify(passwordHash, password)));
    } catch {
      // A malformed stored hash is a failed verification, never a crash that tells the caller something.
      return false;
    }
  }

  // Timed inside the concurrency slot: the histogram shows argon2's cost, not the queue in front of it.
  async #timed<T>(operation: 'hash' | 'verify', run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await run();
    } finally {
      this.#observer?.observeHash(operation, performance.now() - started);
    }
  }

  /**
   * Spends the same work as a real verification for a user that does not exist, so an unknown username
   * and a wrong password take similar time and cannot be told apart.
   */
  async verifyAgainstDummy(password: string): Promise<false> {
    this.#dummyHash ??= this.hash('gatehouse-dummy-password');
    await this.verify(await this.#dummyHash, password);
    return false;
  }
}
