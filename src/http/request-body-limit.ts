import type { IncomingMessage } from 'node:http';
import { createGraphQLError, type Plugin } from 'graphql-yoga';

const DECIMAL = /^\d+$/;

const tooLarge = () => createGraphQLError('Request body too large', { extensions: { http: { status: 413 }, code: 'REQUEST_ENTITY_TOO_LARGE' } });

/**
 * The request body limit (HTTP 413 before any parsing), in place of Yoga's `maxRequestBodySize`.
 *
 * Yoga's limit pipes every body through a counting TransformStream (stream.pipeline, an AbortController
 * and a DOMException when it ends). Measured in `npm run bench`, that was a large share of the cost of a
 * `me` request (README, Performance). node:http never delivers more body than the Content-Length it parsed (the surplus
 * would be the next request, and a Content-Length beside Transfer-Encoding is refused), so a request
 * that came through node:http announcing a length within the limit needs no counting. A body without a
 * length (chunked), or one handed to `yoga.fetch` directly, is still counted as it streams in.
 */
export function useRequestBodyLimit(limit: number): Plugin<object, { req?: IncomingMessage }> {
  return {
    onRequestParse({ request, serverContext, requestParser, setRequestParser, fetchAPI }) {
      const declared = request.headers.get('content-length');
      if (declared !== null) {
        if (!DECIMAL.test(declared)) {
          throw createGraphQLError('Content-Length header is invalid.', { extensions: { http: { status: 400 }, code: 'BAD_REQUEST' } });
        }
        if (Number(declared) > limit) throw tooLarge();
        // Node's strict parser refuses Content-Length beside Transfer-Encoding; should a lenient parser
        // (--insecure-http-parser) let both through, the body is counted after all.
        if (serverContext.req && serverContext.req.headers['transfer-encoding'] === undefined) return;
      }
      if (!requestParser || !request.body) return;
      setRequestParser((unlimited) => requestParser(withCountedBody(unlimited, limit, fetchAPI)));
    },
  };
}

function withCountedBody(request: Request, limit: number, fetchAPI: Pick<typeof globalThis, 'Request' | 'TransformStream'>): Request {
  // A native ReadableStream needs the native TransformStream (graphql-yoga#4583).
  const Transform = request.body instanceof ReadableStream ? globalThis.TransformStream : fetchAPI.TransformStream;
  let received = 0;
  const body = request.body!.pipeThrough(
    new Transform<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        received += chunk.byteLength;
        if (received > limit) controller.error(tooLarge());
        else controller.enqueue(chunk);
      },
    }),
  );
  return new fetchAPI.Request(request.url, { method: request.method, headers: request.headers, signal: request.signal, body, duplex: 'half' } as RequestInit);
}
