import { randomUUID } from 'node:crypto';
import type { StoreTransactionClient } from '../store-client.js';
import { afterCommit, prismaIn, type RunInTransaction, type Transaction } from '../transaction.js';
import { type Change, decodeChange, encodeChange } from './changes.js';

/** A cache of rows that another process may change: the stores' in-memory mirrors. */
export interface MirroredCache {
  /** Drops whatever it mirrors that `change` may have made stale (and keeps reads already under way from caching). */
  forget(change: Change): void;
  /** Drops everything. */
  forgetAll(): void;
}

/** What a transport calls as it listens. */
export interface TransportListener {
  /** A message from another process (or this one: the feed skips its own). */
  message(text: string): void;
  /** Something changed but the transport cannot say what (SQLite's data_version): drop everything. */
  unknownChange(): void;
  /** Whether the transport is connected and delivering; false from a break until it is back. */
  live(isLive: boolean, reason?: string): void;
}

/** One way of carrying changes between processes (Redis pub/sub, PostgreSQL NOTIFY, SQLite's data_version). */
export interface ChangeTransport {
  readonly name: string;
  /** Sends inside the transaction, delivered only if it commits (PostgreSQL's NOTIFY). */
  announceIn?(tx: Transaction, text: string): Promise<void>;
  /** Sends now: after a commit, or after a single-statement write. */
  announce?(text: string): Promise<void>;
  listen(listener: TransportListener): void;
  close(): Promise<void>;
}

export type FeedState = 'live' | 'degraded';

/** What a single-statement write needs: the model delegates, inside a transaction or not. */
export type WriteClient = Pick<StoreTransactionClient, 'user' | 'session' | 'apiToken'>;

export interface FeedObserver {
  stateChanged?(state: FeedState, detail: string): void;
  announceFailed?(transport: string, error: unknown): void;
}

/**
 * Keeps every process's caches honest about changes made by the others (other instances, the admin CLI).
 *
 * Stores announce each change that ends or narrows someone's access (changes.ts) through every transport;
 * each process drops what the change made stale within the transport's delay. While any transport is not
 * live (Redis or the listening connection is down, or not yet up at start), the caches are not trusted:
 * the stores read the database on every request, so a revocation is never honoured late, only the speed
 * drops. When every transport is live again everything cached is dropped (changes may have been missed
 * meanwhile) and the caches are trusted again. A process that does not listen (the admin CLI) never
 * trusts its caches.
 *
 * The one place that decides when a cached row may be believed; the stores only ask `trusted`.
 */
export class ChangeFeed {
  /** Tells this process's own messages apart: it changed its caches itself when it wrote. */
  readonly origin = randomUUID();
  readonly #caches: MirroredCache[] = [];
  readonly #live = new Map<string, boolean>();
  /** Transports that have been live at least once (a later "live" is a return, logged as such). */
  readonly #everLive = new Set<string>();
  readonly #observers: FeedObserver[] = [];
  /** Texts already announced in each open transaction: one announcement per change and commit. */
  readonly #announcedIn = new WeakMap<Transaction, Set<string>>();
  #listening = false;
  #trusted = false;
  #transaction: RunInTransaction | undefined;

  constructor(private readonly transports: readonly ChangeTransport[]) {}

  /** The database's transactions, for single-statement writes whose change travels with the commit. */
  useTransactions(transaction: RunInTransaction): void {
    this.#transaction = transaction;
  }

