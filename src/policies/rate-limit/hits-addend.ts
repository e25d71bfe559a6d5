/**
 * A descriptor's `hits_addend` for one request (Envoy's `RateLimitPolicyEntryImpl`): the fixed
 * number, or the number the `%REQ(header?alt):max%` field gives — a number from 0 to 1 000 000 000
 * (decimals truncated, as Envoy's `SimpleAtod` then `uint64_t` cast), else an error that leaves
 * the descriptor out (route_components.proto, `RateLimit.HitsAddend.format`).
 *
 * @module
 */
import type { HitsAddendSettings } from '../../config/types/local-rate-limit.ts';

const MAX = 1_000_000_000;

/** What of a request the field reads (descriptors.ts's RateLimitRequest). */
interface WithHeaders {
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

function first(req: WithHeaders, name: string): string | undefined {
  if (!Object.hasOwn(req.headers, name)) return undefined; // names come from config: no prototype keys
  const v = req.headers[name];
  return typeof v === 'string' ? v : v?.[0];
}

/** The hits, or undefined when the format's value is not a number Envoy takes (the descriptor is then left out). */
export function hitsOf(h: HitsAddendSettings, req: WithHeaders): number | undefined {
  if ('number' in h) return h.number;
  let s = first(req, h.header) ?? (h.altHeader === undefined ? undefined : first(req, h.altHeader));
  if (s === undefined) return undefined;
  if (h.maxLength !== undefined) s = s.slice(0, h.maxLength);
  // As Envoy reads it (absl::SimpleAtod, then 0..1e9, truncated): decimals, a sign, an exponent and
  // surrounding spaces are numbers; NaN, infinities and anything else leave the descriptor out.
  s = s.trim();
  if (s.length > 64 || !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return undefined;
  const n = Number(s);
  return n >= 0 && n <= MAX ? Math.trunc(n) : undefined;
}
