/**
 * Envoy access-log formats, compiled once: a text format string (`[%START_TIME%] "%REQ(:METHOD)% …"`)
 * or a JSON format (labels whose values are format strings), with Istio's defaults
 * (`pilot/pkg/model/telemetry_logging.go`: `EnvoyTextLogFormat`, `EnvoyJSONLogFormatIstio`).
 *
 * Text: a missing value prints `-` (nothing with `omitEmptyValues`). JSON: a value that is one
 * operator alone keeps its type (`"response_code": 200`) and is `null` when missing (left out
 * with `omitEmptyValues`); a value mixing text and operators is a string with `-` for what is
 * missing.
 *
 * @module
 */
import { AttributeView } from '../attributes.ts';
import type { RequestRecord } from '../record.ts';
import { compileOperator, FormatError, type Operator, type OperatorNeed, type OperatorValue } from './operators.ts';

export { FormatError, type OperatorNeed } from './operators.ts';

/** Istio's default text format (Istio 1.9 onwards), with the newline Istio ends every format with. */
export const ISTIO_TEXT_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% ' +
  '%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% ' +
  '%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" ' +
  '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% ' +
  '%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n';

/** Istio's default JSON format (`EnvoyJSONLogFormatIstio`). */
export const ISTIO_JSON_FORMAT: Readonly<Record<string, string>> = Object.freeze({
  authority: '%REQ(:AUTHORITY)%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  connection_termination_details: '%CONNECTION_TERMINATION_DETAILS%',
  downstream_local_address: '%DOWNSTREAM_LOCAL_ADDRESS%',
  downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%',
  duration: '%DURATION%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  protocol: '%PROTOCOL%',
  request_id: '%REQ(X-REQUEST-ID)%',
  requested_server_name: '%REQUESTED_SERVER_NAME%',
  response_code: '%RESPONSE_CODE%',
  response_code_details: '%RESPONSE_CODE_DETAILS%',
  response_flags: '%RESPONSE_FLAGS%',
  route_name: '%ROUTE_NAME%',
  start_time: '%START_TIME%',
  upstream_cluster: '%UPSTREAM_CLUSTER_RAW%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_local_address: '%UPSTREAM_LOCAL_ADDRESS%',
  upstream_service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
  upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
  user_agent: '%REQ(USER-AGENT)%',
  x_forwarded_for: '%REQ(X-FORWARDED-FOR)%',
});

type Part = string | Operator;

/** Splits a format string into text and compiled operators (what they need added to `needs`); throws {@link FormatError} naming the position. */
function parse(format: string, needs: Set<OperatorNeed> | undefined): Part[] {
  const parts: Part[] = [];
  let text = '';
  let i = 0;
  while (i < format.length) {
    const c = format[i] as string;
    if (c !== '%') {
      text += c;
      i++;
      continue;
    }
    const name = /^%([A-Z0-9_]+)/.exec(format.slice(i));
    if (name === null) throw new FormatError(`no valid command operator at position ${i} (a "%" starts one, e.g. %RESPONSE_CODE%)`);
    let j = i + name[0].length;
    let arg: string | undefined;
    if (format[j] === '(') {
      // The argument ends at the first ")" that is followed by "%" or ":<digits>%" (a CEL expression may hold parentheses).
      const close = /\)(?=%|:\d+%)/g;
      close.lastIndex = j + 1;
      const m = close.exec(format);
      if (m === null) throw new FormatError(`%${name[1]}(… at position ${i} has no closing ")%"`);
      arg = format.slice(j + 1, m.index);
      j = m.index + 1;
    }
    let max: number | undefined;
    const len = /^:(\d+)/.exec(format.slice(j));
    if (len !== null) {
      max = Number(len[1]);
      j += len[0].length;
    }
    if (format[j] !== '%') throw new FormatError(`command operator at position ${i} is not closed with "%"`);
    try {
      parts.push(compileOperator(name[1] as string, arg, max, needs));
    } catch (e) {
      if (e instanceof FormatError) throw new FormatError(`${e.message} (at position ${i})`);
      throw e;
    }
    if (text !== '') parts.splice(parts.length - 1, 0, text);
    text = '';
    i = j + 1;
  }
  if (text !== '') parts.push(text);
  return parts;
}

