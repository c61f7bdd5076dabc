import type { CodegenConfig } from '@graphql-codegen/cli';

// Types the operations in operations.graphql from the committed schema.graphql (never from a running server,
// so the kit and the server's schema move together in one commit). Run from the repository root:
// `npm run client:generate`. test/client/generated.test.ts fails when client/generated/ drifts.
const config: CodegenConfig = {
  schema: 'schema.graphql',
  documents: ['client/operations.graphql'],
  ignoreNoDocuments: false,
  generates: {
    'client/generated/': {
      preset: 'client',
      // Plain result types: the kit's callers read AuthPayload fields directly, no unmasking function.
      presetConfig: { fragmentMasking: false },
      config: {
        // The repository compiles as NodeNext: imports between the generated files need the .js suffix.
        emitLegacyCommonJSImports: false,
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        // DateTime travels as an ISO 8601 string; nothing in the kit parses it.
        scalars: { DateTime: 'string' },
      },
    },
    // Apollo's InMemoryCache needs the members of every union and interface, or it drops the fields selected
    // through `... on Error { code message }` (and the generated types would still promise them).
    'client/generated/possible-types.ts': {
      plugins: ['fragment-matcher'],
      config: { apolloClientVersion: 3, deterministic: true, useExplicitTyping: true },
    },
  },
};

export default config;
