import { RateLimitExceededError, type RateLimitRuleName } from '../auth/rate-limit.js';
import type { RequestContext } from '../context.js';
import { rateLimited } from './graphql-errors.js';

/** Counts this call against a limit; throws RATE_LIMITED when it is over. */
export async function enforceRateLimit(ctx: RequestContext, rule: RateLimitRuleName, ...keyParts: string[]): Promise<void> {
  try {
    // NUL cannot occur in an IP or a valid name, so distinct parts can never join into the same key.
    await ctx.services.rateLimiter.consume(rule, [ctx.clientIp ?? 'unknown', ...keyParts].join('\u0000'));
  } catch (error) {
    if (error instanceof RateLimitExceededError) throw rateLimited(error.retryAfterSeconds);
    throw error;
  }
}
