import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestApp, REGISTER, uniqueName, type TestApp } from '../support/app.js';
import { rawDb } from '../support/raw-db.js';

// Request body size limit (HTTP 413 before any parsing) and batching (one operation per request).

const app = await createTestApp();

function post(target: TestApp, body: BodyInit, headers: Record<string, string> = {}) {
  return target.yoga.fetch('http://gatehouse.test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
    body,
    ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
  } as RequestInit);
}

/** A register request whose JSON body is exactly `size` bytes: padded in the fullname (which then fails its
 *  length rule) for the full REGISTER document, with blanks in the document (a valid registration) for REGISTER_SHORT. */
const REGISTER_SHORT = 'mutation ($input: RegisterInput!) { register(input: $input) { __typename } }';
function registerBody(username: string, size: number, query = REGISTER): string {
  const input = { username, password: 'a long enough password' };
  const body =
    query === REGISTER_SHORT
      ? (padding: string) => JSON.stringify({ query: `${query}${padding.replaceAll('x', ' ')}`, variables: { input } })
      : (padding: string) => JSON.stringify({ query, variables: { input: { ...input, fullname: padding } } });
  const text = body('x'.repeat(size - body('').length));
  expect(Buffer.byteLength(text)).toBe(size);
  return text;
}

const streamOf = (text: string) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      // Several chunks and no content-length: the limit must hold while the body streams in.
      const bytes = new TextEncoder().encode(text);
      for (let offset = 0; offset < bytes.length; offset += 8192) controller.enqueue(bytes.slice(offset, offset + 8192));
      controller.close();
    },
  });

async function userNamed(target: TestApp, username: string) {
  return rawDb(target.services).user.findFirst({ where: { username } });
}

describe('request body size limit', () => {
  it('answers 413 for a body over the default 64 KiB, and does no work', async () => {
    const consume = vi.spyOn(app.services.rateLimiter, 'consume');
    const username = uniqueName('big');
    const response = await post(app, registerBody(username, 65_537));
    expect(response.status).toBe(413);
    expect((await response.json()).errors[0].extensions.code).toBe('REQUEST_ENTITY_TOO_LARGE');
    expect(await userNamed(app, username)).toBeNull();
    expect(consume).not.toHaveBeenCalled();
    consume.mockRestore();
  });

  it('answers 413 for a streamed (chunked, no content-length) body over the limit', async () => {
    const username = uniqueName('stream');
    const response = await post(app, streamOf(registerBody(username, 100_000)));
    expect(response.status).toBe(413);
    expect(await userNamed(app, username)).toBeNull();
  });

  it('accepts a body at the limit (the request then fails validation as data, not at the HTTP layer)', async () => {
    const username = uniqueName('fits');
    const response = await post(app, registerBody(username, 65_536));
    expect(response.status).toBe(200);
    const { data } = await response.json();
    // The padded fullname is far over its own length rule: refused as a typed ValidationError.
    expect(data.register.__typename).toBe('ValidationError');
  });

  it('follows MAX_REQUEST_BODY_BYTES', async () => {
    const small = await createTestApp({ MAX_REQUEST_BODY_BYTES: '1024' });
    // Exactly at the limit (the padding is blanks in the document): a real registration.
    const fits = uniqueName('s');
    const ok = await post(small, registerBody(fits, 1024, REGISTER_SHORT));
    expect(ok.status).toBe(200);
    expect((await ok.json()).data.register.__typename).toBe('AuthPayload');
    expect(await userNamed(small, fits)).not.toBeNull();
    const tooBig = uniqueName('s');
    const refused = await post(small, registerBody(tooBig, 1025, REGISTER_SHORT));
    expect(refused.status).toBe(413);
    expect(await userNamed(small, tooBig)).toBeNull();
    // The same operation fits under the default limit: the refusal above is this setting's.
    const query = JSON.stringify({ query: `{ userExists(username: "someone") }${' '.repeat(1100)}` });
    expect((await post(small, query)).status).toBe(413);
    expect((await post(app, query)).status).toBe(200);
  });
});

describe('batching', () => {
  it('refuses a JSON array body with a 4xx GraphQL error, running none of its operations', async () => {
    const consume = vi.spyOn(app.services.rateLimiter, 'consume');
    const names = [uniqueName('batch'), uniqueName('batch')];
    const response = await post(
      app,
      JSON.stringify(names.map((username) => ({ query: REGISTER, variables: { input: { username, password: 'a long enough password' } } }))),
    );
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    const body = await response.json();
    expect(body.data).toBeUndefined();
    expect(body.errors[0].message).toMatch(/batching is not supported/i);
    for (const username of names) expect(await userNamed(app, username)).toBeNull();
    expect(consume).not.toHaveBeenCalled();
    consume.mockRestore();
  });

  it('refuses even a batch of one', async () => {
    const response = await post(app, JSON.stringify([{ query: '{ __typename }' }]));
    expect(response.status).toBe(400);
    expect((await response.json()).data).toBeUndefined();
  });
});

