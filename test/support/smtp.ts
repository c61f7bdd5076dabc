import type { Socket } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export type { ParsedMail };

export interface TestSmtpServer {
  readonly port: number;
  /** smtp://127.0.0.1:<port> (with user:password when the server was started with `auth`). */
  readonly url: string;
  /** Every accepted message, in the order the server accepted them. */
  readonly messages: ParsedMail[];
  /** The first accepted message (already received or still to come) that matches; rejects after timeoutMs (20 s). */
  waitForMail(predicate: (mail: ParsedMail) => boolean, timeoutMs?: number): Promise<ParsedMail>;
  /** Closes the server and every open connection: the port is free again when this resolves. */
  stop(): Promise<void>;
  /** Answers every RCPT TO and DATA with `code` (e.g. 451 temporary, 550 permanent) until called with null. */
  rejectWith(code: number | null): void;
}

/**
 * A real SMTP server on 127.0.0.1 (no TLS). Pass the port of a stopped one to start it again on the same port. Login
 * is optional and any credentials are accepted, unless `auth` is given: then clients must log in with exactly that
 * user and password (in clear text, which is fine on the loopback).
 */
export async function startSmtpServer(options: { port?: number; auth?: { user: string; password: string } } = {}): Promise<TestSmtpServer> {
  const messages: ParsedMail[] = [];
  const waiters = new Set<(mail: ParsedMail) => void>();
  const sockets = new Set<Socket>();
  let rejectCode: number | null = null;

  const rejection = () => {
    const error = new Error(`test server rejects with ${rejectCode}`) as Error & { responseCode: number };
    error.responseCode = rejectCode!;
    return error;
  };

  const auth = options.auth;
  const server = new SMTPServer({
    authOptional: auth === undefined,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    logger: false,
    onAuth(credentials, _session, callback) {
      // Without `auth` any login is welcome (authOptional), so a URL with credentials works against any test server.
      if (auth === undefined || (credentials.username === auth.user && credentials.password === auth.password))
        return callback(null, { user: credentials.username });
      callback(Object.assign(new Error('invalid credentials'), { responseCode: 535 }));
    },
    onRcptTo(_address, _session, callback) {
      callback(rejectCode === null ? null : rejection());
    },
    onData(stream, _session, callback) {
      if (rejectCode !== null) {
        stream.resume();
        stream.on('end', () => callback(rejection()));
        return;
      }
      simpleParser(stream)
        .then((mail) => {
          messages.push(mail);
          for (const waiter of waiters) waiter(mail);
          callback();
        })
        .catch((error: Error) => callback(error));
    },
  });
  server.on('error', () => {}); // a client dropping its connection is not a failure of the server
  // Tracked so stop() can cut them: smtp-server otherwise waits up to 30 s for idle clients before the port is free.
  server.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as { port: number }).port;
  const credentials = auth === undefined ? '' : `${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.password)}@`;

  return {
    port,
    url: `smtp://${credentials}127.0.0.1:${port}`,
    messages,
    rejectWith(code) {
      rejectCode = code;
    },
    waitForMail(predicate, timeoutMs = 20_000) {
      const existing = messages.find(predicate);
      if (existing !== undefined) return Promise.resolve(existing);
      return new Promise((resolve, reject) => {
        const waiter = (mail: ParsedMail) => {
          if (!predicate(mail)) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(mail);
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          const received = messages.map((mail) => JSON.stringify(mail.subject)).join(', ') || 'none';
          reject(new Error(`No matching mail within ${timeoutMs} ms on port ${port}; received: ${received}`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    stop() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}
