/**
 * A retry is sent from the backoff timer, where nobody catches what a layer below the retry layer
 * throws (a bug, an injected Clock that throws — here the mesh's Clock, read by the upstream layer
 * as it sends an observed attempt). The call must end with an error that says which retry failed
 * and why, its endpoint's in-flight count given back; it used to reach the timer's caller
 * (`uncaughtException` on the real clock, `advance()` here) and leave the call hanging.
 * Outbound HTTP (undici) and gRPC (`mesh.grpc.client`) go through the same retry layer.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, status, unary } from '../helpers/grpc.ts';
import { until } from '../helpers/until.ts';
import { serviceEntry, startUpstream, virtualService } from '../helpers/upstreams.ts';

/** A manual clock whose reading throws while `broken`, when the upstream layer reads it (as it sends an observed attempt). */
class BreakingClock extends ManualClock {
  broken = false;
  override now(): number {
    if (this.broken && /at UpstreamCall\./.test(new Error().stack ?? '')) throw new Error('clock broke');
    return super.now();
  }
}

const retries = (host: string) => virtualService('svc', [host], [{ route: [{ destination: { host } }], retries: { attempts: 2, retryOn: '5xx,unavailable', retryIgnorePreviousHosts: false } }]);
const inFlight = (mesh: Mesh) => mesh.diagnostics().clusters.flatMap((c) => c.endpoints.map((e) => e.active));

describe('a retry that throws as the backoff timer sends it', () => {
  // Someone observes attempts: the upstream layer reads the clock when one is sent.
  const onStart = () => undefined;
  before(() => subscribe('meshlet:attempt:start', onStart));
  after(() => unsubscribe('meshlet:attempt:start', onStart));

  it('HTTP: the call fails with an error naming the retry, the call and the cause; nothing stays in flight', async () => {
    const up = await startUpstream('up', (_q, res, hit) => {
      res.statusCode = hit === 1 ? 503 : 200;
      res.end(hit === 1 ? 'down' : 'ok');
    });
    const clock = new BreakingClock(1000);
    const mesh = await createMesh({ service: 'client', clock, config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]), retries('svc.default.svc.cluster.local')] as never });
    try {
      const p = request('http://svc.default.svc.cluster.local/x', { dispatcher: mesh.dispatcher }).then(
        async (r) => ({ status: r.statusCode, text: await r.body.text(), error: undefined }),
        (error: Error) => ({ status: 0, text: '', error }),
      );
      await until(() => up.hits === 1 && clock.pending >= 1, 'the first attempt answered and its retry scheduled');
      // The 503 reaches the retry decision: the backoff timer is set (no clock time passes before).
      await until(() => inFlight(mesh).every((n) => n === 0) && clock.pending >= 1, 'the backoff');
      clock.broken = true;
      assert.doesNotThrow(() => clock.advance(1000), 'what the retry threw stays with the call');
      const r = await p;
      clock.broken = false;
      assert.ok(r.error !== undefined, `the call failed (got ${r.status} ${r.text})`);
      assert.match(r.error.message, /^meshlet: retry 1 of GET svc\.default\.svc\.cluster\.local\/x to cluster outbound\|80\|\|svc\.default\.svc\.cluster\.local \(endpoint 127\.0\.0\.1:\d+\) could not be sent: clock broke$/);
      assert.equal((r.error.cause as Error).message, 'clock broke');
      assert.equal(up.hits, 1, 'the retry never went out');
      assert.deepEqual(inFlight(mesh), [0], 'nothing in flight on the endpoint');
    } finally {
      clock.broken = false;
      await mesh.close();
      await up.close();
    }
  });

  it('gRPC: the call fails with a status naming the retry and the cause; nothing stays in flight', async () => {
    const up = await startGrpcUpstream('a');
    up.behaviour.Unary = ((call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<never>, hit: number) => {
      if (hit === 1) cb(status(grpc.status.UNAVAILABLE, 'first fails'));
      else cb(null, { text: call.request.text, server: 'a', seen: [] } as never);
    }) as never;
    const host = 'echo.default.svc.cluster.local';
    const clock = new BreakingClock(1000);
    const mesh = await createMesh({ service: 'client', clock, config: [grpcServiceEntry('echo', host, 9090, [{ port: up.port }]), retries(host)] as never });
    const client = mesh.grpc.client(EchoClient, `${host}:9090`) as unknown as Echo;
    try {
      const p = unary(client, { text: 'r' });
      await until(() => up.hits === 1 && clock.pending >= 1, 'the first attempt answered and its retry scheduled');
      await until(() => inFlight(mesh).every((n) => n === 0), 'the backoff');
      clock.broken = true;
      assert.doesNotThrow(() => clock.advance(1000), 'what the retry threw stays with the call');
      const r = await p;
      clock.broken = false;
      assert.ok(r.error !== undefined, 'the call failed');
      assert.match(r.error.details, /meshlet: retry 1 of POST echo\.default\.svc\.cluster\.local:9090\/meshlet\.test\.Echo\/Unary to cluster outbound\|9090\|\|echo\.default\.svc\.cluster\.local .*could not be sent: clock broke/);
      assert.equal(up.hits, 1, 'the retry never went out');
      assert.deepEqual(inFlight(mesh), [0], 'nothing in flight on the endpoint');
    } finally {
      clock.broken = false;
      client.close();
      await mesh.close();
      await up.close();
    }
  });
});
