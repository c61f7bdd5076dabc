import { isIPv4, isIPv6 } from 'node:net';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { MemoryRateWindows } from './rate-limit-memory.js';
import type { SharedStoreStatus } from './shared-store.js';

export type RateLimitRuleName =
  | 'register'
  | 'login'
  | 'loginAccount'
  | 'userExists'
  | 'refresh'
  /** Answers that tell whether an email address is taken (updateProfile), per client network. */
  | 'availabilityProbe'
  /** The same, per account, whatever the client network. */
  | 'availabilityProbeAccount'
  /** Mail asked for, per address and purpose, whoever asks (counted whether or not an account has the address). */
  | 'emailRecipient'
  /** Mail asked for, per client network, whatever the address. */
  | 'emailClient';

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

/** The shared counters: one rate-limiter-flexible limiter per rule, all on one Redis connection. */
export interface SharedRateLimits {
  readonly status: SharedStoreStatus;
  /** Prefix of every key (config.redis.keyPrefix). */
  readonly keyPrefix: string;
}

/**
 * Fixed-window limits for the auth mutations. Called from resolvers rather than as a directive, because
 * Pothos is code-first and each field chooses its keys (IP, IP + account) itself.
 *
 * Without Redis the counters are this process's (MemoryRateWindows), so N instances admit N times each
 * limit. With Redis they are rate-limiter-flexible's RateLimiterRedis: one atomic Lua step per call, so a
 * parallel burst across all instances admits exactly `max`. While Redis does not answer, every call is
 * counted in process instead (as rate-limiter-flexible's insuranceLimiter would, but with a bounded map)
 * and SharedStoreStatus logs the outage once; the calls counted during the outage are not carried over.
 */
export class RateLimiter {
  readonly #shared: ReadonlyMap<RateLimitRuleName, RateLimiterRedis> | undefined;

  constructor(
    private readonly rules: Readonly<Record<RateLimitRuleName, RateLimitRule>>,
    private readonly local: MemoryRateWindows,
    private readonly shared?: SharedRateLimits,
  ) {
    if (shared) {
      this.#shared = new Map(
        (Object.entries(rules) as [RateLimitRuleName, RateLimitRule][]).map(([rule, { max, windowMs }]) => [
          rule,
          new RateLimiterRedis({
            storeClient: shared.status.redis,
            keyPrefix: `${shared.keyPrefix}rate:${rule}`,
            points: max,
            // Whole seconds: parseRateLimit's smallest unit is the second.
            duration: Math.max(1, Math.round(windowMs / 1000)),
            // Straight to the in-process fallback while the connection is down, not after a timeout.
            rejectIfRedisNotReady: true,
          }),
        ]),
      );
    }
  }

  /** Counts one call of `rule` for `key`; throws RateLimitExceededError when it is over the limit. */
  async consume(rule: RateLimitRuleName, key: string): Promise<void> {
    const limiter = this.#shared?.get(rule);
    // While Redis does not answer, straight to the in-process counters (SharedStoreStatus probes it).
    if (limiter && this.shared?.status.available()) {
      try {
        await limiter.consume(key);
        this.shared.status.noteSuccess();
        return;
      } catch (refusal) {
        if (refusal instanceof RateLimiterRes) throw new RateLimitExceededError(rule, retryAfterSeconds(refusal.msBeforeNext));
        this.shared.status.noteFailure(refusal);
      }
    }
    const { max, windowMs } = this.rules[rule];
    const waitMs = this.local.take(`${rule}\u0000${key}`, max, windowMs);
    if (waitMs > 0) throw new RateLimitExceededError(rule, retryAfterSeconds(waitMs));
  }
}

const retryAfterSeconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

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
