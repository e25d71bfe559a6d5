/**
 * What a verified token puts into the request for the app and for authorization, as Envoy's
 * `jwt_authn` authenticator does:
 *
 * - `outputPayloadToHeader`: the payload section exactly as it was in the token (base64url,
 *   unpadded) — Envoy's `forward_payload_header`.
 * - `outputClaimToHeaders`: one claim per header, nested names split on `.`; a string as is, a
 *   boolean as `true`/`false`, a number as Envoy prints it (a whole number in [0, 2^64) as an
 *   integer, anything else with six decimals, like C++ `std::to_string`), an object or a list as
 *   the base64 of its JSON (Envoy's newer behaviour; Istio's API text still says only string,
 *   int and bool). A missing, null or empty claim writes no header.
 * - The headers both write are removed from the incoming request first (Envoy's
 *   `sanitizeHeaders`), so a client cannot send its own `x-jwt-sub`.
 * - A value that cannot be a header value is never written: the claim's UTF-8 bytes become the
 *   header's characters (what Node shows for a UTF-8 header it receives from a sidecar), and a
 *   value with a control character — CR, LF, NUL, … — is dropped and reported, never sent.
 * - Claims for authorization: `scope`, `permission` and the rule's `spaceDelimitedClaims` are
 *   split on spaces into lists (Envoy's `normalize_payload_in_metadata`; top-level names only, as
 *   Envoy looks them up).
 *
 * @module
 */
import type { Headers } from '../../core/handler.ts';
import type { ClaimObject, ClaimValue } from './token.ts';

/** Claims Istio always treats as space-delimited (`buildSpaceDelimitedClaims`). */
export const DEFAULT_SPACE_DELIMITED: readonly string[] = Object.freeze(['permission', 'scope']);

/** One `outputClaimToHeaders` entry, compiled. */
export interface ClaimHeader {
  /** Lower-cased header name. */
  readonly header: string;
  /** The claim name as configured (`a.b.c`). */
  readonly claim: string;
  /** The claim path, split on `.`. */
  readonly path: readonly string[];
}

/** Compiles `outputClaimToHeaders`. */
export function claimHeaders(list: readonly { readonly header: string; readonly claim: string }[] | undefined): readonly ClaimHeader[] {
  return Object.freeze((list ?? []).map((c) => Object.freeze({ header: c.header.toLowerCase(), claim: c.claim, path: Object.freeze(c.claim.split('.')) })));
}

/** `StructUtils::GetValue`: follows a dotted path through objects. */
export function claimAt(payload: ClaimObject, path: readonly string[]): ClaimValue | undefined {
  let cur: ClaimValue | undefined = payload;
  for (const name of path) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur)) return undefined;
    const o = cur as ClaimObject;
    if (!Object.hasOwn(o, name)) return undefined;
    cur = o[name];
  }
  return cur;
}

/** `convertClaimDoubleToString`: integers in [0, 2^64) print as integers, the rest as `%f`. */
function numberText(n: number): string {
  if (n >= 0 && n < 2 ** 64 && Number.isInteger(n)) return BigInt(n).toString();
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : n < 0 ? '-inf' : 'nan';
  return n.toFixed(6);
}

/** The header text Envoy writes for a claim value, or undefined when it writes none. */
export function claimText(v: ClaimValue | undefined): string | undefined {
  if (v === undefined || v === null) return undefined;
  let s: string;
  if (typeof v === 'string') s = v;
  else if (typeof v === 'number') s = numberText(v);
  else if (typeof v === 'boolean') s = v ? 'true' : 'false';
  else s = Buffer.from(JSON.stringify(v), 'utf8').toString('base64');
  return s === '' ? undefined : s;
}

// Anything a field value may not hold: controls other than HTAB, and DEL (RFC 9110 §5.5).
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const FORBIDDEN_IN_HEADER = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/**
 * The header value for `text` (its UTF-8 bytes, one character each, which is how a Node server
 * reads a header a sidecar sent), or undefined when it holds a control character.
 */
export function headerSafe(text: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find them
  const latin1 = /^[\u0000-\u007f]*$/.test(text) ? text : Buffer.from(text, 'utf8').toString('latin1');
  return FORBIDDEN_IN_HEADER.test(latin1) ? undefined : latin1;
}

/** Removes the headers a rule writes from the incoming request. */
export function sanitize(headers: Headers, names: Iterable<string>): void {
  for (const n of names) delete headers[n];
}

/** What writing a token's outputs did. */
export interface OutputReport {
  /** Headers written. */
  readonly written: string[];
  /** Claims not written because their value is not a valid header value. */
  readonly refused: string[];
}

/** Writes the payload header and the claim headers of a verified token. */
export function writeOutputs(headers: Headers, payloadHeader: string, payloadB64: string, claims: readonly ClaimHeader[], payload: ClaimObject): OutputReport {
  const report: OutputReport = { written: [], refused: [] };
  if (payloadHeader !== '') {
    headers[payloadHeader] = payloadB64;
    report.written.push(payloadHeader);
  }
  for (const c of claims) {
    const text = claimText(claimAt(payload, c.path));
    if (text === undefined) continue;
    const value = headerSafe(text);
    if (value === undefined) {
      report.refused.push(`${c.claim} → ${c.header}`);
      continue;
    }
    headers[c.header] = value;
    report.written.push(c.header);
  }
  return report;
}

/**
 * The payload as authorization matches it: each listed top-level claim that is a string becomes
 * the list of its space-separated words; everything else is unchanged.
 */
export function normalizeClaims(payload: ClaimObject, spaceDelimited: ReadonlySet<string>): ClaimObject {
  let out: Record<string, ClaimValue> | undefined;
  for (const name of spaceDelimited) {
    const v = Object.hasOwn(payload, name) ? payload[name] : undefined;
    if (typeof v !== 'string') continue;
    out ??= Object.assign(Object.create(null), payload) as Record<string, ClaimValue>;
    out[name] = Object.freeze(v.split(' ').filter((w) => w !== ''));
  }
  return out === undefined ? payload : Object.freeze(out);
}
