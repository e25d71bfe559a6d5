/**
 * `envoyHttpAls` access logs end to end: a mesh under real traffic (mesh.fetch to an HTTP
 * upstream, a gRPC call through mesh.grpc, requests to a mesh.createServer server) streams
 * `HTTPAccessLogEntry` messages to a real grpc-js AccessLogService on 127.0.0.1, decoded with
 * proto-loader from Envoy's field numbers (test/fixtures/als/als.proto). Each entry's fields are
 * checked against the JSON file log the same mesh writes for the same request.
 *
 * Istio's check this follows: pilot/pkg/model/telemetry_logging_test.go (an envoyHttpAls provider
 * becomes Envoy's HttpGrpcAccessLogConfig: log name `http_envoy_accesslog`, filter state
 * `upstream_peer`/`downstream_peer`, the additional headers); Envoy's
 * test/extensions/access_loggers/grpc/http_grpc_access_log_impl_test.cc (the entry's fields).
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { capture, T0, telemetry, until } from '../helpers/access-log.ts';
import { ALS_HOST, type AlsCollector, alsServiceEntry, type DecodedEntry, startAlsCollector, structValues } from '../helpers/als-collector.ts';
import { type Echo, EchoClient, type GrpcUpstream, grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { startMeshGrpcServer } from '../helpers/grpc-server.ts';
import { localServiceEntry, RATINGS } from '../helpers/otel-collector.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

const ECHO = 'echo.default.svc.cluster.local';

/** The JSON file log the entries are compared with (one operator per key: typed values). */
const JSON_LABELS = {
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  authority: '%REQ(:AUTHORITY)%',
  code: '%RESPONSE_CODE%',
  details: '%RESPONSE_CODE_DETAILS%',
  flags: '%RESPONSE_FLAGS%',
  received: '%BYTES_RECEIVED%',
  sent: '%BYTES_SENT%',
  duration: '%DURATION%',
  upstream_host: '%UPSTREAM_HOST%',
  cluster: '%UPSTREAM_CLUSTER_RAW%',
  route: '%ROUTE_NAME%',
  request_id: '%REQ(X-REQUEST-ID)%',
  user_agent: '%REQ(USER-AGENT)%',
  remote: '%DOWNSTREAM_REMOTE_ADDRESS%',
  local: '%DOWNSTREAM_LOCAL_ADDRESS%',
  start: '%START_TIME%',
  protocol: '%PROTOCOL%',
  attempts: '%UPSTREAM_REQUEST_ATTEMPT_COUNT%',
  stream_id: '%STREAM_ID%',
  log_type: '%ACCESS_LOG_TYPE%',
};

/** `/abort` is answered by a fault (flag FI, no upstream); the rest goes to ratings. */
const ratingsFaults = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name: 'ratings', namespace: 'default' },
  spec: {
    hosts: [RATINGS],
    http: [
      { name: 'abort', match: [{ uri: { prefix: '/abort' } }], route: [{ destination: { host: RATINGS } }], fault: { abort: { httpStatus: 503, percentage: { value: 100 } } } },
      { name: 'ok', route: [{ destination: { host: RATINGS } }] },
    ],
  },
};

interface Setup {
  mesh: Mesh;
  clock: ManualClock;
  log: ReturnType<typeof capture>;
}

/** Envoy's short codes of the ResponseFlags fields. */
const FLAGS: Record<string, string> = { no_healthy_upstream: 'UH', upstream_connection_failure: 'UF', upstream_retry_limit_exceeded: 'URX', fault_injected: 'FI', no_route_found: 'NR', downstream_connection_termination: 'DC' };

const addr = (a: { socket_address: { address: string; port_value: number } | null } | null): string | undefined => (a?.socket_address === null || a === null ? undefined : `${a.socket_address.address}:${a.socket_address.port_value}`);
const ms = (d: { seconds: string; nanos: number } | null): number => (d === null ? Number.NaN : Number(d.seconds) * 1000 + d.nanos / 1e6);

/**
 * What the JSON log says, as an entry says it: Envoy's entry names the cluster of the upstream host
 * it picked (`upstream_cluster` is empty when there was none), where `%UPSTREAM_CLUSTER_RAW%`
 * names the route's cluster.
 */
const expected = (json: unknown[]): unknown[] => (json as Record<string, unknown>[]).map((j) => ({ ...j, cluster: j['upstream_host'] === null ? null : j['cluster'] }));