/** A view made on the first `%CEL%` that needs it. */
function lazyView(r: RequestRecord): () => AttributeView {
  let v: AttributeView | undefined;
  return () => {
    v ??= new AttributeView(r);
    return v;
  };
}

/** A compiled text format: one line per request. */
export type TextFormatter = (r: RequestRecord) => string;

/** A compiled JSON format: one object per request. */
export type JsonFormatter = (r: RequestRecord) => Record<string, unknown>;

const str = (v: OperatorValue, empty: string): string => (v === undefined || v === '' ? empty : String(v));

/**
 * Compiles a text format. Istio ends every text format with a newline (added when missing);
 * the line this gives keeps it. `needs` collects the data its operators need captured — for
 * Istio's default (an empty format), `local`: its `%UPSTREAM_LOCAL_ADDRESS%`.
 */
export function compileTextFormat(format: string, omitEmptyValues = false, needs?: Set<OperatorNeed>): TextFormatter {
  if (format === '') return compileSubstitution(ISTIO_TEXT_FORMAT, omitEmptyValues, needs);
  return compileSubstitution(format.endsWith('\n') ? format : `${format}\n`, omitEmptyValues, needs);
}

/**
 * Compiles a substitution format string as it is (no newline added, no default for an empty
 * one): Envoy's `SubstitutionFormatString` where it is not an access-log line, such as a span's
 * formatter custom tag. Throws {@link FormatError} naming the position of what does not parse.
 */
export function compileSubstitution(format: string, omitEmptyValues: boolean, needs?: Set<OperatorNeed>): TextFormatter {
  const parts = parse(format, needs);
  const empty = omitEmptyValues ? '' : '-';
  return (r) => {
    const view = lazyView(r);
    let out = '';
    for (const p of parts) out += typeof p === 'string' ? p : str(p(r, view), empty);
    return out;
  };
}

type JsonNode = { readonly kind: 'value'; readonly v: unknown } | { readonly kind: 'one'; readonly op: Operator } | { readonly kind: 'mixed'; readonly parts: Part[] } | { readonly kind: 'object'; readonly fields: readonly (readonly [string, JsonNode])[] };

function compileJsonNode(v: unknown, path: string, needs: Set<OperatorNeed> | undefined): JsonNode {
  if (typeof v === 'string') {
    let parts: Part[];
    try {
      parts = parse(v, needs);
    } catch (e) {
      if (e instanceof FormatError) throw new FormatError(`${path}: ${e.message}`);
      throw e;
    }
    if (parts.length === 1 && typeof parts[0] === 'function') return { kind: 'one', op: parts[0] };
    return parts.some((p) => typeof p === 'function') ? { kind: 'mixed', parts } : { kind: 'value', v };
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return { kind: 'object', fields: Object.entries(v).map(([k, x]) => [k, compileJsonNode(x, `${path}.${k}`, needs)] as const) };
  return { kind: 'value', v };
}

function renderJson(n: JsonNode, r: RequestRecord, view: () => AttributeView, omit: boolean): unknown {
  switch (n.kind) {
    case 'value':
      return n.v;
    case 'one': {
      const v = n.op(r, view);
      return v === undefined || (omit && v === '') ? (omit ? undefined : null) : v;
    }
    case 'mixed': {
      let out = '';
      for (const p of n.parts) out += typeof p === 'string' ? p : str(p(r, view), omit ? '' : '-');
      return out;
    }
    default: {
      const o: Record<string, unknown> = {};
      for (const [k, c] of n.fields) {
        const v = renderJson(c, r, view, omit);
        if (v !== undefined) o[k] = v;
      }
      return o;
    }
  }
}

/**
 * Compiles a JSON format (`logFormat.labels`, or MeshConfig `accessLogFormat` with JSON
 * encoding); an empty one is Istio's default (which needs `local`, as the text default).
 */
export function compileJsonFormat(labels: Readonly<Record<string, unknown>> | undefined, omitEmptyValues = false, needs?: Set<OperatorNeed>): JsonFormatter {
  const istio = labels === undefined || Object.keys(labels).length === 0;
  const root = compileJsonNode(istio ? ISTIO_JSON_FORMAT : labels, 'labels', needs);
  return (r) => renderJson(root, r, lazyView(r), omitEmptyValues) as Record<string, unknown>;
}
