import type { Redis } from 'ioredis';

export interface SharedStoreLog {
  warn(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
}

/**
 * Whether the Redis behind the shared limits (rate limits, login lockout) answers. While it does not,
 * both fall back to their in-process counters (see RateLimiter and SharedLoginLockout), which is logged
 * once when the outage starts and once when it ends, never per request; `/health` can ask `available()`.
 *
 * Down as soon as a command fails or the connection closes; up again when the connection is ready and
 * a command succeeds, so an idle server also notices that Redis is back.
 */
export class SharedStoreStatus {
  #available = false;
  /** Whether the current outage has been logged. */
  #outageLogged = false;

  constructor(
    readonly redis: Redis,
    private readonly log: SharedStoreLog,
  ) {
    redis.on('ready', () => this.noteSuccess());
    // ioredis reports every failed reconnect as an 'error' event; without a listener it prints each one.
    redis.on('error', (error: Error) => this.noteFailure(error));
    redis.on('close', () => this.noteFailure(new Error('connection closed')));
    if (redis.status === 'ready') this.#available = true;
  }

  /** Closes the connection without reporting that as an outage. */
  async close(): Promise<void> {
    this.redis.removeAllListeners('close');
    this.redis.removeAllListeners('error');
    this.redis.on('error', () => {});
    this.#available = false;
    // quit() waits for Redis to answer; while it is down, just drop the connection.
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }

  available(): boolean {
    return this.#available;
  }

  /** Resolves once the connection is ready (true), or after `timeoutMs` without it (false). */
  async whenReady(timeoutMs: number): Promise<boolean> {
    if (this.redis.status === 'ready') return true;
    return new Promise((resolve) => {
      const done = (ready: boolean) => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        resolve(ready);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.redis.on('ready', onReady);
    });
  }

  noteSuccess(): void {
    if (this.#available || this.redis.status !== 'ready') return;
    this.#available = true;
    if (this.#outageLogged) {
      this.log.info(
        { event: 'shared_limits', outcome: 'redis_available' },
        'Redis is back: rate limits and the login lockout are shared by all instances again.',
      );
    }
    this.#outageLogged = false;
  }

  noteFailure(error: unknown): void {
    // Once per outage: a request rate of failures must not become a log rate.
    if (!this.#available && this.#outageLogged) return;
    this.#available = false;
    this.#outageLogged = true;
    this.log.warn(
      { event: 'shared_limits', outcome: 'redis_unavailable', error: error instanceof Error ? error.message : String(error) },
      'Redis is unavailable: rate limits and the login lockout count per instance until it is back (limits multiply by the number of instances).',
    );
  }
}
