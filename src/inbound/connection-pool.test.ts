import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateYaml } from '../../test/helpers/config.ts';
import type { AnyResource } from '../config/resource.ts';
import { UNLIMITED } from '../policies/limits.ts';
import { CompiledInboundPools, compileInboundPool, type InboundPoolPhase, OVERFLOW_BODY, type PoolOverflowDenial, releaseSlot } from './connection-pool.ts';
import { selectSidecar } from '../config/sidecar-scope.ts';
import { type InboundRequest, newInboundRequest, type PhaseResult } from './pipeline.ts';

const WORKLOAD = { service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin', version: 'v1' } };

function load(yaml: string): AnyResource[] {
  const { resources, errors } = validateYaml(yaml);
  assert.deepEqual(errors, []);
  return resources;
}

const dr = (pool: string, name = 'httpbin', extra = '') => `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: foo}
spec:
  host: httpbin
  trafficPolicy:
    connectionPool: ${pool}
${extra}`;

const request = (localPort = 8080, protocol: 'http1' | 'grpc' = 'http1'): InboundRequest =>
  newInboundRequest({ protocol, method: 'GET', scheme: 'http', authority: 'httpbin', path: '/', headers: {}, remoteAddress: '127.0.0.1', remotePort: 1, localPort });

function phaseOf(resources: AnyResource[], previous?: CompiledInboundPools): InboundPoolPhase {
  const { phase } = compileInboundPool(resources, WORKLOAD, 'istio-system', previous);
  assert.ok(phase !== undefined);
  return phase;
}

describe('inbound connection pool: which settings apply', () => {
  it('no setting, or settings that limit nothing: no phase', () => {
    assert.equal(compileInboundPool([], WORKLOAD, 'istio-system').phase, undefined);
    assert.equal(compileInboundPool(load(dr('{tcp: {connectTimeout: 1s}}')), WORKLOAD, 'istio-system').phase, undefined);
    assert.equal(compileInboundPool(load(dr('{http: {http1MaxPendingRequests: 3}}')), WORKLOAD, 'istio-system').phase, undefined, 'a pending limit alone holds nothing');
  });

  it("the DestinationRule of the workload's own service; port-level settings by service port", () => {
    const svc = `
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: grpc, port: 90, targetPort: 9090}]
---`;
    const pools = new CompiledInboundPools(
      load(`${svc}${dr('{http: {http2MaxRequests: 10}}', 'httpbin', '    portLevelSettings: [{port: {number: 80}, connectionPool: {http: {http2MaxRequests: 2, http1MaxPendingRequests: 3}}}]')}`),
      WORKLOAD,
    );
    const p8080 = pools.forPort(8080);
    assert.equal(p8080.source, 'DestinationRule foo/httpbin portLevelSettings (port 80)');
    assert.deepEqual(p8080.service, { host: 'httpbin.foo.svc.cluster.local', port: 80 });
    assert.equal(pools.limitsFor(8080, false).maxActive, 2);
    assert.equal(pools.limitsFor(8080, false).maxPending, 3);
    assert.equal(pools.forPort(9090).source, 'DestinationRule foo/httpbin');
    assert.equal(pools.forPort(9090).h2, true);
    assert.equal(pools.limitsFor(9090, false).maxActive, 10);
    assert.equal(pools.limitsFor(9090, false).maxPending, UNLIMITED);
  });

  it('a DestinationRule with a workloadSelector does not apply inbound (Istio)', () => {
    const sel = load(dr('{http: {http2MaxRequests: 1}}', 'selected').replace('spec:\n', 'spec:\n  workloadSelector: {matchLabels: {app: httpbin}}\n'));
    assert.equal(compileInboundPool(sel, WORKLOAD, 'istio-system').phase, undefined);
  });

  it('HTTP/1.1: min(maxConnections, http2MaxRequests); gRPC: http2MaxRequests', () => {
    const pools = new CompiledInboundPools(load(dr('{tcp: {maxConnections: 2}, http: {http2MaxRequests: 5}}')), WORKLOAD);
    assert.equal(pools.limitsFor(8080, false).maxActive, 2);
    assert.equal(pools.limitsFor(8080, true).maxActive, 5);
  });

  it("a Sidecar's ingress listener for the port beats inboundConnectionPool, which beats the DestinationRule", () => {
    const sidecar = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: sc, namespace: foo}
spec:
  workloadSelector: {labels: {app: httpbin}}
  ingress: [{port: {number: 8080, protocol: HTTP, name: http}, connectionPool: {http: {http2MaxRequests: 7}}}]
  inboundConnectionPool: {http: {http2MaxRequests: 4}}
---`;
    const pools = new CompiledInboundPools(load(`${sidecar}${dr('{http: {http2MaxRequests: 1}}')}`), WORKLOAD);
    assert.equal(pools.forPort(8080).source, 'Sidecar foo/sc ingress[0] (port 8080)');
    assert.equal(pools.limitsFor(8080, false).maxActive, 7);
    assert.equal(pools.forPort(8081).source, 'Sidecar foo/sc inboundConnectionPool');
    assert.equal(pools.limitsFor(8081, false).maxActive, 4);
    assert.equal(pools.forPort(8080).h2, false);
  });

  it("an ingress listener's GRPC or HTTP2 protocol makes the port's limit http2MaxRequests alone", () => {
    const sidecar = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: sc, namespace: foo}
spec:
  ingress: [{port: {number: 9090, protocol: GRPC, name: grpc}}]
  inboundConnectionPool: {tcp: {maxConnections: 1}, http: {http2MaxRequests: 4}}
`;
    const pools = new CompiledInboundPools(load(sidecar), WORKLOAD);
    assert.equal(pools.forPort(9090).h2, true);
    assert.equal(pools.limitsFor(9090, false).maxActive, 4);
    assert.equal(pools.limitsFor(8080, false).maxActive, 1);
  });

  it('which Sidecar: selected in the namespace, else the namespace default, else the root default; the oldest', () => {
    const sc = (name: string, ns: string, selector?: string, ts = '2024-01-01T00:00:00Z') =>
      `apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: ${name}, namespace: ${ns}, creationTimestamp: "${ts}"}\nspec:\n${selector === undefined ? '' : `  workloadSelector: {labels: {${selector}}}\n`}  inboundConnectionPool: {http: {http2MaxRequests: 1}}\n`;
    const all = load([sc('root', 'istio-system'), sc('ns-default', 'foo'), sc('other', 'foo', 'app: other'), sc('newer', 'foo', 'app: httpbin', '2025-01-01T00:00:00Z'), sc('older', 'foo', 'version: v1')].join('---\n'));
    assert.equal(selectSidecar(all, WORKLOAD.namespace, WORKLOAD.labels)?.metadata.name, 'older');
    assert.equal(selectSidecar(all.filter((r) => !['older', 'newer'].includes(r.metadata.name)), WORKLOAD.namespace, WORKLOAD.labels)?.metadata.name, 'ns-default');
    assert.equal(selectSidecar(all.filter((r) => r.metadata.namespace === 'istio-system' || r.metadata.name === 'other'), WORKLOAD.namespace, WORKLOAD.labels)?.metadata.name, 'root');
    assert.equal(selectSidecar(all.filter((r) => r.metadata.name === 'other'), WORKLOAD.namespace, WORKLOAD.labels), undefined);
  });
});

