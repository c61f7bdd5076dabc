import SchemaBuilder from '@pothos/core';
import ErrorsPlugin from '@pothos/plugin-errors';
import { DateTimeResolver } from 'graphql-scalars';
import type { RequestContext } from '../context.js';

export const builder = new SchemaBuilder<{
  Context: RequestContext;
  Scalars: { DateTime: { Input: Date; Output: Date } };
  DefaultFieldNullability: false;
}>({
  plugins: [ErrorsPlugin],
  // Fields are non-null unless marked: the contract is explicit about what can be missing.
  defaultFieldNullability: false,
  errors: {
    // Deliberately empty: only the AuthError classes each field lists become typed results. A generic
    // Error here would expose internal messages and bypass Yoga's masking.
    defaultTypes: [],
    directResult: true,
  },
});

builder.addScalarType('DateTime', DateTimeResolver);
builder.queryType({});
builder.mutationType({});
