import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import type { GraphQLError } from 'graphql';
import { createGraphQLError, type Plugin } from 'graphql-yoga';

/**
 * Yoga's CSRF prevention, with a stable `extensions.code` on its refusal like every other cross-cutting
 * error. A request must be one a browser preflights (e.g. content-type: application/json) or carry the
 * x-graphql-yoga-csrf header, so a plain form or <img> on another site cannot call the API.
 */
export function useCsrfPrevention(): Plugin {
  const { onRequestParse } = useCSRFPrevention();
  return {
    onRequestParse(payload) {
      try {
        return onRequestParse?.(payload);
      } catch (error) {
        // By name, not instanceof: a second copy of graphql in node_modules must not lose the code.
        if (!(error instanceof Error) || error.name !== 'GraphQLError') throw error;
        throw createGraphQLError(error.message, { extensions: { ...(error as GraphQLError).extensions, code: 'CSRF_HEADER_REQUIRED' } });
      }
    },
  };
}