  /**
   * Runs one write and announces its change (if `changeOf` names one). Where a transport delivers with
   * the commit (PostgreSQL's NOTIFY), the write and the announcement are one transaction: no crash or
   * failed statement in between can leave the write committed and unannounced. Elsewhere the change is
   * announced right after the write (SQLite needs no announcement: the commit itself is one).
   */
  async write<T>(plain: WriteClient, write: (client: WriteClient) => Promise<T>, changeOf: (result: T) => Change | null): Promise<T> {
    const inTransaction = this.#transaction !== undefined && this.transports.some((transport) => transport.announceIn);
    if (inTransaction) {
      return this.#transaction!(async (tx) => {
        const result = await write(prismaIn(tx));
        const change = changeOf(result);
        if (change) await this.announceIn(tx, change);
        return result;
      });
    }
    const result = await write(plain);
    const change = changeOf(result);
    if (change) await this.announce(change);
    return result;
  }

  register(cache: MirroredCache): void {
    this.#caches.push(cache);
  }

  observe(observer: FeedObserver): void {
    this.#observers.push(observer);
  }

  /** Whether cached rows may be used: listening, and every transport live. */
  get trusted(): boolean {
    return this.#trusted;
  }

  get state(): FeedState {
    return this.#trusted ? 'live' : 'degraded';
  }

  /** Which transports carry the changes (for /health and the logs). */
  get transportNames(): string[] {
    return this.transports.map((transport) => transport.name);
  }

  /** Starts every transport's listening; the caches are trusted once all of them are live. */
  listen(): void {
    if (this.#listening) return;
    this.#listening = true;
    for (const transport of this.transports) {
      this.#live.set(transport.name, false);
      transport.listen({
        message: (text) => this.#receive(text),
        unknownChange: () => this.#forgetAll(),
        live: (isLive, reason) => this.#setLive(transport.name, isLive, reason),
      });
    }
    this.#update('listening');
  }

  /**
   * Announces `change` as part of `tx`: transports that can deliver on commit only send it inside the
   * transaction; the others send it once it committed. Nothing is sent if it rolls back.
   */
  async announceIn(tx: Transaction, change: Change): Promise<void> {
    const text = encodeChange({ origin: this.origin, change });
    const announced = this.#announcedIn.get(tx) ?? new Set<string>();
    if (announced.has(text)) return;
    announced.add(text);
    this.#announcedIn.set(tx, announced);
    for (const transport of this.transports) {
      if (transport.announceIn) await transport.announceIn(tx, text);
      else if (transport.announce) afterCommit(tx, () => void this.#send(transport, text));
    }
  }

  /** Announces a change that a single statement already committed. Never throws: the write stands. */
  async announce(change: Change): Promise<void> {
    const text = encodeChange({ origin: this.origin, change });
    await Promise.all(this.transports.map((transport) => this.#send(transport, text)));
  }

  /** Resolves once the caches are trusted, or with false after `timeoutMs` (tests, start-up logs). */
  whenLive(timeoutMs: number): Promise<boolean> {
    if (this.#trusted) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs).unref();
      this.#observers.push({
        stateChanged: (state) => {
          if (state !== 'live') return;
          clearTimeout(timer);
          resolve(true);
        },
      });
    });
  }

  async close(): Promise<void> {
    this.#listening = false;
    this.#trusted = false;
    await Promise.all(this.transports.map((transport) => transport.close()));
  }

  async #send(transport: ChangeTransport, text: string): Promise<void> {
    try {
      await transport.announce?.(text);
    } catch (error) {
      // The change is committed; the receivers that miss it are those whose own connection to the
      // transport is down too, and they do not trust their caches until it is back (then they flush).
      for (const observer of this.#observers) observer.announceFailed?.(transport.name, error);
    }
  }

  #receive(text: string): void {
    const message = decodeChange(text);
    if (message === null) {
      this.#forgetAll();
      return;
    }
    if (message.origin === this.origin) return;
    for (const cache of this.#caches) cache.forget(message.change);
  }

  #forgetAll(): void {
    for (const cache of this.#caches) cache.forgetAll();
  }

  #setLive(name: string, isLive: boolean, reason?: string): void {
    if (!this.#listening || this.#live.get(name) === isLive) return;
    // Not "back" the first time: at start a transport simply comes up.
    const first = isLive && !this.#everLive.has(name);
    if (isLive) this.#everLive.add(name);
    this.#live.set(name, isLive);
    this.#update(isLive ? `${name} ${first ? 'is up' : 'is back'}` : `${name}: ${reason ?? 'connection lost'}`);
  }

  #update(detail: string): void {
    const trusted = this.#listening && [...this.#live.values()].every(Boolean);
    if (trusted === this.#trusted) return;
    // Back to trusting: whatever was mirrored before may have missed changes while a transport was down.
    if (trusted) this.#forgetAll();
    this.#trusted = trusted;
    for (const observer of this.#observers) observer.stateChanged?.(this.state, detail);
  }
}
