/**
 * Envoy's rate-limit actions (`config.route.v3.RateLimit`, and the filter's own
 * `common.ratelimit.v3.RateLimitConfig`), read out of an EnvoyFilter: the actions that turn a
 * request into descriptors for the local rate limit filter, with Envoy's defaults
 * (`header_match`, `generic_key`, `query_match` keys; `expect_match` true) and its
 * `HeaderMatcher` / `QueryParameterMatcher`. What meshlet cannot evaluate (metadata actions,
 * CEL beyond a single attribute, limit overrides) is recorded as not implemented,
 * which makes the EnvoyFilter skipped (see `envoy-filter.ts`).
 *
 * @module
 */
import type { FieldPath } from '../issues.ts';
import type { CelAttribute, HeaderMatcherSettings, HitsAddendSettings, QueryMatcherSettings, RateLimitAction, RateLimitPolicySettings } from '../types/local-rate-limit.ts';
import { hitsAddendReader } from './hits-addend.ts';
import { checkCel } from './cel.ts';
import { anyValue, boolean, message, nonEmptyText, text, uint32 } from './proto-json.ts';
import { fail, list, type Ctx, type Validator } from './schema.ts';
import { compileRe2 } from '../regex.ts';

/** A part of an EnvoyFilter meshlet cannot apply as Envoy would. */
export interface NotImplemented {
  readonly path: FieldPath;
  readonly what: string;
}

/** The validation context of an EnvoyFilter: also collects what meshlet does not implement. */
export interface EnvoyFilterCtx extends Ctx {
  readonly notImplemented: NotImplemented[];
}

/** Records that `what` (at `path`) is not implemented by meshlet; the EnvoyFilter will be skipped. */
export function notImplemented(ctx: Ctx, path: FieldPath, what: string): void {
  const list = (ctx as Partial<EnvoyFilterCtx>).notImplemented;
  if (list !== undefined) list.push({ path, what });
}

const HEADER_NAME = /^[^\0\r\n:][^\0\r\n]*$|^:[a-z]+$/;

/** An HTTP header name as Envoy takes it in a matcher (pseudo-headers allowed), lower-cased. */
const headerName: Validator<string> = (v, path, ctx) => {
  const s = nonEmptyText(v, path, ctx);
  if (s === undefined) return undefined;
  if (!HEADER_NAME.test(s) || /\s/.test(s)) return fail(ctx, path, `"${s}" is not a valid header name`);
  return s.toLowerCase();
};

const regexText: Validator<string> = (v, path, ctx) => {
  const s = nonEmptyText(v, path, ctx);
  if (s === undefined) return undefined;
  const re = compileRe2(s);
  return 'error' in re ? fail(ctx, path, re.error) : s;
};

const regexMatcher = message<{ regex: string; google_re2?: object }>({
  regex: { validate: regexText, required: true },
  google_re2: (v) => v as object,
});

type Op = 'exact' | 'prefix' | 'suffix' | 'contains' | 'regex';

interface RawStringMatcher {
  exact?: string;
  prefix?: string;
  suffix?: string;
  contains?: string;
  safe_regex?: { regex: string };
  ignore_case?: boolean;
  custom?: object;
}

const stringMatcher = message<RawStringMatcher>(
  {
    exact: text,
    prefix: nonEmptyText,
    suffix: nonEmptyText,
    contains: nonEmptyText,
    safe_regex: regexMatcher,
    ignore_case: boolean,
    custom: (v, path, ctx) => {
      notImplemented(ctx, path, 'custom string matchers');
      return v as object;
    },
  },
  { exactlyOne: [['exact', 'prefix', 'suffix', 'contains', 'safe_regex', 'custom']] },
);

function opOf(m: RawStringMatcher): { op: Op; value: string } | undefined {
  if (m.exact !== undefined) return { op: 'exact', value: m.exact };
  if (m.prefix !== undefined) return { op: 'prefix', value: m.prefix };
  if (m.suffix !== undefined) return { op: 'suffix', value: m.suffix };
  if (m.contains !== undefined) return { op: 'contains', value: m.contains };
  if (m.safe_regex !== undefined) return { op: 'regex', value: m.safe_regex.regex };
  return undefined;
}

