/**
 * Istio duration strings (`"1.5s"`, `"300ms"`, `"1h30m"`) ⇄ milliseconds. Accepts Go's
 * `time.ParseDuration` units (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), which covers the
 * protobuf JSON form (`"1.5s"`) too.
 *
 * @module
 */

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const TERM = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/**
 * Parses a duration; returns milliseconds, or an error message saying what is wrong.
 * @example parseDuration('1.5s') // 1500
 * @category Config
 */
export function parseDuration(text: string): number | { error: string } {
  if (typeof text !== 'string' || text.length === 0) return { error: 'must be a duration such as "1.5s", "300ms" or "1h"' };
  if (text.length > 64) return { error: 'duration is too long' };
  if (text.startsWith('-')) return { error: `must not be negative, got "${text}"` };
  if (text === '0') return 0;
  let total = 0;
  TERM.lastIndex = 0;
  let pos = 0;
  while (pos < text.length) {
    TERM.lastIndex = pos;
    const m = TERM.exec(text);
    if (m === null) {
      return { error: `invalid duration "${text}": expected a number followed by a unit (ms, s, m, h), e.g. "1.5s"` };
    }
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    pos = TERM.lastIndex;
  }
  if (!Number.isFinite(total)) return { error: `invalid duration "${text}"` };
  return total;
}

/**
 * A duration field of validated config, in milliseconds: `undefined` when the field is absent,
 * and when it is not a duration (validation has already reported that). What compilers use to
 * read `timeout`, `perTryTimeout`, `connectTimeout` and the like.
 * @example durationMs('250ms') // 250
 * @example durationMs(undefined) // undefined
 * @category Config
 */
export function durationMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const v = parseDuration(text);
  return typeof v === 'number' ? v : undefined;
}

/**
 * Formats milliseconds the way Istio prints durations (`1.5s`, `300ms`, `2m0s` → `120s`).
 * @category Config
 */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${Number(ms.toFixed(3))}ms`;
  return `${Number((ms / 1000).toFixed(3))}s`;
}
