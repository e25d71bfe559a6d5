/**
 * Envoy's local rate limit filter config
 * (`envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`), read out of an
 * EnvoyFilter's `patch.value` — direct (`"@type": …LocalRateLimit`) or in a `TypedStruct` —
 * and checked as Envoy checks it when the config arrives (its proto validation rules and the
 * filter's own: `stat_prefix` required, `max_tokens` and `tokens_per_fill` > 0, `fill_interval`
 * a duration of at least 50ms, a known denominator, at most 10 headers to add, no duplicate
 * descriptor, a per-route config must have a token bucket, …), so a config Envoy would refuse is
 * refused when it is loaded. Returns the settings with Envoy's defaults filled in.
 *
 * @module
 */
import type { FieldPath } from '../issues.ts';
import type {
  AppendAction,
  DescriptorEntry,
  DescriptorSettings,
  FractionSettings,
  HeaderToAdd,
  LocalRateLimitSettings,
  RateLimitPolicySettings,
  TokenBucketSettings,
  VhRateLimits,
} from '../types/local-rate-limit.ts';
import { checkHeaderValue, hasFormatter } from './header-value.ts';
import { anyValue, boolean, duration, enumOf, message, nonEmptyText, text, uint32 } from './proto-json.ts';
import { filterRateLimit, notImplemented } from './rate-limit-actions.ts';
import { fail, list, type Ctx, type Validator } from './schema.ts';

/** The type URL of the local rate limit filter's config. */
export const LOCAL_RATE_LIMIT_URL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

/** Envoy refuses token buckets that refill more often than this. */
const MIN_FILL_INTERVAL_MS = 50;

const tokenBucket = message<{ max_tokens: number; tokens_per_fill?: number; fill_interval: number; name?: string }>({
  max_tokens: { validate: uint32({ min: 1, why: '(Envoy: max_tokens must be greater than 0)' }), required: true },
  tokens_per_fill: uint32({ min: 1, why: '(Envoy: tokens_per_fill must be greater than 0)' }),
  fill_interval: { validate: duration({ minMs: MIN_FILL_INTERVAL_MS, why: '(Envoy refuses token buckets that refill more often)' }), required: true },
  name: text,
});

const readTokenBucket: Validator<TokenBucketSettings> = (v, path, ctx) => {
  const b = tokenBucket(v, path, ctx);
  if (b?.max_tokens === undefined || b.fill_interval === undefined) return undefined;
  return { maxTokens: b.max_tokens, tokensPerFill: b.tokens_per_fill ?? 1, fillIntervalMs: b.fill_interval };
};

const DENOMINATORS = ['HUNDRED', 'TEN_THOUSAND', 'MILLION'] as const;
const DENOMINATOR_VALUE = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 } as const;

const fractionalPercent = message<{ numerator?: number; denominator?: (typeof DENOMINATORS)[number] }>({
  numerator: uint32(),
  denominator: enumOf(DENOMINATORS),
});

const runtimeFraction = message<{ default_value: FractionSettings; runtime_key?: string }>({
  default_value: {
    validate: (v, path, ctx) => {
      const f = fractionalPercent(v, path, ctx);
      return f === undefined ? undefined : { numerator: f.numerator ?? 0, denominator: DENOMINATOR_VALUE[f.denominator ?? 'HUNDRED'] };
    },
    required: true,
  },
  // Envoy reads the runtime key first; meshlet has no runtime, so the default value is what applies.
  runtime_key: text,
});

/** A `config.core.v3.RuntimeFractionalPercent`: its `default_value` (meshlet has no runtime, so the key is not read). */
export const readFraction: Validator<FractionSettings> = (v, path, ctx) => runtimeFraction(v, path, ctx)?.default_value;

const APPEND_ACTIONS: readonly AppendAction[] = ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS'];

const HEADER_KEY = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

const headerKey: Validator<string> = (v, path, ctx) => {
  const s = nonEmptyText(v, path, ctx);
  if (s === undefined) return undefined;
  if (s.startsWith(':') || s.toLowerCase() === 'host') return fail(ctx, path, `"${s}" cannot be set by a filter (Envoy: pseudo-headers and host are not modifiable)`);
  if (!HEADER_KEY.test(s)) return fail(ctx, path, `"${s}" is not a valid header name`);
  return s.toLowerCase();
};

const headerValueText: Validator<string> = (v, path, ctx) => {
  const s = text(v, path, ctx);
  if (s === undefined) return undefined;
  const problem = checkHeaderValue(s);
  if (problem !== undefined) return fail(ctx, path, problem);
  if (hasFormatter(s)) {
    ctx.issues.at(ctx.subject, path, 'warning', `not supported by meshlet: Envoy header formatters such as %DOWNSTREAM_REMOTE_ADDRESS% are sent as written, not substituted ("${s}")`, 'MESHLET0002');
  }
  return s.replace(/%%/g, '%');
};