interface RawHeaderMatcher {
  name: string;
  exact_match?: string;
  safe_regex_match?: { regex: string };
  range_match?: { start: number; end: number };
  present_match?: boolean;
  prefix_match?: string;
  suffix_match?: string;
  contains_match?: string;
  string_match?: RawStringMatcher;
  invert_match?: boolean;
  treat_missing_header_as_empty?: boolean;
}

const int64: Validator<number> = (v, path, ctx) => {
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
  return typeof n === 'number' && Number.isSafeInteger(n) ? n : fail(ctx, path, `must be a whole number, got ${JSON.stringify(v)}`);
};

const HEADER_SPECIFIERS = ['exact_match', 'safe_regex_match', 'range_match', 'present_match', 'prefix_match', 'suffix_match', 'contains_match', 'string_match'] as const;

const rawHeaderMatcher = message<RawHeaderMatcher>(
  {
    name: { validate: headerName, required: true },
    exact_match: text,
    safe_regex_match: regexMatcher,
    range_match: message<{ start: number; end: number }>(
      { start: int64, end: int64 },
      { check: (r, path, ctx) => (r.start ?? 0) >= (r.end ?? 0) && fail(ctx, path, 'start must be less than end') },
    ),
    present_match: boolean,
    prefix_match: nonEmptyText,
    suffix_match: nonEmptyText,
    contains_match: nonEmptyText,
    string_match: stringMatcher,
    invert_match: boolean,
    treat_missing_header_as_empty: boolean,
  },
  { oneOf: [[...HEADER_SPECIFIERS]] },
);

/** A `config.route.v3.HeaderMatcher`. */
export const headerMatcher: Validator<HeaderMatcherSettings> = (v, path, ctx) => {
  const m = rawHeaderMatcher(v, path, ctx);
  if (m === undefined || m.name === undefined) return undefined;
  const common = { name: m.name, invert: m.invert_match ?? false, treatMissingAsEmpty: m.treat_missing_header_as_empty ?? false };
  const str = (op: Op, value: string, ignoreCase = false) => ({ ...common, match: { kind: 'string' as const, op, value, ignoreCase } });
  if (m.exact_match !== undefined) return str('exact', m.exact_match);
  if (m.safe_regex_match !== undefined) return str('regex', m.safe_regex_match.regex);
  if (m.prefix_match !== undefined) return str('prefix', m.prefix_match);
  if (m.suffix_match !== undefined) return str('suffix', m.suffix_match);
  if (m.contains_match !== undefined) return str('contains', m.contains_match);
  if (m.range_match !== undefined) return { ...common, match: { kind: 'range', start: m.range_match.start ?? 0, end: m.range_match.end ?? 0 } };
  if (m.string_match !== undefined) {
    const o = opOf(m.string_match);
    return o === undefined ? undefined : str(o.op, o.value, m.string_match.ignore_case ?? false);
  }
  // present_match, or no specifier at all: Envoy matches on presence.
  return { ...common, match: { kind: 'present', present: m.present_match ?? true } };
};

const rawQueryMatcher = message<{ name: string; string_match?: RawStringMatcher; present_match?: boolean }>(
  {
    name: {
      validate: (v, path, ctx) => {
        const s = nonEmptyText(v, path, ctx);
        return s !== undefined && s.length > 1024 ? fail(ctx, path, 'must be at most 1024 characters') : s;
      },
      required: true,
    },
    string_match: stringMatcher,
    present_match: boolean,
  },
  { oneOf: [['string_match', 'present_match']] },
);

