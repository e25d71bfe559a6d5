/**
 * How long to wait before a retry: Envoy's fully jittered exponential backoff, and the
 * server-directed `Retry-After` delay.
 *
 * @module
 */
import type { Random } from '../core/clock.ts';
import { jitterMs } from '../core/jitter.ts';
import type { HeaderBag } from './retry-rules.ts';

/** Envoy's default base interval (`upstream.base_retry_backoff_ms`) and Istio's default `retries.backoff`. */
export const DEFAULT_BACKOFF_BASE_MS = 25;

/** Envoy's default maximum backoff interval: ten times the base interval. */
export function defaultBackoffMaxMs(baseMs: number): number {
  return 10 * baseMs;
}

/**
 * The delay before retry number `retryNumber` (1 for the first retry), in whole milliseconds.
 *
 * Envoy's fully jittered exponential backoff as its code runs it
 * (`JitteredExponentialBackOffStrategy::nextBackOffMs`, source/common/common/backoff_strategy.cc):
 * the interval starts at `base` and doubles on every retry until it reaches `maxMs` (default
 * `10·base`), and the delay is uniform in `[0, interval)`. With the defaults (25 ms base): retry 1
 * waits 0–24 ms, retry 2 0–49 ms, retry 3 0–99 ms, retry 4 0–199 ms, retry 5 and later 0–249 ms
 * (retry_state_impl_test.cc `Backoff`, `CustomBackOffInterval`, `CustomBackOffIntervalDefaultMax`).
 * Envoy's router docs describe `[0, (2^N − 1)·base)` instead; its code and tests do not. The cap
 * bounds the interval, not the drawn value, so capped retries stay uniform.
 *
 * Returns 0 for a non-positive base.
 */
export function backoffDelayMs(retryNumber: number, baseMs: number, random: Random, maxMs: number = defaultBackoffMaxMs(baseMs)): number {
  if (!(baseMs > 0)) return 0;
  const n = retryNumber >= 1 ? Math.min(Math.floor(retryNumber), 52) : 1;
  return jitterMs(random, Math.min(2 ** (n - 1) * baseMs, maxMs));
}

/** Delta-seconds: one or more digits. */
const DELTA_SECONDS = /^\d+$/;
/** IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE = /^[A-Za-z]{3}, (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
/** Obsolete RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`. */
const RFC850 = /^[A-Za-z]{6,9}, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
/** Obsolete asctime: `Sun Nov  6 08:49:37 1994`. */
const ASCTIME = /^[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/**
 * The delay a response asks for in its `Retry-After` header (RFC 9110 §10.2.3), in
 * milliseconds, capped at `maxMs`; undefined if the header is absent or malformed.
 *
 * Both forms are accepted: delta-seconds (`120`) and an HTTP-date in any of the three formats
 * RFC 9110 §5.6.7 requires recipients to parse (IMF-fixdate, RFC 850, asctime), all read as GMT.
 * A date in the past gives 0. `nowMs` is wall-clock time (`Date.now()`), not the monotonic
 * mesh clock, because HTTP-dates are wall-clock.
 *
 * Envoy honours such headers only when a route configures `rate_limited_retry_back_off`, which
 * Istio does not expose; meshlet offers it as an opt-in for callers.
 */
export function retryAfterMs(headers: HeaderBag | undefined, nowMs: number, maxMs: number): number | undefined {
  const raw = headers?.['retry-after'];
  const value = (typeof raw === 'string' ? raw : raw?.[0])?.trim();
  if (value === undefined || value === '') return undefined;
  let delay: number;
  if (DELTA_SECONDS.test(value)) {
    delay = Number(value) * 1000;
  } else {
    const at = parseHttpDate(value, nowMs);
    if (at === undefined) return undefined;
    delay = Math.max(0, at - nowMs);
  }
  return Math.min(delay, Math.max(0, maxMs));
}

/** Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime) to epoch ms; undefined if malformed. */
export function parseHttpDate(value: string, nowMs: number = Date.now()): number | undefined {
  let m = IMF_FIXDATE.exec(value);
  if (m !== null) return utc(Number(m[3]), m[2] as string, Number(m[1]), m[4] as string, m[5] as string, m[6] as string);
  m = RFC850.exec(value);
  if (m !== null) {
    // RFC 9110: a two-digit year that looks more than 50 years in the future is in the past century.
    const yy = Number(m[3]);
    const nowYear = new Date(nowMs).getUTCFullYear();
    let year = Math.floor(nowYear / 100) * 100 + yy;
    if (year > nowYear + 50) year -= 100;
    return utc(year, m[2] as string, Number(m[1]), m[4] as string, m[5] as string, m[6] as string);
  }
  m = ASCTIME.exec(value);
  if (m !== null) return utc(Number(m[6]), m[1] as string, Number((m[2] as string).trim()), m[3] as string, m[4] as string, m[5] as string);
  return undefined;
}

function utc(year: number, mon: string, day: number, h: string, min: string, s: string): number | undefined {
  const month = MONTHS.indexOf(mon.toLowerCase());
  const hh = Number(h);
  const mm = Number(min);
  const ss = Number(s);
  if (month < 0 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60) return undefined;
  const t = Date.UTC(year, month, day, hh, mm, Math.min(ss, 59));
  // Reject dates that roll over (31 Feb).
  return new Date(t).getUTCDate() === day ? t : undefined;
}