/** The entry's fields as the JSON log names them. */
function asJson(e: DecodedEntry): Record<string, unknown> {
  const c = e.common_properties;
  return {
    method: e.request.request_method,
    path: e.request.original_path !== '' ? e.request.original_path : e.request.path,
    authority: e.request.authority,
    code: e.response.response_code?.value ?? 0,
    details: e.response.response_code_details,
    flags:
      Object.entries(c.response_flags ?? {})
        .filter(([, v]) => v === true)
        .map(([k]) => FLAGS[k] ?? k)
        .join(',') || '-',
    received: Number(e.request.request_body_bytes),
    sent: Number(e.response.response_body_bytes),
    duration: Math.floor(ms(c.duration)),
    upstream_host: addr(c.upstream_remote_address) ?? null,
    cluster: c.upstream_cluster === '' ? null : c.upstream_cluster,
    route: c.route_name,
    request_id: e.request.request_id === '' ? null : e.request.request_id,
    user_agent: e.request.user_agent === '' ? null : e.request.user_agent,
    remote: addr(c.downstream_remote_address) ?? null,
    local: addr(c.downstream_local_address) ?? null,
    start: new Date(ms(c.start_time)).toISOString(),
    protocol: e.protocol_version === 'HTTP11' ? 'HTTP/1.1' : 'HTTP/2',
    // A uint32: 0 and unset are one value on the wire (Envoy leaves it unset when no attempt was made).
    attempts: c.upstream_request_attempt_count,
    // Envoy's extractCommonAccessLogProperties: the stream id provider's id (the request id), and when the log was made.
    stream_id: c.stream_id === '' ? null : c.stream_id,
    log_type: c.access_log_type,
  };
}