const headerValueOption = message<{
  header: { key: string; value?: string; raw_value?: string };
  append?: boolean;
  append_action?: AppendAction;
  keep_empty_value?: boolean;
}>(
  {
    header: {
      validate: message<{ key: string; value?: string; raw_value?: string }>(
        {
          key: { validate: headerKey, required: true },
          value: headerValueText,
          raw_value: (v, path, ctx) => {
            // bytes, base64 in protobuf JSON
            const s = text(v, path, ctx);
            if (s === undefined) return undefined;
            if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return fail(ctx, path, 'must be base64 (raw_value is bytes)');
            return Buffer.from(s, 'base64').toString('latin1');
          },
        },
        { oneOf: [['value', 'raw_value']] },
      ),
      required: true,
    },
    append: boolean,
    append_action: enumOf(APPEND_ACTIONS),
    keep_empty_value: boolean,
  },
  {
    check: (o, path, ctx) => {
      if (o.append !== undefined && o.append_action !== undefined) fail(ctx, path, 'append and append_action are both set; Envoy refuses that (append is deprecated: use append_action)');
    },
  },
);

export const readHeaderToAdd: Validator<HeaderToAdd> = (v, path, ctx) => {
  const o = headerValueOption(v, path, ctx);
  if (o?.header?.key === undefined) return undefined;
  const action: AppendAction = o.append_action ?? (o.append === false ? 'OVERWRITE_IF_EXISTS_OR_ADD' : 'APPEND_IF_EXISTS_OR_ADD');
  return { key: o.header.key, value: o.header.value ?? o.header.raw_value ?? '', action, keepEmptyValue: o.keep_empty_value ?? false };
};

const descriptorEntry = message<{ key: string; value?: string }>({ key: { validate: nonEmptyText, required: true }, value: text });

const readDescriptor: Validator<DescriptorSettings> = (v, path, ctx) => {
  const d = message<{ entries: DescriptorEntry[]; token_bucket: TokenBucketSettings; shadow_mode?: boolean }>({
    entries: {
      validate: list((e, p, c) => {
        const r = descriptorEntry(e, p, c);
        return r?.key === undefined ? undefined : { key: r.key, value: r.value ?? '' };
      }, { min: 1 }),
      required: true,
    },
    token_bucket: { validate: readTokenBucket, required: true },
    shadow_mode: (x, p, c) => {
      const b = boolean(x, p, c);
      if (b === true) notImplemented(c, p, 'descriptor shadow_mode');
      return b;
    },
  })(v, path, ctx);
  if (d?.entries === undefined || d.token_bucket === undefined) return undefined;
  return { entries: d.entries, tokenBucket: d.token_bucket };
};

/** The HTTP status codes Envoy's `type.v3.StatusCode` enum defines. */
const STATUS_NAMES: Readonly<Record<string, number>> = {
  Continue: 100, OK: 200, Created: 201, Accepted: 202, NonAuthoritativeInformation: 203, NoContent: 204, ResetContent: 205, PartialContent: 206,
  MultiStatus: 207, AlreadyReported: 208, IMUsed: 226, MultipleChoices: 300, MovedPermanently: 301, Found: 302, SeeOther: 303, NotModified: 304,
  UseProxy: 305, TemporaryRedirect: 307, PermanentRedirect: 308, BadRequest: 400, Unauthorized: 401, PaymentRequired: 402, Forbidden: 403,
  NotFound: 404, MethodNotAllowed: 405, NotAcceptable: 406, ProxyAuthenticationRequired: 407, RequestTimeout: 408, Conflict: 409, Gone: 410,
  LengthRequired: 411, PreconditionFailed: 412, PayloadTooLarge: 413, URITooLong: 414, UnsupportedMediaType: 415, RangeNotSatisfiable: 416,
  ExpectationFailed: 417, MisdirectedRequest: 421, UnprocessableEntity: 422, Locked: 423, FailedDependency: 424, UpgradeRequired: 426,
  PreconditionRequired: 428, TooManyRequests: 429, RequestHeaderFieldsTooLarge: 431, InternalServerError: 500, NotImplemented: 501,
  BadGateway: 502, ServiceUnavailable: 503, GatewayTimeout: 504, HTTPVersionNotSupported: 505, VariantAlsoNegotiates: 506,
  InsufficientStorage: 507, LoopDetected: 508, NotExtended: 510, NetworkAuthenticationRequired: 511,
};
const STATUS_CODES = new Set(Object.values(STATUS_NAMES));

export const statusCode: Validator<number> = (v, path, ctx) => {
  const code = typeof v === 'string' && Object.hasOwn(STATUS_NAMES, v) ? STATUS_NAMES[v] : typeof v === 'number' ? v : undefined;
  if (code === undefined || !STATUS_CODES.has(code)) {
    return fail(ctx, path, `must be an HTTP status Envoy's StatusCode enum defines (a number such as 503, or a name such as ServiceUnavailable), got ${JSON.stringify(v)}`);
  }
  return code;
};

