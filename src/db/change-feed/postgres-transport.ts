import pg from 'pg';
import { prismaIn, type Transaction } from '../transaction.js';
import type { ChangeTransport, TransportListener } from './feed.js';

/** The NOTIFY channel; one per database, so deployments on separate databases never hear each other. */
export const POSTGRES_CHANNEL = 'gatehouse_changes';
// How often the listening connection proves it is alive (a half-open TCP connection reports nothing):
// a connection gone deaf stops being trusted within HEARTBEAT_MS + HEARTBEAT_TIMEOUT_MS, a second.
export const HEARTBEAT_MS = 400;
export const HEARTBEAT_TIMEOUT_MS = 600;

/** Runs a statement on the pool, outside any transaction. */
export type RunStatement = (text: string) => Promise<void>;

/**
 * Changes through PostgreSQL's own LISTEN/NOTIFY. A NOTIFY sent inside a transaction is delivered when,
 * and only if, it commits: an announced change can neither arrive before its data nor without it.
 * Listens on one dedicated connection (not from the pool: LISTEN belongs to a session), checked every
 * HEARTBEAT_MS and re-opened with a growing delay after it fails.
 */
export class PostgresNotifyTransport implements ChangeTransport {
  readonly name = 'postgresql';
  #client: pg.Client | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly url: string,
    private readonly notifyOutside: (channel: string, text: string) => Promise<void>,
  ) {}

  async announceIn(tx: Transaction, text: string): Promise<void> {
    await prismaIn(tx).$executeRaw`SELECT pg_notify(${POSTGRES_CHANNEL}, ${text})`;
  }

  announce(text: string): Promise<void> {
    return this.notifyOutside(POSTGRES_CHANNEL, text);
  }

  listen(listener: TransportListener): void {
    let failures = 0;
    const connect = async () => {
      if (this.#closed) return;
      const client = new pg.Client({
        connectionString: this.url,
        keepAlive: true,
        connectionTimeoutMillis: 5_000,
        application_name: 'gatehouse-change-feed',
      });
      const lost = (reason: string) => {
        if (this.#client !== client) return;
        this.#client = undefined;
        clearInterval(this.#heartbeat);
        client.removeAllListeners('notification');
        client.end().catch(() => {});
        listener.live(false, reason);
        if (!this.#closed) this.#retry = setTimeout(connect, Math.min(100 * 2 ** failures++, 2_000)).unref();
      };
      this.#client = client;
      client.on('error', (error) => lost(`listening connection failed (${error.message})`));
      client.on('end', () => lost('listening connection ended'));
      client.on('notification', (notification) => {
        if (notification.channel === POSTGRES_CHANNEL && notification.payload !== undefined) listener.message(notification.payload);
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${POSTGRES_CHANNEL}`);
      } catch (error) {
        lost(`cannot listen (${(error as Error).message})`);
        return;
      }
      if (this.#client !== client || this.#closed) return;
      failures = 0;
      this.#heartbeat = setInterval(() => {
        const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer')), HEARTBEAT_TIMEOUT_MS).unref());
        Promise.race([client.query('SELECT 1'), timeout]).catch((error: Error) => lost(`heartbeat failed (${error.message})`));
      }, HEARTBEAT_MS).unref();
      listener.live(true);
    };
    void connect();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    clearInterval(this.#heartbeat);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }
}
