import { isIPv4, isIPv6 } from 'node:net';
import type { GraphQLResolveInfo } from 'graphql';
import { getGraphQLRateLimiter } from 'graphql-rate-limit';
import type { BoundedMemoryStore } from './rate-limit-store.js';

export type RateLimitRuleName =
  | 'register'
  | 'login'
  | 'loginAccount'
  | 'userExists'
  | 'refresh'
  /** Answers that tell whether an email address is taken (updateProfile), per client network. */
  | 'availabilityProbe'
  /** The same, per account, whatever the client network. */
  | 'availabilityProbeAccount';

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

/**
 * The network a client address is limited as: the address itself for IPv4, its first `ipv6Prefix` bits
 * for IPv6 (e.g. "2001:db8:1:2::/64"). One IPv6 subscriber usually gets a whole /64 (often a /56 or /48),
 * so counting full IPv6 addresses would hand an attacker 2^64 fresh budgets. IPv4-mapped addresses
 * (::ffff:1.2.3.4, what a dual-stack socket reports for IPv4 clients) count as the IPv4 address.
 * Anything that is not an IP address (a proxy's odd header) is its own key, as before.
 */
export function clientNetwork(ip: string, ipv6Prefix: number): string {
  if (isIPv4(ip)) return ip;
  const unzoned = ip.replace(/%.*$/, '');
  if (!isIPv6(unzoned)) return ip;
  const groups = ipv6Groups(unzoned);
  const mappedIPv4 = groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
  if (mappedIPv4) return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join('.');
  const masked = groups.map((group, index) => {
    const bits = Math.min(16, Math.max(0, ipv6Prefix - index * 16));
    return bits === 0 ? 0 : group & ((0xffff << (16 - bits)) & 0xffff);
  });
  return `${compressIPv6(masked)}/${ipv6Prefix}`;
}

/** The eight 16-bit groups of a valid IPv6 address (with "::" and a dotted IPv4 tail expanded). */
function ipv6Groups(ip: string): number[] {
  let text = ip.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  if (tail === undefined) return parse(head);
  const [left, right] = [parse(head), parse(tail)];
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** RFC 5952 text: lower-case hex, the longest run of two or more zero groups as "::". */
function compressIPv6(groups: number[]): string {
  let best = { start: -1, length: 0 };
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > best.length) best = { start, length };
  }
  const hex = groups.map((group) => group.toString(16));
  if (best.length < 2) return hex.join(':');
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.length).join(':')}`;
}
