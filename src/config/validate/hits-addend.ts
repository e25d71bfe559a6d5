/**
 * A route rate limit's `hits_addend` (`config.route.v3.RateLimit.HitsAddend`): how many hits the
 * descriptor counts for at the rate limit service. Envoy's rules (route_components.proto): one of
 * `number` (at most 1 000 000 000) or `format`, a substitution format string of exactly one
 * field (`%…%`; anything else: Envoy refuses the config). meshlet evaluates the request-header
 * fields `%REQ(X?Y):Z%` and `%REQUEST_HEADER(X?Y):Z%`; another field is not implemented (the
 * EnvoyFilter is skipped with a warning naming it).
 *
 * @module
 */
import type { FieldPath } from '../issues.ts';
import type { HitsAddendSettings } from '../types/local-rate-limit.ts';
import { message, text, uint32 } from './proto-json.ts';
import { fail, type Ctx, type Validator } from './schema.ts';

/** Envoy's bound on a descriptor's hits (`number`'s `lte`, and a format's result). */
export const MAX_HITS_ADDEND = 1_000_000_000;

const FIELD = /^%([A-Z_]+)(?:\(([^)]*)\))?(?::(\d+))?%$/;

/** Records a part meshlet does not implement (rate-limit-actions.ts's `notImplemented`, passed in: no import cycle). */
type NotImplemented = (ctx: Ctx, path: FieldPath, what: string) => void;

/** A reader of `hits_addend`: undefined when unset (one hit, the request's) or not usable. */
export const hitsAddendReader =
  (notImplemented: NotImplemented): Validator<HitsAddendSettings> =>
  (v, path, ctx) =>
    readHitsAddend(v, path, ctx, notImplemented);

function readHitsAddend(v: unknown, path: FieldPath, ctx: Ctx, notImplemented: NotImplemented): HitsAddendSettings | undefined {
  const h = message<{ number?: number; format?: string }>({
    number: uint32({ max: MAX_HITS_ADDEND }),
    format: text,
  })(v, path, ctx);
  if (h === undefined) return undefined;
  const format = h.format === '' ? undefined : h.format;
  if (h.number !== undefined && format !== undefined) return fail(ctx, path, 'sets both number and format: Envoy takes one of them');
  if (h.number !== undefined) return { number: h.number };
  if (format === undefined) return undefined;
  const fp = [...path, 'format'];
  const m = FIELD.exec(format);
  if (m === null) return fail(ctx, fp, `"${format}" must be exactly one substitution field, such as "%REQ(x-hits)%" (Envoy refuses the config otherwise)`);
  const [, command, arg, max] = m as unknown as [string, string, string | undefined, string | undefined];
  if (command !== 'REQ' && command !== 'REQUEST_HEADER') {
    notImplemented(ctx, fp, `the hits_addend format ${format} (meshlet evaluates %REQ(header)% and %REQUEST_HEADER(header)%; the rate limit call is made on the request's headers)`);
    return undefined;
  }
  if (arg === undefined || arg === '') return fail(ctx, fp, `${command} needs a header name, as ${command}(x-hits)`);
  const [header, alt, extra] = arg.split('?');
  if (extra !== undefined || header === '' || alt === '') return fail(ctx, fp, `${command}(${arg}): takes a header name, or two separated by "?" (the second when the first is absent)`);
  return { header: (header as string).toLowerCase(), ...(alt === undefined ? {} : { altHeader: alt.toLowerCase() }), ...(max === undefined ? {} : { maxLength: Number(max) }) };
}