const queryMatcher: Validator<QueryMatcherSettings> = (v, path, ctx) => {
  const m = rawQueryMatcher(v, path, ctx);
  if (m === undefined || m.name === undefined) return undefined;
  if (m.string_match !== undefined) {
    const o = opOf(m.string_match);
    return o === undefined ? undefined : { name: m.name, match: { kind: 'string', op: o.op, value: o.value, ignoreCase: m.string_match.ignore_case ?? false } };
  }
  if (m.present_match === false) {
    notImplemented(ctx, [...path, 'present_match'], 'present_match: false on a query parameter');
    return undefined;
  }
  return { name: m.name, match: { kind: 'present' } };
};

// ---------- CEL descriptors ----------

/** The type URL of Envoy's CEL descriptor extension. */
export const EXPR_DESCRIPTOR_URL = 'type.googleapis.com/envoy.extensions.rate_limit_descriptors.expr.v3.Descriptor';

const REQUEST_FIELDS = ['path', 'url_path', 'host', 'method', 'scheme', 'query', 'id', 'protocol'] as const;

/** The attribute a CEL text names, when it is exactly one attribute meshlet knows. */
export function celAttribute(text: string): CelAttribute | undefined {
  const t = text.trim();
  const header = /^request\.headers\[\s*(?:'([^'\\]+)'|"([^"\\]+)")\s*\]$/.exec(t);
  if (header !== null) return { kind: 'request-header', name: (header[1] ?? header[2] ?? '').toLowerCase() };
  const m = /^(request|source|destination|connection)\.([a-z_]+)$/.exec(t);
  if (m === null) return undefined;
  const [, group, field] = m as unknown as [string, string, string];
  if (group === 'request' && (REQUEST_FIELDS as readonly string[]).includes(field)) return { kind: 'request', field: field as (typeof REQUEST_FIELDS)[number] };
  if (group === 'source' && (field === 'address' || field === 'port')) return { kind: 'source', field };
  if (group === 'destination' && field === 'port') return { kind: 'destination', field };
  if (group === 'connection' && (field === 'uri_san_peer_certificate' || field === 'mtls')) return { kind: 'connection', field };
  return undefined;
}

const rawExpr = message<{ descriptor_key: string; skip_if_error?: boolean; text?: string; parsed?: object }>(
  {
    descriptor_key: { validate: nonEmptyText, required: true },
    skip_if_error: boolean,
    text: nonEmptyText,
    parsed: (v, path, ctx) => {
      notImplemented(ctx, path, 'a parsed CEL expression (meshlet reads the text form)');
      return v as object;
    },
  },
  { exactlyOne: [['text', 'parsed']] },
);

function extensionAction(v: unknown, path: FieldPath, ctx: Ctx): RateLimitAction | undefined {
  const ext = message<{ name: string; typed_config: object }>({ name: { validate: nonEmptyText, required: true }, typed_config: { validate: (x) => x as object, required: true } })(v, path, ctx);
  if (ext?.typed_config === undefined) return undefined;
  const any = anyValue(ext.typed_config, [...path, 'typed_config'], ctx);
  if (any === undefined) return undefined;
  if (any.typeUrl !== EXPR_DESCRIPTOR_URL) {
    notImplemented(ctx, [...path, 'typed_config'], `the rate-limit descriptor extension ${any.typeUrl}`);
    return undefined;
  }
  const e = rawExpr(any.fields, any.path, ctx);
  if (e?.descriptor_key === undefined || e.text === undefined) return undefined;
  const syntax = checkCel(e.text);
  if (syntax !== undefined) return fail(ctx, [...any.path, 'text'], `CEL: ${syntax}`);
  const attribute = celAttribute(e.text);
  if (attribute === undefined) {
    notImplemented(
      ctx,
      [...any.path, 'text'],
      `the CEL expression "${e.text}" (meshlet evaluates one attribute: request.path, request.url_path, request.host, request.method, request.scheme, request.headers['name'], source.address, source.port, destination.port, connection.uri_san_peer_certificate, connection.mtls)`,
    );
    return undefined;
  }
  return { type: 'expression', descriptorKey: e.descriptor_key, attribute, skipIfError: e.skip_if_error ?? false, text: e.text };
}

