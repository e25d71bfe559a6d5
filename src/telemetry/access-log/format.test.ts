import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InboundEndMessage } from '../../core/observe.ts';
import { type RequestRecord, serverRecord } from '../record.ts';
import { compileJsonFormat, compileTextFormat, FormatError, ISTIO_TEXT_FORMAT } from './format.ts';
import { checkTimeFormat, formatTime } from './time-format.ts';

const T0 = Date.UTC(2026, 11, 3, 4, 5, 6, 789);

const inbound: InboundEndMessage = {
  workload: { service: 'reviews', namespace: 'bookinfo', labels: { app: 'reviews' }, serviceAccount: 'reviews' },
  request: {},
  protocol: 'http1',
  method: 'GET',
  scheme: 'http',
  authority: 'reviews:9080',
  path: '/reviews/0?a=b',
  headers: { 'user-agent': 'curl/8.5.0', 'x-request-id': 'abc-123', 'x-forwarded-for': '10.1.1.1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
  status: 200,
  grpcStatus: -1,
  flags: '',
  details: 'via_upstream',
  deniedBy: undefined,
  requestBytes: 0,
  responseBytes: 295,
  durationMs: 12.7,
  mtls: false,
  peer: undefined,
  requestPrincipal: undefined,
  authzPolicy: undefined,
  remoteAddress: '10.0.0.5',
  remotePort: 40000,
  localAddress: '10.0.0.7',
  localPort: 9080,
  sni: undefined,
  responseHeaders: { 'x-envoy-upstream-service-time': '11', 'content-type': 'application/json' },
  error: undefined,
};

const rec: RequestRecord = serverRecord(inbound, { startTimeMs: T0 });

describe("Istio's default text format", () => {
  it('prints a served request as an Istio sidecar does (inbound)', () => {
    assert.equal(
      compileTextFormat('')(rec),
      '[2026-12-03T04:05:06.789Z] "GET /reviews/0?a=b HTTP/1.1" 200 - via_upstream - "-" 0 295 12 11 "10.1.1.1" "curl/8.5.0" "abc-123" "reviews:9080" "10.0.0.7:9080" inbound|9080|| - 10.0.0.7:9080 10.0.0.5:40000 - default\n',
    );
  });
  it('is the exact format string of pilot/pkg/model/telemetry_logging.go', () => {
    assert.ok(ISTIO_TEXT_FORMAT.startsWith('[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%"'));
    assert.ok(ISTIO_TEXT_FORMAT.endsWith('%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n'));
  });
  it('prints the original path when a rewrite kept it', () => {
    const r = serverRecord({ ...inbound, headers: { ...inbound.headers, 'x-envoy-original-path': '/old' } }, { startTimeMs: T0 });
    assert.match(compileTextFormat('')(r), /"GET \/old HTTP\/1\.1"/);
  });
});

describe('command operators', () => {
  const rows: [string, string][] = [
    ['%RESPONSE_CODE% %RESPONSE_FLAGS%', '200 -'],
    ['%REQ(USER-AGENT):4%', 'curl'],
    ['%REQ(X-MISSING?USER-AGENT)%', 'curl/8.5.0'],
    ['%REQ_WITHOUT_QUERY(:PATH)%', '/reviews/0'],
    ['%REQ(:AUTHORITY)% %REQ(HOST)% %REQ(:SCHEME)%', 'reviews:9080 reviews:9080 http'],
    ['%RESP(CONTENT-TYPE)%', 'application/json'],
    ['%START_TIME(%Y/%m/%d %H:%M:%S.%3f)%', '2026/12/03 04:05:06.789'],
    ['%START_TIME(%s)%', String(Math.floor(T0 / 1000))],
    ['%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%:%DOWNSTREAM_REMOTE_PORT% %DOWNSTREAM_LOCAL_PORT%', '10.0.0.5:40000 9080'],
    ['%UPSTREAM_REQUEST_ATTEMPT_COUNT%', '1'],
    ['%GRPC_STATUS% %GRPC_STATUS_NUMBER%', '- -'],
    ['%TRACE_ID%', '0af7651916cd43dd8448eb211c80319c'],
    ['%CEL(request.headers["user-agent"])% %CEL(response.code >= 400)% %CEL(nope.x)%', 'curl/8.5.0 false -'],
    ['%CEL(size(request.url_path)):1%', '1'],
    ['%DYNAMIC_METADATA(istio.mixer:status)% %UPSTREAM_LOCAL_ADDRESS%', '- -'],
    ['plain text, no operators', 'plain text, no operators'],
  ];
  for (const [format, want] of rows) it(format, () => assert.equal(compileTextFormat(format)(rec), `${want}\n`));

  it('omitEmptyValues prints nothing for a missing value', () => {
    assert.equal(compileTextFormat('[%REQ(X-NONE)%]', true)(rec), '[]\n');
  });

  const bad: [string, RegExp][] = [
    ['%NOPE%', /unknown command operator %NOPE% \(at position 0\)/],
    ['x %REQ%', /%REQ\(…\)% needs a header name \(at position 2\)/],
    ['%REQ(:PATH', /has no closing "\)%"/],
    ['100% done', /no valid command operator at position 3/],
    ['%RESPONSE_CODE', /not closed with "%"/],
    ['%START_TIME(%Q)%', /unsupported time specifier "%Q"/],
    ['%GRPC_STATUS(LOUD)%', /CAMEL_STRING, SNAKE_STRING or NUMBER/],
    ['%CEL(response.code >=)%', /invalid CEL expression "response.code >=": expected an expression/],
  ];
  for (const [format, why] of bad) {
    it(`refuses ${JSON.stringify(format)}`, () => assert.throws(() => compileTextFormat(format), (e: unknown) => e instanceof FormatError && why.test(e.message)));
  }
});

describe('gRPC status names', () => {
  const g = serverRecord({ ...inbound, protocol: 'grpc', grpcStatus: 5 }, { startTimeMs: T0 });
  it('CAMEL_STRING by default, SNAKE_STRING and NUMBER on request', () => {
    assert.equal(compileTextFormat('%GRPC_STATUS% %GRPC_STATUS(SNAKE_STRING)% %GRPC_STATUS(NUMBER)% %PROTOCOL%')(g), 'NotFound NOT_FOUND 5 HTTP/2\n');
  });
});

describe("Istio's default JSON format", () => {
  it('keeps types, null for missing values', () => {
    const o = compileJsonFormat(undefined)(rec);
    assert.deepEqual(o, {
      authority: 'reviews:9080',
      bytes_received: 0,
      bytes_sent: 295,
      connection_termination_details: null,
      downstream_local_address: '10.0.0.7:9080',
      downstream_remote_address: '10.0.0.5:40000',
      duration: 12,
      method: 'GET',
      path: '/reviews/0?a=b',
      protocol: 'HTTP/1.1',
      request_id: 'abc-123',
      requested_server_name: null,
      response_code: 200,
      response_code_details: 'via_upstream',
      response_flags: '-',
      route_name: 'default',
      start_time: '2026-12-03T04:05:06.789Z',
      upstream_cluster: 'inbound|9080||',
      upstream_host: '10.0.0.7:9080',
      upstream_local_address: null,
      upstream_service_time: '11',
      upstream_transport_failure_reason: null,
      user_agent: 'curl/8.5.0',
      x_forwarded_for: '10.1.1.1',
    });
  });
  it('custom labels: nested objects, literals, mixed strings; omitEmptyValues drops keys', () => {
    const f = compileJsonFormat({ code: '%RESPONSE_CODE%', line: '%REQ(:METHOD)% %REQ(X-NONE)%', req: { ua: '%REQ(USER-AGENT)%', none: '%REQ(X-NONE)%' }, fixed: 7, host: '%CEL(request.host)%' }, true);
    assert.deepEqual(f(rec), { code: 200, line: 'GET ', req: { ua: 'curl/8.5.0' }, fixed: 7, host: 'reviews:9080' });
  });
  it('names the label of a bad format', () => {
    assert.throws(() => compileJsonFormat({ a: { b: '%NOPE%' } }), /labels\.a\.b: unknown command operator %NOPE%/);
  });
});

describe('START_TIME formats', () => {
  const rows: [string, string][] = [
    ['%Y-%m-%dT%H:%M:%E3SZ', '2026-12-03T04:05:06.789Z'],
    ['%E6S|%ES|%9f|%f', '06.789000|06|789000000|789000000'],
    ['%a %b %e %j %y %T %F %D %z %Z %%', 'Thu Dec  3 337 26 04:05:06 2026-12-03 12/03/26 +0000 UTC %'],
  ];
  for (const [f, want] of rows) it(f, () => assert.equal(formatTime(T0, f), want));
  it('refuses specifiers it does not know', () => assert.match(checkTimeFormat('%Y %k') ?? '', /"%k" at 3/));
});
