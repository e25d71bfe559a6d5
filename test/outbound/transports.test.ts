/**
 * One pipeline, two transports: calls that name different transports (`http` for undici,
 * `grpc` for grpc-js) reach the same cluster and share its limiter, outlier detector and retry
 * budget; each transport classifies its own failures and keeps its own per-cluster state.
 * Both transports here are fakes the test drives by hand, so the test is about the pipeline.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock, seededRandom } from '../../src/index.ts';
import { compileSnapshot } from '../../src/routing/compile.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import { Exchange, type Controller, type Headers, type ResponseHandler } from '../../src/core/exchange.ts';
import type { FailureKind } from '../../src/core/outcome.ts';
import { Outbound } from '../../src/outbound/pipeline.ts';
import type { CallTransport } from '../../src/outbound/transport.ts';
import { destinationRule, serviceEntry } from '../helpers/upstreams.ts';

interface Sent {
  ex: Exchange;
  handler: ResponseHandler;
  ctrl: Controller;
}

/** A transport that records what it is given; the test answers or fails each attempt. */
function fakeTransport(name: string, classify: (err: Error) => FailureKind) {
  const sent: Sent[] = [];
  const perCluster: string[] = [];
  const t: CallTransport = {
    dispatch(ex, handler) {
      const ctrl: Controller = { abort() {}, pause() {}, resume() {}, aborted: false, paused: false, reason: null };
      sent.push({ ex, handler, ctrl });
      handler.onRequestStart?.(ctrl, null);
    },
    passthrough() {
      throw new Error(`${name}: no passthrough in this test`);
    },
    classify,
    refresh(cs) {
      perCluster.push(cs.name);
    },
  };
  const answer = (s: Sent, status: number, headers: Headers = {}) => {
    s.handler.onResponseStart?.(s.ctrl, status, headers, '');
    s.handler.onResponseEnd?.(s.ctrl, {});
  };
  const fail = (s: Sent, err: Error) => s.handler.onResponseError?.(s.ctrl, err);
  return { t, sent, answer, fail };
}

function call(outbound: Outbound, transport: string, protocol: 'http1' | 'grpc', clock: ManualClock) {
  const result: { status?: number; error?: Error } = {};
  const h: ResponseHandler = {
    onResponseStart(_c, status) {
      result.status = status;
    },
    onResponseError(_c, err) {
      result.error = err;
    },
  };
  const ex = new Exchange(h, 'throw', clock.now(), 'POST', 'http', 'svc:80', '/pkg.Svc/Get', {}, undefined, undefined, protocol, transport);
  ex.begin();
  outbound.dispatch(ex, ex);
  return result;
}

async function outboundWith(http: CallTransport, grpc: CallTransport, clock: ManualClock) {
  const { resources, ok, issues } = await loadConfig([
    serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: 1 }]),
    destinationRule('svc', 'svc', { trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 10 } }, outlierDetection: { consecutive5xxErrors: 2, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 } } }),
  ] as object[]);
  assert.ok(ok, issues.all.map(String).join('\n'));
  return new Outbound(compileSnapshot(resources, { service: 'client' }), {
    clock,
    random: seededRandom(1),
    locality: '',
    labels: {},
    sourceIp: '127.0.0.1',
    outboundTrafficPolicy: 'ALLOW_ANY',
    maxRetryAfterMs: 10_000,
    maxMirrorsInFlight: 4,
    transports: { http, grpc },
    onEvent() {},
  });
}

const flush = () => new Promise((r) => setImmediate(r));

describe('one cluster, two transports', () => {
  it('each call goes to the transport it names; both share the cluster\'s limiter (an HTTP/1.1 port, maxConnections 1: one in flight, the other waits)', async () => {
    const clock = new ManualClock();
    const http = fakeTransport('http', () => 'reset');
    const grpc = fakeTransport('grpc', () => 'reset');
    const outbound = await outboundWith(http.t, grpc.t, clock);
    const a = call(outbound, 'http', 'http1', clock);
    const b = call(outbound, 'grpc', 'grpc', clock);
    await flush();
    assert.equal(http.sent.length, 1, 'the http call went to the http transport');
    assert.equal(grpc.sent.length, 0, 'the grpc call waits for the one slot the http call holds');
    http.answer(http.sent[0] as Sent, 200);
    await flush();
    assert.equal(a.status, 200);
    assert.equal(grpc.sent.length, 1, 'the slot passed to the grpc call');
    assert.equal(grpc.sent[0]?.ex.protocol, 'grpc');
    grpc.answer(grpc.sent[0] as Sent, 200, { 'grpc-status': '0' });
    await flush();
    assert.equal(b.status, 200);
    await outbound.close();
  });

  it('outlier detection counts failures from both transports on one endpoint; each transport classifies its own errors', async () => {
    const clock = new ManualClock();
    const classified: string[] = [];
    const http = fakeTransport('http', (e) => {
      classified.push(`http:${e.message}`);
      return 'reset';
    });
    const grpc = fakeTransport('grpc', (e) => {
      classified.push(`grpc:${e.message}`);
      return 'protocol';
    });
    const outbound = await outboundWith(http.t, grpc.t, clock);
    // A trailers-only UNAVAILABLE over grpc counts as a 503, as an HTTP 503 over http does.
    call(outbound, 'http', 'http1', clock);
    await flush();
    http.answer(http.sent[0] as Sent, 503);
    await flush();
    const cs = outbound.clusterState('outbound|80||svc.default.svc.cluster.local');
    assert.equal(cs?.hostSet.hosts[0]?.ejected, false, 'one failure is not enough');
    call(outbound, 'grpc', 'grpc', clock);
    await flush();
    grpc.answer(grpc.sent[0] as Sent, 200, { 'grpc-status': '14' });
    await flush();
    assert.equal(cs?.hostSet.hosts[0]?.ejected, true, 'the second consecutive 5xx came through the other transport');
    // Errors are classified by the transport that carried the attempt.
    clock.advance(30_001);
    const c = call(outbound, 'grpc', 'grpc', clock);
    await flush();
    grpc.fail(grpc.sent[1] as Sent, new Error('socket'));
    await flush();
    assert.ok(classified.length > 0 && classified.every((x) => x === 'grpc:socket'), classified.join());
    assert.equal((c.error as { code?: string } | undefined)?.code, 'MESHLET_ERR_UPSTREAM_PROTOCOL', 'the grpc transport called it a protocol error (not retried by default)');
    assert.equal(http.sent.length, 1);
    assert.equal(cs?.transports.size, 0, 'the fakes keep no per-cluster state');
    await outbound.close();
  });
});
