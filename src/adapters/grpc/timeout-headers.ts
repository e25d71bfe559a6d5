/**
 * The deadline headers an attempt of a gRPC call carries, as Envoy's router writes them
 * (`FilterUtility::setTimeoutHeaders`, source/common/router/router.cc): `grpc-timeout` (Istio sets
 * `max_grpc_timeout` on every route, pilot/pkg/networking/core/route/route.go `setTimeout`) and
 * `x-envoy-expected-rq-timeout-ms` (unless `suppress_envoy_headers`: Istio's
 * `proxyHeaders.envoyDebugHeaders` disabled), both the time the attempt may take.
 *
 * @module
 */
import type { Metadata } from '@grpc/grpc-js';
import { isWireMetadata, storeOf, type TimeoutHeaders } from './wire-metadata.ts';

/**
 * Sets `grpc-timeout` on an attempt's metadata, and `x-envoy-expected-rq-timeout-ms` (`expected`,
 * `''` for none) as Envoy's router sends both (setTimeoutHeaders): the values are the mesh's own
 * (grpcTimeout, expectedTimeout: always legal), so they are written beside the store
 * ({@link WireMetadata}) or into grpc-js's store directly when there is one, without set()'s name
 * and value checks.
 */
export function setGrpcTimeout(md: Metadata, value: string, expected = ''): void {
  if (isWireMetadata(md)) {
    if (expected === '') md.timeout = value;
    else {
      // Calls under one route timeout mostly send the same two values: they share one pair.
      if (value !== pair.grpc || expected !== pair.expected) pair = { grpc: value, expected };
      md.timeout = pair;
    }
    return;
  }
  const store = storeOf(md);
  if (store === undefined) {
    md.set('grpc-timeout', value);
    if (expected !== '') md.set(EXPECTED_TIMEOUT, expected);
    return;
  }
  // Calls under one route timeout mostly carry the same value: they share its (frozen) list.
  if (value !== timeoutValue) {
    timeoutValue = value;
    timeoutList = Object.freeze([value]) as string[];
  }
  store.set('grpc-timeout', timeoutList);
  if (expected === '') return;
  if (expected !== expectedValue) {
    expectedValue = expected;
    expectedList = Object.freeze([expected]) as string[];
  }
  store.set(EXPECTED_TIMEOUT, expectedList);
}

/** The header Envoy's router tells the upstream the time the call may still take in (ms). */
const EXPECTED_TIMEOUT = 'x-envoy-expected-rq-timeout-ms';

/** The last grpc-timeout value set, and the list every attempt's metadata with that value holds. */
let timeoutValue = '';
let timeoutList: string[] = [];
/** The last grpc-timeout and x-envoy-expected-rq-timeout-ms values set on an attempt's metadata. */
let pair: TimeoutHeaders = { grpc: '', expected: '' };
/** The same for x-envoy-expected-rq-timeout-ms. */
let expectedValue = '';
let expectedList: string[] = [];

/**
 * `x-envoy-expected-rq-timeout-ms` for `ms` milliseconds: whole milliseconds rounded up, as
 * {@link grpcTimeout} rounds them (Envoy writes its expected timeout, in ms, into both). The last
 * text is kept: calls under one route timeout mostly have the same number of ms left when sent.
 */
export function expectedTimeout(ms: number): string {
  const n = Math.ceil(ms);
  if (n !== lastExpectedMs) {
    lastExpectedMs = n;
    lastExpectedText = String(n);
  }
  return lastExpectedText;
}

let lastExpectedMs = -1;
let lastExpectedText = '';

/**
 * The longest `grpc-timeout` sent: 2147483 s, under 2^31-1 ms. A grpc-js server reads the header
 * into a 32-bit integer (`| 0`, server-interceptors.ts) and sets its deadline timer with it, so a
 * longer one — a deadline 25 to 49 days away — wrapped negative and ended the call after 1 ms
 * (`DEADLINE_EXCEEDED`), and a longer still one came days early. The mesh keeps the caller's full
 * deadline itself; the server is told a sooner one only past 24.8 days.
 */
const MAX_GRPC_TIMEOUT = '2147483S';
const MAX_GRPC_TIMEOUT_MS = 2_147_483_000;

/**
 * `grpc-timeout` for `ms` milliseconds, in the unit gRPC's HTTP/2 mapping allows (at most 8
 * digits), rounded up as grpc-js rounds its own; never more than {@link MAX_GRPC_TIMEOUT}.
 */
export function grpcTimeout(ms: number): string {
  if (ms > MAX_GRPC_TIMEOUT_MS) return MAX_GRPC_TIMEOUT;
  // Almost every deadline is under 27 hours: milliseconds. Calls under one route timeout mostly
  // have the same number of them left when sent: the last text is kept rather than made again.
  if (ms <= 99_999_999) {
    const n = Math.ceil(ms);
    if (n !== lastTimeoutMs) {
      lastTimeoutMs = n;
      lastTimeoutText = `${n}m`;
    }
    return lastTimeoutText;
  }
  // Over 8 digits of milliseconds and at most MAX_GRPC_TIMEOUT: seconds, 7 digits at most.
  return `${Math.ceil(ms / 1000)}S`;
}

/** The last grpc-timeout made in milliseconds (grpcTimeout), and its text. */
let lastTimeoutMs = -1;
let lastTimeoutText = '';

