import { createServer, type RequestListener, type Server } from 'node:http';

// The port is taken before anything is written: a start that cannot listen (port in use, bad HOST, no
// privilege for the port) must fail without having migrated a database or created keys in DATA_DIR.

export interface ListeningServer {
  readonly server: Server;
  /** Hands every later request to the finished application. */
  serve(handler: RequestListener): void;
}

/**
 * Listens on `port`/`host` at once with a placeholder that answers 503 (Retry-After) while the rest of
 * the start runs; /live answers 200, since the process is alive. Throws a readable error when the address
 * cannot be bound.
 */
export async function listenFirst(port: number, host: string): Promise<ListeningServer> {
  const server = createServer((request, response) => {
    if (request.url === '/live' || request.url?.startsWith('/live?')) {
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"message":"alive"}');
      return;
    }
    response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '2' }).end('{"errors":[{"message":"Gatehouse is starting; retry shortly."}]}');
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    throw new Error(listenFailure(error as NodeJS.ErrnoException, port, host));
  }
  return {
    server,
    serve(handler) {
      server.removeAllListeners('request');
      server.on('request', handler);
    },
  };
}

function listenFailure(error: NodeJS.ErrnoException, port: number, host: string): string {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const nothingWritten = 'Nothing was written to DATA_DIR.';
  switch (error.code) {
    case 'EADDRINUSE':
      return `Cannot listen on ${where}: the port is already in use (another Gatehouse?). Stop that process or choose another PORT. ${nothingWritten}`;
    case 'EACCES':
      return `Cannot listen on ${where}: not permitted (ports below 1024 need privileges). Choose a PORT of 1024 or more. ${nothingWritten}`;
    case 'EADDRNOTAVAIL':
      return `Cannot listen on ${where}: HOST is not an address of this machine. ${nothingWritten}`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `Cannot listen on ${where}: HOST does not resolve to an address. ${nothingWritten}`;
    default:
      return `Cannot listen on ${where}: ${error.message}. ${nothingWritten}`;
  }
}
