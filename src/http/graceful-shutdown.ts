import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';

// SIGTERM (an orchestrator, systemd, `docker stop`) and SIGINT (Ctrl-C) end the process without
// cutting what it already accepted: a registration, a password change or a refresh whose client never
// sees the answer is a request the client cannot tell apart from a lost one.

export interface DrainOptions {
  /** How long accepted requests may take to finish; then their connections are cut. */
  readonly timeoutMs: number;
  /** Closes the application (the database) once no request runs any more. */
  readonly close: () => Promise<void>;
  readonly log: (line: string) => void;
}

export interface Drain {
  /** Wraps the application's request handler: tracks requests, refuses new ones once draining. */
  guard(handler: RequestListener): RequestListener;
}

/**
 * On the first SIGTERM/SIGINT: stop listening (new connections are refused), close idle keep-alive
 * connections, answer requests that arrive on kept-alive connections with 503 and `Connection: close`,
 * let the running ones finish (their answers carry `Connection: close` too), then close the application
 * and exit 0. After `timeoutMs`, or on a second signal, the remaining connections are cut and the exit
 * code is 1: requests were lost.
 */
export function drainOnSignals(server: Server, { timeoutMs, close, log }: DrainOptions): Drain {
  const running = new Set<ServerResponse>();
  let draining = false;
  let cut = false;

  const cutNow = (why: string) => {
    if (cut) return;
    cut = true;
    log(`Shutdown: ${why}; cutting ${running.size} request(s) still running.`);
    server.closeAllConnections();
  };

  const exitAfterClose = async () => {
    let code = cut ? 1 : 0;
    try {
      await close();
    } catch (error) {
      log(`Shutdown: closing the application failed: ${error instanceof Error ? error.message : String(error)}`);
      code = 1;
    }
    log(`Shutdown complete${code === 0 ? '' : ' (requests were cut)'}.`);
    process.exit(code);
  };

  const drain = (signal: NodeJS.Signals) => {
    if (draining) return cutNow(`${signal} received again`);
    draining = true;
    log(`Shutdown: ${signal} received; no new connections, waiting up to ${timeoutMs / 1000} s for ${running.size} request(s).`);
    for (const response of running) if (!response.headersSent) response.setHeader('connection', 'close');
    server.close(() => void exitAfterClose());
    server.closeIdleConnections();
    setTimeout(() => cutNow(`the ${timeoutMs / 1000} s shutdown timeout passed`), timeoutMs).unref();
    // Should closing hang (it waits for the database's last fsync), the process still ends.
    setTimeout(() => process.exit(1), timeoutMs + 10_000).unref();
  };
  process.on('SIGTERM', drain);
  process.on('SIGINT', drain);

  return {
    guard(handler) {
      return (request: IncomingMessage, response: ServerResponse) => {
        if (draining) return refuse(response);
        running.add(response);
        response.once('close', () => {
          running.delete(response);
          // Its connection is idle now: close it rather than wait for the client to.
          if (draining) server.closeIdleConnections();
        });
        handler(request, response);
      };
    },
  };
}

/** A request on a connection kept alive from before the signal: nothing was done, retry elsewhere. */
function refuse(response: ServerResponse): void {
  response
    .writeHead(503, { 'content-type': 'application/json', connection: 'close', 'retry-after': '1' })
    .end('{"errors":[{"message":"Gatehouse is shutting down; retry."}]}');
}
