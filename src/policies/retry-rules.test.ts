import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttemptOutcome, FailureKind } from '../core/outcome.ts';
import { compileRetry, type RetryPolicy } from '../routing/route-policy.ts';
import { type HeaderBag, isRetriable } from './retry-rules.ts';

const policy = (retryOn: string): RetryPolicy => compileRetry({ attempts: 2, retryOn });
const ISTIO_DEFAULT = compileRetry(undefined);

function resp(status: number, headers: Record<string, string | string[]> = {}, grpcStatus = -1): AttemptOutcome {
  return { status, grpcStatus, failure: undefined, requestSent: true, headers };
}
function fail(failure: FailureKind, requestSent = true, status = 0): AttemptOutcome {
  return { status, grpcStatus: -1, failure, requestSent, headers: undefined };
}

type Row = readonly [name: string, retryOn: string | RetryPolicy, outcome: AttemptOutcome, expected: boolean, requestHeaders?: HeaderBag];

function run(rows: readonly Row[]): void {
  for (const [name, on, outcome, expected, reqHeaders] of rows) {
    it(`${typeof on === 'string' ? on : 'Istio default'}: ${name} → ${expected ? 'retry' : 'no retry'}`, () => {
      const p = typeof on === 'string' ? policy(on) : on;
      assert.equal(isRetriable(p, outcome, reqHeaders ?? {}), expected);
    });
  }
}

describe('isRetriable: 5xx', () => {
  run([
    ['500', '5xx', resp(500), true],
    ['503', '5xx', resp(503), true],
    ['599', '5xx', resp(599), true],
    ['499', '5xx', resp(499), false],
    ['200', '5xx', resp(200), false],
    ['reset', '5xx', fail('reset'), true],
    ['connect failure', '5xx', fail('connect-failure', false), true],
    ['refused stream', '5xx', fail('refused-stream'), true],
    ['protocol error', '5xx', fail('protocol'), true],
    ['per-try timeout', '5xx', fail('per-try-timeout'), true],
    ['overflow', '5xx', fail('overflow', false), false],
    ['cancelled', '5xx', fail('cancelled'), false],
  ]);
});

describe('isRetriable: gateway-error', () => {
  run([
    ['502', 'gateway-error', resp(502), true],
    ['503', 'gateway-error', resp(503), true],
    ['504', 'gateway-error', resp(504), true],
    ['500', 'gateway-error', resp(500), false],
    ['501', 'gateway-error', resp(501), false],
    ['reset', 'gateway-error', fail('reset'), true],
    ['connect failure', 'gateway-error', fail('connect-failure', false), true],
    ['per-try timeout', 'gateway-error', fail('per-try-timeout'), true],
    ['overflow', 'gateway-error', fail('overflow'), false],
  ]);
});

describe('isRetriable: reset, reset-before-request, connect-failure, refused-stream', () => {
  run([
    ['reset', 'reset', fail('reset'), true],
    ['per-try timeout', 'reset', fail('per-try-timeout'), true],
    ['connect failure', 'reset', fail('connect-failure', false), true],
    ['503 response', 'reset', resp(503), false],
    ['overflow', 'reset', fail('overflow'), false],
    ['cancelled', 'reset', fail('cancelled'), false],

    ['reset before any byte was sent', 'reset-before-request', fail('reset', false), true],
    ['reset after the request was sent', 'reset-before-request', fail('reset', true), false],
    ['connect failure (nothing sent)', 'reset-before-request', fail('connect-failure', false), true],
    ['per-try timeout after sending', 'reset-before-request', fail('per-try-timeout', true), false],
    ['503 response', 'reset-before-request', resp(503), false],
    ['overflow (nothing sent)', 'reset-before-request', fail('overflow', false), false],

    ['connect failure', 'connect-failure', fail('connect-failure', false), true],
    ['reset', 'connect-failure', fail('reset'), false],
    ['per-try timeout', 'connect-failure', fail('per-try-timeout'), false],
    ['refused stream', 'connect-failure', fail('refused-stream'), false],
    ['503 response', 'connect-failure', resp(503), false],

    ['refused stream', 'refused-stream', fail('refused-stream'), true],
    ['reset', 'refused-stream', fail('reset'), false],
    ['per-try timeout', 'refused-stream', fail('per-try-timeout'), false],
    ['connect failure', 'refused-stream', fail('connect-failure', false), false],
  ]);
});

