import { createServer } from 'node:http';
import { createSchema, createYoga } from 'graphql-yoga';

// The benchmark's yardstick: bare graphql-yoga with default settings on node:http, started exactly as the
// real server is (`node --import tsx`, same environment). The runner queries it with `{ __typename }`.
// With BASELINE_BODY_LIMIT=off it also drops Yoga's default request body limit (maxRequestBodySize),
// whose per-request stream is most of a bare request's cost: the leanest Yoga there is, for comparison.

const yoga = createYoga({
  schema: createSchema({ typeDefs: /* GraphQL */ 'type Query { hello: String }', resolvers: { Query: { hello: () => 'world' } } }),
  logging: false,
  ...(process.env.BASELINE_BODY_LIMIT === 'off' ? { maxRequestBodySize: false as const } : {}),
});
const server = createServer(yoga);
const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? '127.0.0.1';
server.listen(port, host, () => {
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  console.log(`baseline listening on http://${host}:${actual}`);
});
const shutdown = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