describe('envoyHttpAls: HTTPAccessLogEntry messages streamed to an AccessLogService', () => {
  let als: AlsCollector;
  let ratings: Upstream;
  let echo: GrpcUpstream;
  before(async () => {
    als = await startAlsCollector();
    ratings = await startUpstream('ratings', (req, res) => {
      res.setHeader('x-answer', 'yes');
      res.statusCode = req.url?.startsWith('/fail') ? 503 : 200;
      res.end('ratings');
    });
    echo = await startGrpcUpstream('echo');
  });
  after(async () => {
    als.close();
    await ratings.close();
    await echo.close();
  });

  async function setup(provider: Record<string, unknown> = {}, spec: Record<string, unknown> = { accessLogging: [{ providers: [{ name: 'als' }, { name: 'json' }] }] }): Promise<Setup> {
    const clock = new ManualClock(T0);
    const log = capture();
    const mesh = await createMesh({
      service: 'reviews',
      namespace: 'default',
      labels: { app: 'reviews', version: 'v1' },
      clock,
      logger: log.logger,
      extensionProviders: [
        { name: 'als', envoyHttpAls: { service: ALS_HOST, port: 15000, ...provider } },
        { name: 'json', envoyFileAccessLog: { path: '/dev/stdout', logFormat: { labels: JSON_LABELS } } },
      ],
      config: [alsServiceEntry(als.port), localServiceEntry('ratings', 'default', RATINGS, 9080, 'HTTP', ratings.port), grpcServiceEntry('echo', ECHO, 9090, [{ port: echo.port }]), ratingsFaults, telemetry('logs', spec)] as never,
    });
    return { mesh, clock, log };
  }

  /** Moves the clock past the flush interval and waits for `n` entries at the service. */
  async function flushed(s: Setup, n: number): Promise<DecodedEntry[]> {
    s.clock.advance(1000);
    await until(() => als.entries().length >= n, `${n} entries at the log service`);
    return als.entries();
  }

  test('HTTP calls (client side): the identifier first, then entries whose fields are the JSON log’s', async () => {
    als.streams.length = 0;
    const s = await setup({ additionalRequestHeadersToLog: ['X-Custom', 'x-absent'], additionalResponseHeadersToLog: ['x-answer'] });
    try {
      for (const [path, headers] of [
        ['/ok?q=1', { 'x-request-id': 'rid-1', 'user-agent': 'ua/1', 'x-custom': 'c1', referer: 'http://ref/' }],
        ['/fail', { 'x-request-id': 'rid-2', 'x-forwarded-for': '10.9.9.9' }],
        ['/abort', { 'x-request-id': 'rid-3' }],
      ] as const) {
        const r = await s.mesh.fetch(`http://${RATINGS}:9080${path}`, { method: path === '/fail' ? 'POST' : 'GET', headers, body: path === '/fail' ? 'abc' : undefined });
        await r.text();
      }
      const entries = await flushed(s, 3);
      assert.equal(als.streams.length, 1, 'one stream');
      const first = als.streams[0]?.[0];
      assert.equal(first?.identifier?.log_name, 'http_envoy_accesslog');
      assert.equal(first?.identifier?.node.id, 'sidecar~127.0.0.1~reviews.default~default.svc.cluster.local');
      assert.equal(first?.identifier?.node.cluster, 'reviews.default');
      const md = structValues(first?.identifier?.node.metadata);
      assert.equal(md['NAMESPACE'], 'default');
      assert.deepEqual(md['LABELS'], { app: 'reviews', version: 'v1' });
      assert.equal(first?.log_entries, 'http_logs');
      const json = s.log.entries as Record<string, unknown>[];
      assert.equal(json.length, 3);
      assert.deepEqual(entries.map(asJson), expected(json));
      const [ok, fail, abort] = entries as [DecodedEntry, DecodedEntry, DecodedEntry];
      assert.deepEqual(abort.common_properties.response_flags?.['fault_injected'], true);
      assert.equal(abort.common_properties.upstream_remote_address, null, 'no upstream host');
      assert.equal(abort.common_properties.upstream_cluster, '', 'Envoy names the cluster of the host it picked: none');
      assert.equal(abort.response.response_code_details, 'fault_filter_abort');
      assert.equal(ok.request.path, '/ok?q=1');
      assert.equal(ok.request.scheme, 'http');
      assert.equal(ok.request.referer, 'http://ref/');
      assert.deepEqual(ok.request.request_headers, { 'x-custom': 'c1' }, 'the headers asked for, as they were sent');
      assert.equal(ok.common_properties.start_time?.seconds, String(T0 / 1000));
      assert.equal(fail.request.request_method, 'POST');
      assert.equal(fail.request.forwarded_for, '10.9.9.9');
      assert.equal(fail.request.request_body_bytes, '3');
      assert.equal(fail.response.response_code?.value, 503);
      assert.equal(fail.response.response_code_details, 'via_upstream');
      assert.equal(fail.common_properties.upstream_cluster, `outbound|9080||${RATINGS}`);
      assert.ok(Number(ok.request.request_headers_bytes) > 0);
      // The stream's later messages carry no identifier.
      const r = await s.mesh.fetch(`http://${RATINGS}:9080/third`);
      await r.text();
      await flushed(s, 4);
      assert.equal(als.streams.length, 1);
      assert.equal(als.streams[0]?.[1]?.identifier, null);
      assert.deepEqual(s.log.warnings, []);
      await until(() => s.mesh.diagnostics().otelAccessLogs?.['als']?.written === 4, 'four entries written');
      // The stream itself (the mesh's own call) made no entry.
      s.clock.advance(1000);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(als.entries().length, 4);
    } finally {
      await s.mesh.close();
    }
  });

  test('a gRPC call (client side), requests the mesh server answers and a gRPC call its grpc-js server answers (server side)', async () => {
    als.streams.length = 0;
    const s = await setup({ additionalResponseTrailersToLog: ['grpc-status'] });
    const server = s.mesh.createServer((_req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end('served');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = s.mesh.grpc.client(EchoClient, `${ECHO}:9090`) as unknown as Echo;
    const grpcServer = await startMeshGrpcServer(s.mesh);
    const plain = new EchoClient(`127.0.0.1:${grpcServer.port}`, grpc.credentials.createInsecure()) as unknown as Echo;
    try {
      assert.equal((await unary(client, { text: 'hi' })).error, undefined);
      const port = (server.address() as AddressInfo).port;
      await (await fetch(`http://127.0.0.1:${port}/in?x=1`, { headers: { 'x-request-id': 'rid-in', 'user-agent': 'curl/8' } })).text();
      assert.equal((await unary(plain, { text: 'in' })).error, undefined);
      const entries = await flushed(s, 3);
      assert.deepEqual(entries.map(asJson), expected(s.log.entries));
      const g = entries.find((e) => e.request.path === '/meshlet.test.Echo/Unary') as DecodedEntry;
      assert.equal(g.protocol_version, 'HTTP2');
      assert.equal(g.request.request_method, 'POST');
      assert.deepEqual(g.response.response_trailers, { 'grpc-status': '0' });
      assert.equal(g.common_properties.upstream_cluster, `outbound|9090||${ECHO}`);
      const inbound = entries.find((e) => e.request.path === '/in?x=1') as DecodedEntry;
      assert.equal(inbound.common_properties.upstream_cluster, `inbound|${port}||`);
      assert.equal(addr(inbound.common_properties.downstream_local_address), `127.0.0.1:${port}`);
      assert.equal(addr(inbound.common_properties.downstream_direct_remote_address), addr(inbound.common_properties.downstream_remote_address));
      assert.equal(inbound.request.request_id, 'rid-in');
      assert.equal(inbound.request.user_agent, 'curl/8');
      const served = entries.find((e) => e.common_properties.upstream_cluster === `inbound|${grpcServer.port}||`) as DecodedEntry;
      assert.equal(served.request.path, '/meshlet.test.Echo/Unary');
      assert.equal(served.protocol_version, 'HTTP2');
      assert.deepEqual(served.response.response_trailers, { 'grpc-status': '0' });
    } finally {
      plain.close();
      await grpcServer.close();
      client.close();
      server.close();
      await s.mesh.close();
    }
  });

  test('a filter expression and match mode apply; logName is the identifier’s; the stream ends with the mesh, its last batch sent', async () => {
    als.streams.length = 0;
    const s = await setup({ logName: 'audit' }, { accessLogging: [{ match: { mode: 'CLIENT' }, providers: [{ name: 'als' }], filter: { expression: 'response.code >= 500' } }] });
    try {
      for (const p of ['/ok', '/fail', '/fail2']) await (await s.mesh.fetch(`http://${RATINGS}:9080${p}`)).text();
      await s.mesh.close();
      // No flush interval passed: close sent the batch, and the service answered the half-closed stream.
      assert.deepEqual(
        als.entries().map((e) => e.request.path),
        ['/fail', '/fail2'],
      );
      assert.equal(als.streams[0]?.[0]?.identifier?.log_name, 'audit');
      assert.deepEqual(s.mesh.diagnostics().otelAccessLogs, { als: { written: 2, dropped: 0 } });
    } finally {
      await s.mesh.close();
    }
  });

  /** Advances the mesh clock a second at a time until `cond` holds (the streamer's backoff and grpc-js's own reconnect backoff, in real time, both pass). */
  async function advanceUntil(s: Setup, cond: () => boolean, what: string): Promise<void> {
    await until(
      async () => {
        s.clock.advance(1000);
        await new Promise((r) => setTimeout(r, 20));
        return cond();
      },
      what,
      30_000,
    );
  }

  test('the service down, then back: requests unaffected; the stream is opened again after a backoff, with the identifier', async () => {
    als.streams.length = 0;
    als.stop();
    const s = await setup({}, { accessLogging: [{ match: { mode: 'CLIENT' }, providers: [{ name: 'als' }] }] });
    try {
      assert.equal((await s.mesh.fetch(`http://${RATINGS}:9080/while-down-1`)).status, 200);
      s.clock.advance(1000);
      await until(() => s.log.warnings.length > 0, 'a warning that the stream failed');
      assert.match(s.log.warnings[0] ?? '', /^meshlet: access log "als": the stream to als\.observability\.svc\.cluster\.local:15000 failed: .*Connection refused; opened again in 1000ms/);
      assert.equal((await s.mesh.fetch(`http://${RATINGS}:9080/while-down-2`)).status, 200);
      await als.restart();
      // What was handed to a stream that then failed is lost (the service acknowledges nothing; grpc-js
      // may still be in its own reconnect backoff, in real time): requests go on until entries arrive.
      let n = 0;
      await until(
        async () => {
          assert.equal((await s.mesh.fetch(`http://${RATINGS}:9080/back-${n++}`)).status, 200);
          s.clock.advance(1000);
          await new Promise((r) => setTimeout(r, 20));
          return als.entries().some((e) => e.request.path.startsWith('/back-'));
        },
        'entries at the service, back',
        30_000,
      );
      assert.equal(als.streams.at(-1)?.[0]?.identifier?.log_name, 'http_envoy_accesslog', 'the new stream starts with the identifier');
    } finally {
      await s.mesh.close();
    }
  });

  test('the service refuses streams, then takes them; a stream broken mid-way (a restart) is opened again, identified again', async () => {
    als.streams.length = 0;
    als.mode = 'fail';
    const s = await setup({}, { accessLogging: [{ match: { mode: 'CLIENT' }, providers: [{ name: 'als' }] }] });
    try {
      assert.equal((await s.mesh.fetch(`http://${RATINGS}:9080/refused`)).status, 200);
      s.clock.advance(1000);
      await until(() => s.log.warnings.length > 0, 'a warning that the stream failed');
      assert.match(s.log.warnings[0] ?? '', /the stream to .* failed: 14 UNAVAILABLE: log service refuses; opened again in 1000ms/);
      als.mode = 'ok';
      assert.equal((await s.mesh.fetch(`http://${RATINGS}:9080/accepted`)).status, 200);
      await advanceUntil(s, () => als.entries().length === 1, 'the entry once the service takes streams');
      assert.equal(als.entries()[0]?.request.path, '/accepted', 'the entry of the refused stream is lost');
      assert.equal(als.streams.length, 1);
      als.breakStreams();
      assert.equal((await s.mesh.fetch(`http://${RATINGS}:9080/after-break`)).status, 200);
      await advanceUntil(s, () => als.entries().length === 2, 'the entry after the break');
      assert.equal(als.streams.length, 2);
      assert.equal(als.streams[1]?.[0]?.identifier?.log_name, 'http_envoy_accesslog');
      assert.equal(als.entries()[1]?.request.path, '/after-break');
    } finally {
      als.mode = 'ok';
      await s.mesh.close();
    }
  });

  test('a slow service (it stops reading): the stream stops taking batches once HTTP/2 flow control holds them; entries are dropped, not held', async () => {
    als.streams.length = 0;
    als.mode = 'slow';
    const s = await setup({ additionalRequestHeadersToLog: ['x-pad'] }, { accessLogging: [{ match: { mode: 'CLIENT' }, providers: [{ name: 'als' }] }] });
    try {
      const pad = 'p'.repeat(4096);
      for (let i = 0; i < 400; i++) {
        assert.equal((await s.mesh.fetch(`http://${RATINGS}:9080/slow-${i}`, { headers: { 'x-pad': pad } })).status, 200);
        if (i % 10 === 9) {
          s.clock.advance(1000);
          await new Promise((r) => setImmediate(r));
        }
      }
      const stats = s.mesh.diagnostics().otelAccessLogs?.['als'];
      assert.ok((stats?.dropped ?? 0) > 0 && (stats?.written ?? 0) > 0, `entries written, then dropped: ${JSON.stringify(stats)}`);
      assert.equal(als.streams.length, 1, 'one stream, never failed');
      assert.deepEqual(s.log.warnings, []);
    } finally {
      als.mode = 'ok';
      // The service never reads to the end of the stream: close would wait closeTimeoutMs on the mesh's clock.
      als.breakStreams();
      await s.mesh.close();
    }
  });

  test('entries beyond the 16 KiB batch while the stream cannot take them are dropped and counted (meshlet_access_log_dropped_total{reason="buffer-full"})', async () => {
    als.streams.length = 0;
    als.mode = 'fail';
    const s = await setup({ additionalRequestHeadersToLog: ['x-pad'] }, { accessLogging: [{ match: { mode: 'CLIENT' }, providers: [{ name: 'als' }] }] });
    try {
      s.clock.advance(1000);
      assert.equal((await s.mesh.fetch(`http://${RATINGS}:9080/first`)).status, 200);
      s.clock.advance(1000);
      await until(() => s.log.warnings.length > 0, 'the stream failed');
      // In the backoff: 1 KiB entries fill the batch; the rest are dropped, the requests unaffected.
      const pad = 'p'.repeat(1024);
      for (let i = 0; i < 20; i++) assert.equal((await s.mesh.fetch(`http://${RATINGS}:9080/pad-${i}`, { headers: { 'x-pad': pad } })).status, 200);
      const stats = s.mesh.diagnostics().otelAccessLogs?.['als'];
      assert.ok((stats?.dropped ?? 0) >= 4, `entries dropped: ${JSON.stringify(stats)}`);
    } finally {
      als.mode = 'ok';
      await s.mesh.close();
    }
  });
});

test('createMesh refuses an envoyHttpAls or envoyTcpAls provider Istio would refuse, naming the provider and the field', async () => {
  await assert.rejects(
    createMesh({ service: 'reviews', config: [], extensionProviders: [{ name: 'als', envoyHttpAls: { service: ALS_HOST, port: 0, additionalRequestHeadersToLog: ['bad header'] } }] }),
    { message: 'createMesh: extensionProviders[0] (als).envoyHttpAls: port must be in the range [1, 65535], found: 0; additionalRequestHeadersToLog[0]: "bad header" is not a header name' },
  );
  await assert.rejects(createMesh({ service: 'reviews', config: [], extensionProviders: [{ name: 'tcp', envoyTcpAls: { service: 'als:15000', port: 15000 } }] }), {
    message: 'createMesh: extensionProviders[0] (tcp).envoyTcpAls: invalid service "als:15000": not a host name (label "als:15000" invalid) or IP address (the port goes in `port`)',
  });
});