describe('request body size limit through node:http', () => {
  // node:http is what `npm start` serves with; its parser, not our code, bounds a body by Content-Length.
  let limited: TestApp;
  let base: { port: number };
  let server: Server;
  beforeAll(async () => {
    limited = await createTestApp({ MAX_REQUEST_BODY_BYTES: '1024' });
    server = createServer(limited.yoga);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = server.address() as { port: number };
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Sends raw bytes on one connection and returns everything the server answered until it closed. */
  function raw(head: string, body: string | Buffer, port = base.port): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let answer = '';
      socket.setTimeout(5000, () => socket.destroy(new Error(`no answer; so far: ${answer}`)));
      socket.on('data', (chunk) => (answer += chunk));
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
      // Not end(): the server closes after answering (Connection: close); a half-close could cut it short.
      socket.write(Buffer.concat([Buffer.from(`${head}\r\n\r\n`), Buffer.from(body)]));
    });
  }
  const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
  const head = (lines: string[]) =>
    ['POST /graphql HTTP/1.1', 'Host: gatehouse.test', 'Content-Type: application/json', 'Connection: close', ...lines].join('\r\n');
  const registration = (username: string) => registerBody(username, 900, REGISTER_SHORT);

  it('answers 413 for an announced length over the limit, without reading the body', async () => {
    const username = uniqueName('cl');
    const answer = await raw(head(['Content-Length: 1025']), 'x'.repeat(1025));
    expect(statusOf(answer)).toBe(413);
    expect(answer).toContain('REQUEST_ENTITY_TOO_LARGE');
    expect(await userNamed(limited, username)).toBeNull();
  });

  it('answers 400 for a Content-Length that is not one decimal number', async () => {
    for (const value of ['-1', '1e3', '10, 10']) expect(statusOf(await raw(head([`Content-Length: ${value}`]), '{}'))).toBe(400);
  });

  it('counts a chunked body as it arrives and answers 413 past the limit', async () => {
    const username = uniqueName('chunked');
    const text = registerBody(username, 2000, REGISTER_SHORT);
    const chunks = [text.slice(0, 700), text.slice(700, 1400), text.slice(1400)].map((part) => `${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`);
    const answer = await raw(head(['Transfer-Encoding: chunked']), `${chunks.join('')}0\r\n\r\n`);
    expect(statusOf(answer)).toBe(413);
    expect(await userNamed(limited, username)).toBeNull();
  });

  it('accepts a chunked body within the limit', async () => {
    const username = uniqueName('chunked');
    const text = registration(username);
    const answer = await raw(head(['Transfer-Encoding: chunked']), `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n0\r\n\r\n`);
    expect(statusOf(answer)).toBe(200);
    expect(await userNamed(limited, username)).not.toBeNull();
  });

  it('reads no more than the announced length: bytes past it are never part of the body', async () => {
    // The announced length cuts the JSON short; what follows is a whole registration that must not run.
    const username = uniqueName('smuggled');
    const text = registration(username);
    const answer = await raw(head(['Content-Length: 20']), text);
    expect(statusOf(answer)).toBe(400);
    expect(await userNamed(limited, username)).toBeNull();
  });

  it('refuses Content-Length together with Transfer-Encoding', async () => {
    const username = uniqueName('both');
    const text = registration(username);
    const answer = await raw(head(['Content-Length: 10', 'Transfer-Encoding: chunked']), `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n0\r\n\r\n`);
    expect(statusOf(answer)).toBe(400);
    expect(await userNamed(limited, username)).toBeNull();
  });

  it('still counts a chunked body that a lenient parser let through beside a small Content-Length', async () => {
    const lenient = createServer({ insecureHTTPParser: true }, limited.yoga);
    await new Promise<void>((resolve) => lenient.listen(0, '127.0.0.1', resolve));
    const port = (lenient.address() as { port: number }).port;
    try {
      const username = uniqueName('lenient');
      const text = registerBody(username, 2000, REGISTER_SHORT);
      const answer = await raw(
        head(['Content-Length: 10', 'Transfer-Encoding: chunked']),
        `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n0\r\n\r\n`,
        port,
      );
      expect(statusOf(answer)).toBe(413);
      expect(await userNamed(limited, username)).toBeNull();
    } finally {
      await new Promise<void>((resolve) => lenient.close(() => resolve()));
    }
  });
});
