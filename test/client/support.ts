import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll } from 'vitest';
import type { AppOptions } from '../../src/app.js';
import type { Environment } from '../../src/config.js';
import { createTestApp, type TestApp } from '../support/app.js';

// The client kit's tests run Apollo Client and urql over real HTTP against the real app listening on a free
// port (node:http, as `npm start` serves it). Call at the top level of a test file (vitest ignores afterAll
// registered inside hooks).

export interface ListeningApp {
  readonly app: TestApp;
  /** http://127.0.0.1:<port>/graphql */
  readonly url: string;
}

export async function listeningTestApp(overrides: Environment = {}, options: AppOptions = {}): Promise<ListeningApp> {
  const app = await createTestApp(overrides, options);
  const server = createServer(app.yoga);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // Registered after createTestApp's: runs before it (after-hooks run in reverse), so the server stops first.
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { app, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql` };
}

/**
 * The real fetch, with every GraphQL operation that went over the network noted by name: how many refreshes
 * the clients really sent, and how often each operation was (re)tried.
 */
export function recordingFetch(base: typeof fetch = fetch) {
  const sent: string[] = [];
  const methods: string[] = [];
  const recording: typeof fetch = async (input, init) => {
    const body = typeof init?.body === 'string' ? (JSON.parse(init.body) as { operationName?: string }) : {};
    // A GET carries the operation in the URL.
    const operationName = body.operationName ?? new URL(String(input)).searchParams.get('operationName') ?? '(unnamed)';
    sent.push(operationName);
    methods.push(init?.method ?? 'GET');
    return base(input, init);
  };
  return {
    fetch: recording,
    sent,
    methods,
    count: (operationName: string) => sent.filter((name) => name === operationName).length,
    reset: () => {
      sent.length = 0;
      methods.length = 0;
    },
  };
}
