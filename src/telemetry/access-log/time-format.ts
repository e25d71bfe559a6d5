/**
 * `%START_TIME(format)%`: Envoy's strftime, in UTC, with its sub-second extensions
 * (`%E3S` seconds with 3 decimals, `%3f` the first 3 digits of the fraction, `%f` all 9, `%s`
 * seconds since the epoch). Without a format, Envoy prints `%Y-%m-%dT%H:%M:%E3SZ`
 * (`2026-01-02T03:04:05.678Z`).
 *
 * @module
 */

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** The 9 digits of the fraction of a second of `ms` (ms precision; the rest is 0). */
function fraction(ms: number): string {
  return `${pad(((ms % 1000) + 1000) % 1000, 3)}000000`;
}

/** Formats `ms` (since the epoch) as Envoy's default `%START_TIME%`. */
export function defaultStartTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** Checks a format: returns the problem, or undefined. */
export function checkTimeFormat(format: string): string | undefined {
  const bad = /%(?!(?:[YmdHMSyjaAbBeZzTFDsn%t]|E\d?S|E\*S|\d?f))./.exec(format);
  return bad === null ? undefined : `unsupported time specifier "${bad[0]}" at ${bad.index}`;
}

/** Formats `ms` (since the epoch) with an Envoy START_TIME format, in UTC. */
export function formatTime(ms: number, format: string): string {
  const d = new Date(ms);
  return format.replace(/%(E(\d|\*)?S|(\d)?f|.)/g, (all, spec: string, eDigits: string | undefined, fDigits: string | undefined) => {
    if (spec.startsWith('E')) {
      const n = eDigits === undefined ? 0 : eDigits === '*' ? 9 : Number(eDigits);
      return n === 0 ? pad(d.getUTCSeconds()) : `${pad(d.getUTCSeconds())}.${fraction(ms).slice(0, n)}`;
    }
    if (spec.endsWith('f')) return fraction(ms).slice(0, fDigits === undefined ? 9 : Number(fDigits));
    switch (spec) {
      case 'Y':
        return String(d.getUTCFullYear());
      case 'y':
        return pad(d.getUTCFullYear() % 100);
      case 'm':
        return pad(d.getUTCMonth() + 1);
      case 'd':
        return pad(d.getUTCDate());
      case 'e':
        return String(d.getUTCDate()).padStart(2, ' ');
      case 'H':
        return pad(d.getUTCHours());
      case 'M':
        return pad(d.getUTCMinutes());
      case 'S':
        return pad(d.getUTCSeconds());
      case 'j':
        return pad(Math.floor((Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1, 3);
      case 'a':
        return (DAYS[d.getUTCDay()] as string).slice(0, 3);
      case 'A':
        return DAYS[d.getUTCDay()] as string;
      case 'b':
        return (MONTHS[d.getUTCMonth()] as string).slice(0, 3);
      case 'B':
        return MONTHS[d.getUTCMonth()] as string;
      case 'Z':
        return 'UTC';
      case 'z':
        return '+0000';
      case 'T':
        return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
      case 'F':
        return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
      case 'D':
        return `${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}/${pad(d.getUTCFullYear() % 100)}`;
      case 's':
        return String(Math.floor(ms / 1000));
      case 'n':
        return '\n';
      case 't':
        return '\t';
      case '%':
        return '%';
      default:
        return all;
    }
  });
}
