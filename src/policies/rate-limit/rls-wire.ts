/**
 * The wire format of Envoy's rate limit service API (`envoy.service.ratelimit.v3`,
 * `api/envoy/service/ratelimit/v3/rls.proto` and `extensions/common/ratelimit/v3/ratelimit.proto`):
 * the `RateLimitRequest` meshlet sends (`domain` 1, `descriptors` 2 — each `entries` 1 of `key` 1 /
 * `value` 2, and `hits_addend` 3, a UInt64Value —, the request's `hits_addend` 3) and the `RateLimitResponse` it reads (`overall_code` 1, `statuses`
 * 2, `response_headers_to_add` 3, `request_headers_to_add` 4, `raw_body` 5). Written with
 * core/protobuf.ts, as the ext-authz wire is, so a mesh needs no `.proto` files at run time.
 *
 * @module
 */
import { ProtoReader, ProtoWriter } from '../../core/protobuf.ts';
import type { Descriptor } from './local-rate-limiter.ts';

/** `RateLimitResponse.Code`. */
export const RLS_CODE = Object.freeze({ UNKNOWN: 0, OK: 1, OVER_LIMIT: 2 });

/** A `DescriptorStatus`, as the `x-ratelimit-*` headers read it. */
export interface DescriptorStatus {
  readonly code: number;
  /** `current_limit`, when the service sent one. */
  readonly limit: { readonly name: string; readonly requestsPerUnit: number; readonly unit: number } | undefined;
  readonly remaining: number;
  /** `duration_until_reset`, whole seconds. */
  readonly resetSeconds: number;
}

/** A `config.core.v3.HeaderValue`. */
export interface HeaderValue {
  readonly key: string;
  readonly value: string;
}

/** A `RateLimitResponse`, as read. */
export interface RateLimitResponse {
  readonly overallCode: number;
  readonly statuses: readonly DescriptorStatus[];
  readonly responseHeadersToAdd: readonly HeaderValue[];
  readonly requestHeadersToAdd: readonly HeaderValue[];
  readonly rawBody: string;
}

/** Serializes an `envoy.service.ratelimit.v3.RateLimitRequest`. `hitsAddend` 0 (unset): one hit. */
export function encodeRateLimitRequest(domain: string, descriptors: readonly Descriptor[], hitsAddend = 0): Buffer {
  const w = new ProtoWriter();
  w.string(1, domain);
  for (const d of descriptors) {
    const dw = new ProtoWriter();
    for (const e of d) {
      const ew = new ProtoWriter();
      ew.string(1, e.key);
      ew.string(2, e.value);
      dw.message(1, ew);
    }
    // RateLimitDescriptor.hits_addend = 3, a google.protobuf.UInt64Value (its value = 1).
    if (d.hitsAddend !== undefined) {
      const hw = new ProtoWriter();
      hw.uint(1, d.hitsAddend);
      dw.message(3, hw);
    }
    w.message(2, dw);
  }
  w.uint(3, hitsAddend);
  return w.finish();
}

function headerValue(r: ProtoReader): HeaderValue {
  let key = '';
  let value = '';
  let raw: string | undefined;
  r.fields((f, w) => {
    if (w !== 2) return false;
    if (f === 1) key = r.string();
    else if (f === 2) value = r.string();
    else if (f === 3) raw = r.string();
    else return false;
    return true;
  });
  return { key: key.toLowerCase(), value: value === '' && raw !== undefined ? raw : value };
}

function descriptorStatus(r: ProtoReader): DescriptorStatus {
  let code = 0;
  let limit: DescriptorStatus['limit'];
  let remaining = 0;
  let resetSeconds = 0;
  r.fields((f, w) => {
    if (f === 1 && w === 0) code = r.int32();
    else if (f === 3 && w === 0) remaining = r.varint();
    else if (f === 2 && w === 2) {
      const l = r.sub();
      let name = '';
      let requestsPerUnit = 0;
      let unit = 0;
      l.fields((lf, lw) => {
        if (lf === 3 && lw === 2) name = l.string();
        else if (lf === 1 && lw === 0) requestsPerUnit = l.varint();
        else if (lf === 2 && lw === 0) unit = l.int32();
        else return false;
        return true;
      });
      limit = { name, requestsPerUnit, unit };
    } else if (f === 4 && w === 2) {
      const d = r.sub();
      d.fields((df, dw) => {
        if (df !== 1 || dw !== 0) return false;
        resetSeconds = d.varint();
        return true;
      });
    } else return false;
    return true;
  });
  return { code, limit, remaining, resetSeconds };
}

/** Reads an `envoy.service.ratelimit.v3.RateLimitResponse`; throws a RangeError on malformed bytes. */
export function decodeRateLimitResponse(b: Buffer): RateLimitResponse {
  const r = new ProtoReader(b);
  let overallCode = 0;
  let rawBody = '';
  const statuses: DescriptorStatus[] = [];
  const responseHeadersToAdd: HeaderValue[] = [];
  const requestHeadersToAdd: HeaderValue[] = [];
  r.fields((f, w) => {
    if (f === 1 && w === 0) overallCode = r.int32();
    else if (w !== 2) return false;
    else if (f === 2) statuses.push(descriptorStatus(r.sub()));
    else if (f === 3) responseHeadersToAdd.push(headerValue(r.sub()));
    else if (f === 4) requestHeadersToAdd.push(headerValue(r.sub()));
    else if (f === 5) rawBody = r.string();
    else return false;
    return true;
  });
  return { overallCode, statuses, responseHeadersToAdd, requestHeadersToAdd, rawBody };
}

/** Seconds of a `RateLimit.Unit` (UNKNOWN, and units Envoy's header does not name: 0). */
const UNIT_SECONDS = [0, 1, 60, 3600, 86400];

/**
 * Envoy's `x-ratelimit-*` headers (`XRateLimitHeaderUtils::create`, DRAFT_VERSION_03): of the
 * statuses with a limit, the one with the fewest remaining gives `-limit` (followed by each
 * limit's `, <n>;w=<window>[;name="<name>"]`), `-remaining` and `-reset`.
 */
export function xRateLimitHeaders(statuses: readonly DescriptorStatus[]): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  let min: DescriptorStatus | undefined;
  let policy = '';
  for (const s of statuses) {
    if (s.limit === undefined) continue;
    if (min === undefined || s.remaining < min.remaining) min = s;
    const window = UNIT_SECONDS[s.limit.unit] ?? 0;
    if (window > 0) policy += `, ${s.limit.requestsPerUnit};w=${window}${s.limit.name === '' ? '' : `;name="${s.limit.name}"`}`;
  }
  if (min?.limit === undefined) return out;
  out['x-ratelimit-limit'] = `${min.limit.requestsPerUnit}${policy}`;
  out['x-ratelimit-remaining'] = String(min.remaining);
  out['x-ratelimit-reset'] = String(min.resetSeconds);
  return out;
}
