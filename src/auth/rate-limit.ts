import type { GraphQLResolveInfo } from 'graphql';
import { getGraphQLRateLimiter } from 'graphql-rate-limit';
import type { BoundedMemoryStore } from './rate-limit-store.js';

export type RateLimitRuleName = 'register' | 'login' | 'loginAccount' | 'userExists' | 'refresh';

export interface RateLimitRule {
  readonly max: number;
  readonly windowMs: number;
}

export class RateLimitExceededError extends Error {
  constructor(
    readonly rule: RateLimitRuleName,
    readonly retryAfterSeconds: number,
  ) {
    super(`Rate limit "${rule}" exceeded; retry in ${retryAfterSeconds} s.`);
    this.name = 'RateLimitExceededError';
  }
}

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const RULE_PATTERN = /^\s*(\d{1,9})\s*\/\s*(\d{1,6})?\s*(s|m|h|d)\s*$/;

/** Parses "10/1m" (10 calls per minute; units s, m, h, d; "30/m" means 30/1m). */
export function parseRateLimit(spec: string): RateLimitRule {
  const match = RULE_PATTERN.exec(spec);
  if (!match) throw new Error(`"${spec}" is not a rate limit; expected <max>/<window>, e.g. "10/1m" (units s, m, h, d)`);
  const max = Number(match[1]);
  const windowMs = Number(match[2] ?? '1') * UNIT_MS[match[3] as keyof typeof UNIT_MS];
  if (max < 1 || windowMs < 1) throw new Error(`"${spec}" must allow at least one call in a non-empty window`);
  return { max, windowMs };
}

interface LimiterContext {
  readonly key: string;
}

/**
 * Sliding-window limits for the auth mutations, counted by graphql-rate-limit's own algorithm over
 * our store. Called from resolvers rather than as a directive, because Pothos is code-first and
 * each field chooses its keys (IP, IP + account) itself.
 */
export class RateLimiter {
  private readonly limit: ReturnType<typeof getGraphQLRateLimiter>;

  constructor(
    private readonly rules: Readonly<Record<RateLimitRuleName, RateLimitRule>>,
    private readonly store: BoundedMemoryStore,
  ) {
    this.limit = getGraphQLRateLimiter({ identifyContext: (context: LimiterContext) => context.key, store });
  }

  /** Counts one call of `rule` for `key`; throws RateLimitExceededError when it is over the limit. */
  async consume(rule: RateLimitRuleName, key: string): Promise<void> {
    const { max, windowMs } = this.rules[rule];
    const context: LimiterContext = { key };
    const refusal = await this.limit(
      { parent: undefined, args: {}, context, info: { fieldName: rule } as GraphQLResolveInfo },
      // Refused calls are not recorded: a flood cannot extend its own ban, and every identity's log
      // stays at most `max` timestamps long, which keeps each call O(max) and memory bounded.
      { max, window: `${windowMs}ms`, identityArgs: [], uncountRejected: true },
    );
    if (refusal === undefined) return;
    const retryAfterMs = this.store.msUntilSlotFrees({ contextIdentity: key, fieldIdentity: rule }, windowMs);
    throw new RateLimitExceededError(rule, Math.max(1, Math.ceil(retryAfterMs / 1000)));
  }
}