interface RawLocalRateLimit {
  stat_prefix: string;
  status?: { code: number };
  token_bucket?: TokenBucketSettings;
  filter_enabled?: FractionSettings;
  filter_enforced?: FractionSettings;
  request_headers_to_add_when_not_enforced?: HeaderToAdd[];
  response_headers_to_add?: HeaderToAdd[];
  descriptors?: DescriptorSettings[];
  stage?: number;
  local_rate_limit_per_downstream_connection?: boolean;
  local_cluster_rate_limit?: object;
  enable_x_ratelimit_headers?: 'OFF' | 'DRAFT_VERSION_03';
  vh_rate_limits?: VhRateLimits;
  always_consume_default_token_bucket?: boolean;
  rate_limited_as_resource_exhausted?: boolean;
  rate_limits?: RateLimitPolicySettings[];
  max_dynamic_descriptors?: number;
}

const rawLocalRateLimit = message<RawLocalRateLimit>({
  stat_prefix: { validate: nonEmptyText, required: true },
  status: message<{ code: number }>({ code: { validate: statusCode, required: true } }),
  token_bucket: readTokenBucket,
  filter_enabled: readFraction,
  filter_enforced: readFraction,
  request_headers_to_add_when_not_enforced: list(readHeaderToAdd, { max: 10 }),
  response_headers_to_add: list(readHeaderToAdd, { max: 10 }),
  descriptors: list(readDescriptor),
  stage: uint32({ max: 10 }),
  local_rate_limit_per_downstream_connection: boolean,
  local_cluster_rate_limit: (v, path, ctx) => {
    notImplemented(ctx, path, 'local_cluster_rate_limit (buckets shared across the instances of the local cluster)');
    return v as object;
  },
  enable_x_ratelimit_headers: enumOf(['OFF', 'DRAFT_VERSION_03'] as const),
  vh_rate_limits: enumOf(['OVERRIDE', 'INCLUDE', 'IGNORE'] as const),
  always_consume_default_token_bucket: boolean,
  rate_limited_as_resource_exhausted: boolean,
  rate_limits: list(filterRateLimit),
  max_dynamic_descriptors: uint32({ min: 1 }),
});

function descriptorKey(entries: readonly DescriptorEntry[]): string {
  return entries.map((e) => `${e.key}=${e.value}`).join(', ');
}

/**
 * Reads a LocalRateLimit message's fields (`fields` at `path`). `perRoute`: it is a
 * `typed_per_filter_config` entry, which Envoy refuses without a token bucket.
 */
export function readLocalRateLimitFields(fields: unknown, path: FieldPath, ctx: Ctx, perRoute: boolean): LocalRateLimitSettings | undefined {
  const r = rawLocalRateLimit(fields, path, ctx);
  if (r === undefined) return undefined;
  if (perRoute && r.token_bucket === undefined && (fields as Record<string, unknown>).token_bucket === undefined && (fields as Record<string, unknown>).tokenBucket === undefined) {
    fail(ctx, [...path, 'token_bucket'], 'is required in a per-route config (Envoy: "local rate limit token bucket must be set for per filter configs")');
    return undefined;
  }
  const seen = new Map<string, number>();
  (r.descriptors ?? []).forEach((d, i) => {
    const k = descriptorKey(d.entries);
    const first = seen.get(k);
    if (first !== undefined) fail(ctx, [...path, 'descriptors', i], `duplicates descriptor ${first} (${k}); Envoy refuses duplicate descriptors`);
    else seen.set(k, i);
  });
  if (r.stat_prefix === undefined) return undefined;
  return {
    statPrefix: r.stat_prefix,
    status: r.status?.code === undefined || r.status.code < 400 ? 429 : r.status.code,
    tokenBucket: r.token_bucket,
    filterEnabled: r.filter_enabled,
    filterEnforced: r.filter_enforced,
    requestHeadersToAddWhenNotEnforced: r.request_headers_to_add_when_not_enforced ?? [],
    responseHeadersToAdd: r.response_headers_to_add ?? [],
    descriptors: r.descriptors ?? [],
    stage: r.stage ?? 0,
    enableXRateLimitHeaders: r.enable_x_ratelimit_headers === 'DRAFT_VERSION_03',
    vhRateLimits: r.vh_rate_limits ?? 'OVERRIDE',
    alwaysConsumeDefaultTokenBucket: r.always_consume_default_token_bucket ?? true,
    rateLimitedAsResourceExhausted: r.rate_limited_as_resource_exhausted ?? false,
    rateLimits: r.rate_limits ?? [],
    maxDynamicDescriptors: r.max_dynamic_descriptors ?? 20,
    perDownstreamConnection: r.local_rate_limit_per_downstream_connection ?? false,
  };
}

/** Reads a `typed_config` (an `Any`) that must be a LocalRateLimit. */
export function readLocalRateLimitAny(v: unknown, path: FieldPath, ctx: Ctx, perRoute: boolean): LocalRateLimitSettings | undefined {
  const any = anyValue(v, path, ctx);
  if (any === undefined) return undefined;
  if (any.typeUrl !== LOCAL_RATE_LIMIT_URL) return fail(ctx, path, `must be a ${LOCAL_RATE_LIMIT_URL}, got ${any.typeUrl}`);
  return readLocalRateLimitFields(any.fields, any.path, ctx, perRoute);
}
