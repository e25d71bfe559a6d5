/**
 * The Gateway API's duration format (GEP-2257): one to four terms of up to five digits and a
 * unit of `h`, `m`, `s` or `ms` (`1h`, `500ms`, `1m30s`); no fractions, no sign.
 *
 * @module
 */

const FORMAT = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const TERM = /([0-9]{1,5})(ms|h|m|s)/g;
const UNIT_MS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Milliseconds of a Gateway API duration, or why it is not one. */
export function gatewayDurationMs(text: string): number | { error: string } {
  if (!FORMAT.test(text)) return { error: `"${text}" is not a Gateway API duration (1 to 4 terms of up to 5 digits and h, m, s or ms, e.g. "1m30s", "500ms")` };
  let ms = 0;
  for (const m of text.matchAll(TERM)) ms += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  return ms;
}