describe('inbound connection pool: the phase', () => {
  it('takes a slot, queues up to http1MaxPendingRequests, overflows beyond: 503 UO x-envoy-overloaded', async () => {
    const phase = phaseOf(load(dr('{tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}')));
    const first = request();
    assert.equal(phase.run(first), undefined);
    assert.ok(first.slot !== undefined);
    const second = request();
    const waiting = phase.run(second);
    assert.ok(waiting instanceof Promise);
    const third = phase.run(request()) as PoolOverflowDenial;
    assert.equal(third.status, 503);
    assert.equal(third.grpcStatus, 14);
    assert.equal(third.body, OVERFLOW_BODY);
    assert.equal(third.flag, 'UO');
    assert.deepEqual(third.headers, { 'x-envoy-overloaded': 'true' });
    assert.match(third.reason, /inbound\|8080\|\| overflow: active 1\/1, pending 1\/1/);
    let settled: PhaseResult | 'no' = 'no';
    void waiting.then((r) => {
      settled = r;
    });
    await Promise.resolve();
    assert.equal(settled, 'no');
    releaseSlot(first);
    // Released twice: counted once.
    releaseSlot(first);
    await waiting;
    assert.equal(settled, undefined);
    const limiter = phase.pools.limiter(8080, false);
    assert.equal(limiter?.active, 1);
    assert.equal(String(phase), 'connection-pool: inbound|8080|| http1: active 1/1, pending 0/1, overflows 1');
    releaseSlot(second);
    assert.equal(limiter?.active, 0);
  });

  it('a waiting request whose caller goes away leaves the queue; one gone before the phase takes no slot', async () => {
    const phase = phaseOf(load(dr('{tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}')));
    const first = request();
    phase.run(first);
    const second = request();
    const waiting = phase.run(second) as Promise<PhaseResult>;
    releaseSlot(second);
    assert.equal((await waiting)?.phase, 'connection-pool');
    const limiter = phase.pools.limiter(8080, false);
    assert.equal(limiter?.pending, 0);
    // The queue has room again.
    const third = request();
    assert.ok(phase.run(third) instanceof Promise);
    const gone = request();
    releaseSlot(gone);
    assert.notEqual(phase.run(gone), undefined);
    assert.equal(limiter?.pending, 1);
  });

  it('a slot that falls to a waiting request whose caller is gone goes on to the next waiter', async () => {
    const phase = phaseOf(load(dr('{tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 5}}')));
    const first = request();
    phase.run(first);
    const dead = request();
    const deadWaits = phase.run(dead) as Promise<PhaseResult>;
    const live = request();
    const liveWaits = phase.run(live) as Promise<PhaseResult>;
    // The adapter's check: the connection is destroyed, its 'close' not seen yet.
    dead.alive = () => false;
    live.alive = () => true;
    releaseSlot(first);
    assert.equal((await deadWaits)?.phase, 'connection-pool');
    assert.equal(await liveWaits, undefined);
    const limiter = phase.pools.limiter(8080, false);
    assert.equal(limiter?.active, 1);
    assert.equal(limiter?.pending, 0);
    // Its 'close', later, gives back nothing more.
    releaseSlot(dead);
    assert.equal(limiter?.active, 1);
    releaseSlot(live);
    assert.equal(limiter?.active, 0);
  });

  it('ports and protocols have their own counters; unlimited ports take none', () => {
    const phase = phaseOf(load(dr('{tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}', 'httpbin', '    portLevelSettings: [{port: {number: 9000}, connectionPool: {tcp: {connectTimeout: 1s}}}]')));
    assert.equal(phase.run(request(8080)), undefined);
    assert.equal(phase.run(request(8081)), undefined);
    assert.ok(phase.run(request(8080)) instanceof Promise);
    assert.equal((phase.run(request(8080)) as PoolOverflowDenial).flag, 'UO');
    const free = request(9000);
    assert.equal(phase.run(free), undefined);
    assert.equal(free.slot, undefined);
    // gRPC: http2MaxRequests alone (unlimited here), so no counter and no slot, whatever the pending limit.
    const grpcCall = request(8080, 'grpc');
    assert.equal(phase.run(grpcCall), undefined);
    assert.equal(grpcCall.slot, undefined);
    assert.equal(phase.pools.limiter(8080, true), undefined);
  });

  it('a reload keeps the counters: unchanged limits, and new limits applied to requests in flight', () => {
    const one = load(dr('{tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 5}}'));
    const a = compileInboundPool(one, WORKLOAD, 'istio-system');
    const held = request();
    assert.equal(a.phase?.run(held), undefined);
    const q1 = request();
    const q2 = request();
    assert.ok(a.phase?.run(q1) instanceof Promise);
    // The same config again: the request in flight is still counted.
    const b = compileInboundPool(one, WORKLOAD, 'istio-system', a.pools);
    assert.ok(b.phase?.run(q2) instanceof Promise);
    const limiter = b.pools.limiter(8080, false);
    assert.equal(limiter, a.pools.limiter(8080, false));
    assert.equal(limiter?.active, 1);
    assert.equal(limiter?.pending, 2);
    // Two slots: the oldest waiter goes on at once; the request in flight still holds its slot.
    const c = compileInboundPool(load(dr('{tcp: {maxConnections: 2}, http: {http1MaxPendingRequests: 5}}')), WORKLOAD, 'istio-system', b.pools);
    assert.equal(limiter?.active, 2);
    assert.equal(limiter?.pending, 1);
    assert.equal(c.pools.limiter(8080, false), limiter);
    // No limit any more: no phase, and the waiting request goes on; releases still count down.
    const d = compileInboundPool([], WORKLOAD, 'istio-system', c.pools);
    assert.equal(d.phase, undefined);
    assert.equal(limiter?.active, 3);
    assert.equal(limiter?.pending, 0);
    for (const r of [held, q1, q2]) releaseSlot(r);
    assert.equal(limiter?.active, 0);
  });

  it('a request judged under the config before a reload counts on the same limiter, under the new limits, and never sets them back', () => {
    const a = compileInboundPool(load(dr('{tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 5}}')), WORKLOAD, 'istio-system');
    const b = compileInboundPool(load(dr('{tcp: {maxConnections: 3}, http: {http1MaxPendingRequests: 5}}')), WORKLOAD, 'istio-system', a.pools);
    assert.equal(b.phase?.run(request()), undefined);
    const limiter = b.pools.limiter(8080, false);
    assert.equal(limiter?.limits.maxActive, 3);
    // A request judged under the first config (it waited on ext-authz, a JWKS fetch) reaches its pool phase now.
    assert.equal(a.phase?.run(request()), undefined);
    assert.equal(a.pools.limiter(8080, false), limiter);
    assert.equal(limiter?.limits.maxActive, 3);
    assert.equal(b.phase?.run(request()), undefined);
    assert.equal(limiter?.active, 3);
  });

  it('a request judged under the config before a reload that lifted every limit makes a limiter with no limit', () => {
    const a = compileInboundPool(load(dr('{tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 5}}')), WORKLOAD, 'istio-system');
    const b = compileInboundPool([], WORKLOAD, 'istio-system', a.pools);
    assert.equal(b.phase, undefined);
    assert.equal(a.phase?.run(request()), undefined);
    // The second is not held back by the limit the reload lifted.
    assert.equal(a.phase?.run(request()), undefined);
    assert.deepEqual(
      b.pools.counters().map((c) => [c.active, c.pending, c.maxActive]),
      [[2, 0, UNLIMITED]],
    );
  });
});
