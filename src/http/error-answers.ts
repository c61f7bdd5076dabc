import { GraphQLError, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';

// graphql-js appends its suggestions as the last sentence of a message: field, argument, type, input
// field and enum value names ("Did you mean the enum value "ADMIN"?"), also when a variable's value is
// coerced, and "Did you mean to use an inline fragment on …?". With introspection off, each is a peek
// at the schema.
const SUGGESTION = /\s*Did you mean\b[\s\S]*$/;

// What an error's extensions may carry about the server's insides: Yoga's masking adds originalError
// (message and stack) in its development mode, and its JSON body parser adds one in every mode.
const INTERNAL_EXTENSIONS = ['originalError', 'stack', 'exception'];

export interface ErrorAnswerRules {
  /** Strip every "Did you mean …" (when introspection is off). */
  readonly hideSuggestions: boolean;
  /** Drop internal details from extensions (unless GRAPHQL_DEBUG_ERRORS). */
  readonly hideInternals: boolean;
}

/**
 * Rewrites the errors of every answer in one place, as the answer is about to be written, whichever
 * stage (request parsing, validation, variable coercion, execution) made them. graphql-armor's
 * blockFieldSuggestion covers only validation errors of one shape; Yoga's masking only execution.
 */
export function useErrorAnswers(rules: ErrorAnswerRules): Plugin {
  const clean = (error: unknown) => cleanError(error, rules);
  const cleanResult = (result: ExecutionResult): ExecutionResult =>
    result.errors?.length ? { ...result, errors: result.errors.map(clean) as GraphQLError[] } : result;
  return {
    onResultProcess({ result, setResult }) {
      if (Array.isArray(result)) setResult(result.map((single) => cleanResult(single)));
      else if (!(Symbol.asyncIterator in result)) setResult(cleanResult(result as ExecutionResult));
      // No subscriptions or @defer in this schema; a stream would pass through unchanged.
    },
  };
}

function cleanError(error: unknown, { hideSuggestions, hideInternals }: ErrorAnswerRules): unknown {
  if (!(error instanceof GraphQLError)) return error;
  const message = hideSuggestions ? error.message.replace(SUGGESTION, '') : error.message;
  const internal = hideInternals ? INTERNAL_EXTENSIONS.filter((key) => key in error.extensions) : [];
  if (message === error.message && internal.length === 0) return error;
  const extensions = Object.fromEntries(Object.entries(error.extensions).filter(([key]) => !internal.includes(key)));
  // A copy: validation errors are cached with the document and shared between requests.
  return new GraphQLError(message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions,
  });
}
