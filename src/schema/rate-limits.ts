import type { RateLimitRuleName } from '../auth/rate-limit.js';
import type { RequestContext } from '../context.js';
import { throwAsGraphQL } from './error-translation.js';

/**
 * Counts this call against a limit for the caller's network (its IPv4 address or IPv6 prefix, see
 * clientNetwork) plus `keyParts`; throws RATE_LIMITED when it is over.
 */
export async function enforceRateLimit(ctx: RequestContext, rule: RateLimitRuleName, ...keyParts: string[]): Promise<void> {
  await consume(ctx, rule, [ctx.clientNetwork ?? 'unknown', ...keyParts]);
}

/**
 * For answers that tell whether an email address is taken to someone who already has an account
 * (updateProfile's EMAIL_TAKEN): counted per client network, so many accounts behind one network share a
 * budget, and per account whatever the network, so one account cannot probe from many. Only calls that
 * carry an address count: changing the display name reveals nothing.
 */
export async function enforceAvailabilityProbeLimit(ctx: RequestContext, accountId: string, email: string | null | undefined): Promise<void> {
  if (email === null || email === undefined) return;
  await enforceRateLimit(ctx, 'availabilityProbe');
  await consume(ctx, 'availabilityProbeAccount', [accountId]);
}

async function consume(ctx: RequestContext, rule: RateLimitRuleName, keyParts: string[]): Promise<void> {
  try {
    // NUL cannot occur in an IP or a valid name, so distinct parts can never join into the same key.
    await ctx.services.rateLimiter.consume(rule, keyParts.join('\u0000'));
  } catch (error) {
    throwAsGraphQL(error); // RATE_LIMITED
  }
}

/**
 * For mutations that send mail: per client network (whatever the address), and per recipient address and
 * purpose (whoever asks, from wherever). Both count whether or not an account has the address, so the
 * answer (true, or RATE_LIMITED) says nothing about existence.
 */
export async function enforceMailLimits(ctx: RequestContext, purpose: string, recipient: string): Promise<void> {
  await enforceRateLimit(ctx, 'emailClient');
  await consume(ctx, 'emailRecipient', [purpose, recipient.slice(0, 256).toLowerCase()]);
}