// ---------- actions ----------

interface RawAction {
  source_cluster?: object;
  destination_cluster?: object;
  request_headers?: { header_name: string; descriptor_key: string; skip_if_absent?: boolean };
  remote_address?: object;
  generic_key?: { descriptor_value: string; descriptor_key?: string };
  header_value_match?: { descriptor_key?: string; descriptor_value: string; expect_match?: boolean; headers: HeaderMatcherSettings[] };
  dynamic_metadata?: object;
  metadata?: object;
  extension?: object;
  masked_remote_address?: { v4_prefix_mask_len?: number; v6_prefix_mask_len?: number };
  query_parameter_value_match?: { descriptor_key?: string; descriptor_value: string; expect_match?: boolean; query_parameters: QueryMatcherSettings[] };
  query_parameters?: { query_parameter_name: string; descriptor_key: string; skip_if_absent?: boolean };
}

const empty = message<object>({});
const opaque: Validator<object> = (v) => v as object;

const ACTIONS = [
  'source_cluster',
  'destination_cluster',
  'request_headers',
  'remote_address',
  'generic_key',
  'header_value_match',
  'dynamic_metadata',
  'metadata',
  'extension',
  'masked_remote_address',
  'query_parameter_value_match',
  'query_parameters',
] as const;

const rawAction = message<RawAction>(
  {
    source_cluster: empty,
    destination_cluster: empty,
    request_headers: message({ header_name: { validate: headerName, required: true }, descriptor_key: { validate: nonEmptyText, required: true }, skip_if_absent: boolean }),
    remote_address: empty,
    generic_key: message({ descriptor_value: { validate: nonEmptyText, required: true }, descriptor_key: text }),
    header_value_match: message({
      descriptor_key: text,
      descriptor_value: { validate: nonEmptyText, required: true },
      expect_match: boolean,
      headers: { validate: list(headerMatcher, { min: 1 }), required: true },
    }),
    dynamic_metadata: opaque,
    metadata: opaque,
    extension: opaque,
    masked_remote_address: message({ v4_prefix_mask_len: uint32({ max: 32 }), v6_prefix_mask_len: uint32({ max: 128 }) }),
    query_parameter_value_match: message({
      descriptor_key: text,
      descriptor_value: { validate: nonEmptyText, required: true },
      expect_match: boolean,
      query_parameters: { validate: list(queryMatcher, { min: 1 }), required: true },
    }),
    query_parameters: message({ query_parameter_name: { validate: nonEmptyText, required: true }, descriptor_key: { validate: nonEmptyText, required: true }, skip_if_absent: boolean }),
  },
  { exactlyOne: [[...ACTIONS]] },
);

