import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // Vite would resolve our own `import 'graphql'` to graphql's index.mjs while Yoga and Pothos, loaded
    // by Node, get its CommonJS build: two GraphQLError classes, so Yoga masked our UNAUTHENTICATED
    // errors as internal ones. Point everything at the copy Node itself loads, as in production.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts', 'test/support/postgres-global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: more workers than that only adds contention for argon2 and SQLite.
    maxWorkers: 2,
  },
});