describe('isRetriable: retriable-4xx, retriable-status-codes, retriable-headers', () => {
  const codesHeader = (v: string | string[]): HeaderBag => ({ 'x-envoy-retriable-status-codes': v });
  const namesHeader: HeaderBag = { 'x-envoy-retriable-header-names': 'X-Retry-Me, x-other' };
  run([
    ['409', 'retriable-4xx', resp(409), true],
    ['408', 'retriable-4xx', resp(408), false],
    ['429', 'retriable-4xx', resp(429), false],
    ['503', 'retriable-4xx', resp(503), false],

    ['503 listed in retryOn', '503', resp(503), true],
    ['502 not listed', '503', resp(502), false],
    ['a reset that becomes a 503 does not match "503"', '503', fail('reset', true, 503), false],
    ['a connect failure does not match "503"', '503', fail('connect-failure', false, 503), false],
    ['429 from the request header', 'retriable-status-codes', resp(429), true, codesHeader('429')],
    ['header list with spaces', 'retriable-status-codes', resp(429), true, codesHeader(' 418 , 429 ')],
    ['header list skips junk tokens', 'retriable-status-codes', resp(429), true, codesHeader('abc,4 29,429')],
    ['4290 is not 429', 'retriable-status-codes', resp(429), false, codesHeader('4290,42')],
    ['"4 29" is not 429', 'retriable-status-codes', resp(429), false, codesHeader('4 29')],
    ['repeated header', 'retriable-status-codes', resp(429), true, codesHeader(['500', '429'])],
    ['header codes need the token', '5xx', resp(429), false, codesHeader('429')],
    ['no codes at all', 'retriable-status-codes', resp(503), false],

    ['response carries a named header', 'retriable-headers', resp(200, { 'x-retry-me': '1' }), true, namesHeader],
    ['second named header', 'retriable-headers', resp(200, { 'x-other': '' }), true, namesHeader],
    ['named header absent', 'retriable-headers', resp(500, { 'x-unrelated': '1' }), false, namesHeader],
    ['no names sent', 'retriable-headers', resp(200, { 'x-retry-me': '1' }), false],
    ['names need the token', '5xx', resp(200, { 'x-retry-me': '1' }), false, namesHeader],
  ]);
});

describe('isRetriable: envoy-ratelimited', () => {
  const limited = { 'x-envoy-ratelimited': 'true' };
  run([
    ['429 with x-envoy-ratelimited', 'envoy-ratelimited', resp(429, limited), true],
    ['429 without it', 'envoy-ratelimited', resp(429), false],
    // Envoy's wouldRetryFromHeaders checks the header's presence first, whatever its value and the status.
    ['header value other than "true": present all the same', 'envoy-ratelimited', resp(429, { 'x-envoy-ratelimited': 'yes' }), true],
    ['rate-limited 429 is not retried by 5xx alone', '5xx', resp(429, limited), false],
    ['a rate-limited 503 is not retried by 5xx without envoy-ratelimited', '5xx', resp(503, limited), false],
    ['a rate-limited 503 is retried under envoy-ratelimited alone', 'envoy-ratelimited', resp(503, limited), true],
    ['with envoy-ratelimited too, a plain 503 is still retried by 5xx', '5xx,envoy-ratelimited', resp(503), true],
    ['with 5xx too, a reset still is', '5xx,envoy-ratelimited', fail('reset'), true],
  ]);
});

describe('isRetriable: gRPC tokens read grpc-status from the response headers', () => {
  const grpc = (code: number) => resp(200, { 'grpc-status': String(code) }, code);
  run([
    ['cancelled (1)', 'cancelled', grpc(1), true],
    ['deadline-exceeded (4)', 'deadline-exceeded', grpc(4), true],
    ['resource-exhausted (8)', 'resource-exhausted', grpc(8), true],
    ['internal (13)', 'internal', grpc(13), true],
    ['unavailable (14)', 'unavailable', grpc(14), true],
    ['unavailable token, internal (13)', 'unavailable', grpc(13), false],
    ['internal token, unavailable (14)', 'internal', grpc(14), false],
    ['cancelled token, deadline (4)', 'cancelled', grpc(4), false],
    ['OK (0)', 'cancelled,deadline-exceeded,internal,resource-exhausted,unavailable', grpc(0), false],
    ['no grpc-status', 'unavailable', resp(200), false],
    ['gRPC tokens do not retry resets', 'unavailable', fail('reset'), false],
  ]);
});

describe('isRetriable: http3-post-connect-failure never applies here', () => {
  run([
    ['reset', 'http3-post-connect-failure', fail('reset'), false],
    ['503', 'http3-post-connect-failure', resp(503), false],
  ]);
});

describe('isRetriable: Istio default policy (connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes)', () => {
  run([
    ['connect failure', ISTIO_DEFAULT, fail('connect-failure', false), true],
    ['refused stream', ISTIO_DEFAULT, fail('refused-stream'), true],
    ['per-try timeout is not retried', ISTIO_DEFAULT, fail('per-try-timeout'), false],
    ['reset', ISTIO_DEFAULT, fail('reset'), false],
    ['503 (no default codes since 1.24)', ISTIO_DEFAULT, resp(503), false],
    ['503 named by x-envoy-retriable-status-codes', ISTIO_DEFAULT, resp(503), true, { 'x-envoy-retriable-status-codes': '503' }],
    ['gRPC unavailable', ISTIO_DEFAULT, resp(200, {}, 14), true],
    ['gRPC cancelled', ISTIO_DEFAULT, resp(200, {}, 1), true],
    ['gRPC deadline-exceeded', ISTIO_DEFAULT, resp(200, {}, 4), false],
  ]);
});

describe('isRetriable: never', () => {
  const every =
    '5xx,gateway-error,reset,reset-before-request,connect-failure,retriable-4xx,refused-stream,retriable-status-codes,' +
    'retriable-headers,http3-post-connect-failure,cancelled,deadline-exceeded,internal,resource-exhausted,unavailable,500,503';
  it('retries overflow or cancellation, whatever the policy', () => {
    for (const f of ['overflow', 'cancelled'] as const) {
      for (const sent of [true, false]) {
        assert.equal(isRetriable(policy(every), fail(f, sent, 503), {}), false, `${f} sent=${sent}`);
      }
    }
  });
  it('retries an attempt with neither a response nor a failure', () => {
    assert.equal(isRetriable(policy(every), resp(0), {}), false);
  });
  it('retries a success under every token', () => {
    assert.equal(isRetriable(policy(every), resp(200), {}), false);
  });
});