/** One rate-limit action. */
export const rateLimitAction: Validator<RateLimitAction> = (v, path, ctx) => {
  const a = rawAction(v, path, ctx);
  if (a === undefined) return undefined;
  if (a.source_cluster !== undefined) return { type: 'source_cluster' };
  if (a.destination_cluster !== undefined) return { type: 'destination_cluster' };
  if (a.remote_address !== undefined) return { type: 'remote_address' };
  if (a.request_headers !== undefined) {
    const r = a.request_headers;
    if (r.header_name === undefined || r.descriptor_key === undefined) return undefined;
    return { type: 'request_headers', headerName: r.header_name, descriptorKey: r.descriptor_key, skipIfAbsent: r.skip_if_absent ?? false };
  }
  if (a.generic_key !== undefined) {
    const g = a.generic_key;
    if (g.descriptor_value === undefined) return undefined;
    return { type: 'generic_key', descriptorKey: g.descriptor_key === undefined || g.descriptor_key === '' ? 'generic_key' : g.descriptor_key, descriptorValue: g.descriptor_value };
  }
  if (a.header_value_match !== undefined) {
    const h = a.header_value_match;
    if (h.descriptor_value === undefined || h.headers === undefined) return undefined;
    return {
      type: 'header_value_match',
      descriptorKey: h.descriptor_key === undefined || h.descriptor_key === '' ? 'header_match' : h.descriptor_key,
      descriptorValue: h.descriptor_value,
      expectMatch: h.expect_match ?? true,
      headers: h.headers,
    };
  }
  if (a.masked_remote_address !== undefined) {
    return { type: 'masked_remote_address', v4PrefixLen: a.masked_remote_address.v4_prefix_mask_len ?? 32, v6PrefixLen: a.masked_remote_address.v6_prefix_mask_len ?? 128 };
  }
  if (a.query_parameter_value_match !== undefined) {
    const q = a.query_parameter_value_match;
    if (q.descriptor_value === undefined || q.query_parameters === undefined) return undefined;
    return {
      type: 'query_parameter_value_match',
      descriptorKey: q.descriptor_key === undefined || q.descriptor_key === '' ? 'query_match' : q.descriptor_key,
      descriptorValue: q.descriptor_value,
      expectMatch: q.expect_match ?? true,
      queryParameters: q.query_parameters,
    };
  }
  if (a.query_parameters !== undefined) {
    const q = a.query_parameters;
    if (q.query_parameter_name === undefined || q.descriptor_key === undefined) return undefined;
    return { type: 'query_parameters', queryParameterName: q.query_parameter_name, descriptorKey: q.descriptor_key, skipIfAbsent: q.skip_if_absent ?? false };
  }
  if (a.extension !== undefined) return extensionAction(a.extension, [...path, 'extension'], ctx);
  const which = a.metadata !== undefined ? 'metadata' : 'dynamic_metadata';
  notImplemented(ctx, [...path, which], `the ${which} rate-limit action (meshlet has no Envoy metadata)`);
  return undefined;
};

const notImplementedField =
  (what: string): Validator<object> =>
  (v, path, ctx) => {
    notImplemented(ctx, path, what);
    return v as object;
  };

/** A route's `rate_limits[]` entry (`config.route.v3.RateLimit`). */
export const routeRateLimit: Validator<RateLimitPolicySettings> = (v, path, ctx) => {
  const r = message<{ stage?: number; disable_key?: string; actions: RateLimitAction[]; limit?: object; hits_addend?: HitsAddendSettings; apply_on_stream_done?: boolean }>({
    stage: uint32({ max: 10 }),
    disable_key: text,
    actions: { validate: list(rateLimitAction, { min: 1 }), required: true },
    limit: notImplementedField('a rate-limit override (limit: its source is dynamic metadata, and meshlet has none)'),
    hits_addend: hitsAddendReader(notImplemented),
    apply_on_stream_done: (x, p, c) => {
      const b = boolean(x, p, c);
      if (b === true) notImplemented(c, p, 'apply_on_stream_done');
      return b;
    },
  })(v, path, ctx);
  if (r?.actions === undefined) return undefined;
  return { stage: r.stage ?? 0, disableKey: r.disable_key ?? '', actions: r.actions, ...(r.hits_addend === undefined ? {} : { hitsAddend: r.hits_addend }) };
};

/** The filter's own `rate_limits[]` entry (`common.ratelimit.v3.RateLimitConfig`). */
export const filterRateLimit: Validator<RateLimitPolicySettings> = (v, path, ctx) => {
  const r = message<{ actions: RateLimitAction[]; limit?: object; hits_addend?: HitsAddendSettings }>({
    actions: { validate: list(rateLimitAction, { min: 1 }), required: true },
    limit: notImplementedField('a rate-limit override (limit: its source is dynamic metadata, and meshlet has none)'),
    hits_addend: hitsAddendReader(notImplemented),
  })(v, path, ctx);
  if (r?.actions === undefined) return undefined;
  return { stage: 0, disableKey: '', actions: r.actions, ...(r.hits_addend === undefined ? {} : { hitsAddend: r.hits_addend }) };
};
