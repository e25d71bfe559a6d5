/**
 * A real Prometheus (Debian's `prometheus`) scrapes meshlet's Istio metrics under traffic — a
 * client mesh (productpage-v1) calling a server mesh in two versions (reviews-v1, reviews-v2,
 * the latter answering 1 request in 4 with a 500) — and the queries the canary and graph tools
 * run return what they return against Istio:
 *
 * - Flagger's `request-success-rate` and `request-duration` (fluxcd/flagger
 *   `pkg/metrics/observers/istio.go`, `{{ interval }}` = 1m);
 * - Kiali's workload-graph queries for a namespace (kiali/kiali
 *   `graph/telemetry/istio/istio.go` `buildNamespaceTrafficMap`): the unknown-source query (empty:
 *   metadata exchange names every source) and the in-namespace traffic query;
 * - gRPC message rates per edge (`istio_request_messages_total`, `istio_response_messages_total`,
 *   Kiali's gRPC "sent" / "received" rates): a grpc-js client mesh (frontend-v1) calling a grpc-js
 *   server mesh (echo-v1) in namespace `grpc` with the four call types each round.
 *
 * Determinism: the server meshes run on a clock their handlers advance (3 ms for v1, 40 ms for
 * v2), so every duration is exact; traffic comes in rounds of the same shape, and scrapes go
 * through a gate that holds them while a round is in flight, so every series Prometheus stores
 * is its share of the same round count — rates, ratios and quantiles are then exact.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type Clock, systemClock } from '../../src/core/clock.ts';
import { createMesh, type Mesh } from '../../src/index.ts';
import { startTelemetry, type Telemetry } from '../../src/telemetry/sdk/index.ts';
import { type PrometheusServer, startPrometheus } from '../helpers/prometheus.ts';
import { skipWithout } from '../helpers/tools.ts';
import { destinationRule, serviceEntry, virtualService } from '../helpers/upstreams.ts';
import { collect, type Echo, EchoClient, grpc, grpcServiceEntry, unary } from '../helpers/grpc.ts';
import { type MeshGrpcServer, startMeshGrpcServer } from '../helpers/grpc-server.ts';

const ROUNDS = 3;
/** Per round: 4 calls to v1 (200), 4 to v2 (3 × 200, 1 × 500). */
const PER_ROUND = 8;
/** Per round, gRPC: a unary call (1 → 1), a server stream (1 → 3), a client stream (2 → 1), a bidi stream (2 → 2). */
const GRPC_PER_ROUND = 4;
const GRPC_REQUEST_MESSAGES = 6;
const GRPC_RESPONSE_MESSAGES = 7;

/** A clock whose time moves only when the test moves it (timers are real). */
function steppedClock(): Clock & { advance(ms: number): void } {
  let t = 1_000_000;
  return {
    now: () => t,
    setTimer: systemClock.setTimer,
    advance: (ms) => {
      t += ms;
    },
  };
}

/** Flagger's builtin Istio queries, as in its source, rendered for a namespace, target and interval. */
function flagger(name: 'request-success-rate' | 'request-duration', namespace: string, target: string, interval = '1m'): string {
  const q = {
    'request-success-rate': `
	sum(
		rate(
			istio_requests_total{
				reporter="destination",
				destination_workload_namespace="{{ namespace }}",
				destination_workload=~"{{ target }}",
				response_code!~"5.*"
			}[{{ interval }}]
		)
	) 
	/ 
	sum(
		rate(
			istio_requests_total{
				reporter="destination",
				destination_workload_namespace="{{ namespace }}",
				destination_workload=~"{{ target }}"
			}[{{ interval }}]
		)
	) 
	* 100`,
    'request-duration': `
	histogram_quantile(
		0.99,
		sum(
			rate(
				istio_request_duration_milliseconds_bucket{
					reporter="destination",
					destination_workload_namespace="{{ namespace }}",
					destination_workload=~"{{ target }}"
				}[{{ interval }}]
			)
		) by (le)
	)`,
  }[name];
  return q.replaceAll('{{ namespace }}', namespace).replaceAll('{{ target }}', target).replaceAll('{{ interval }}', interval);
}

/** Kiali's graph queries for `namespace` (buildNamespaceTrafficMap), duration 60 s. */
const KIALI_GROUP_BY =
  'source_workload_namespace,source_workload,source_canonical_service,source_canonical_revision,destination_service_namespace,destination_service,destination_service_name,destination_workload_namespace,destination_workload,destination_canonical_service,destination_canonical_revision,request_protocol,response_code,grpc_response_status,response_flags';
const kiali = {
  unknownSources: (ns: string) => `sum(rate(istio_requests_total{reporter="destination",source_workload="unknown",destination_workload_namespace="${ns}"} [60s])) by (${KIALI_GROUP_BY})`,
  external: (ns: string) => `sum(rate(istio_requests_total{reporter="source",source_workload_namespace!="${ns}",source_workload!="unknown",destination_service_namespace="${ns}"} [60s])) by (${KIALI_GROUP_BY})`,
  internal: (ns: string) => `sum(rate(istio_requests_total{reporter="source",source_workload_namespace="${ns}"} [60s])) by (${KIALI_GROUP_BY})`,
};

describe('Istio metrics in a real Prometheus: Flagger and Kiali queries', { skip: skipWithout('prometheus'), timeout: 90_000 }, () => {
  let telemetry: Telemetry;
  let prometheus: PrometheusServer;
  let gate: Server;
  const meshes: Mesh[] = [];
  const servers: Server[] = [];
  let grpcServer: MeshGrpcServer;
  let grpcClient: Echo;
  /** Scrapes wait while a round is in flight. */
  let roundDone: Promise<void> = Promise.resolve();
  let scrapes = 0;
  let inboundEnds = 0;
  const countInbound = (): void => void inboundEnds++;

  before(async () => {
    subscribe('meshlet:inbound:end', countInbound);
    telemetry = await startTelemetry({ prometheus: { port: 0, host: '127.0.0.1' }, otlp: false });
    const metricsUrl = telemetry.prometheusUrl as string;
    // The gate Prometheus scrapes: it forwards to meshlet's endpoint once no round is in flight.
    gate = createServer(async (req, res) => {
      await roundDone;
      const r = await fetch(metricsUrl + (req.url ?? '/'));
      res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'text/plain' });
      res.end(await r.text());
      scrapes++;
    });
    await new Promise<void>((r) => gate.listen(0, '127.0.0.1', r));

    const ports: number[] = [];
    for (const version of ['v1', 'v2']) {
      const clock = steppedClock();
      const mesh = await createMesh({ service: 'reviews', workloadName: `reviews-${version}`, labels: { app: 'reviews', version }, config: [], clock, identity: 'none' });
      meshes.push(mesh);
      const server = mesh.createServer((req, res) => {
        clock.advance(version === 'v1' ? 3 : 40);
        res.statusCode = req.url?.includes('fail') === true ? 500 : 200;
        res.end(`reviews ${version}`);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      servers.push(server);
      ports.push((server.address() as AddressInfo).port);
    }
    const host = 'reviews.default.svc.cluster.local';
    const client = await createMesh({
      service: 'productpage',
      workloadName: 'productpage-v1',
      labels: { app: 'productpage', version: 'v1' },
      identity: 'none',
      config: [
        serviceEntry('reviews', host, 9080, [
          { port: ports[0] as number, labels: { app: 'reviews', version: 'v1', 'service.istio.io/workload-name': 'reviews-v1' } },
          { port: ports[1] as number, labels: { app: 'reviews', version: 'v2', 'service.istio.io/workload-name': 'reviews-v2' } },
        ]),
        destinationRule('reviews', host, { subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }),
        virtualService('reviews', [host], [
          { match: [{ uri: { prefix: '/v1/' } }], route: [{ destination: { host, subset: 'v1' } }] },
          { match: [{ uri: { prefix: '/v2/' } }], route: [{ destination: { host, subset: 'v2' } }] },
        ]),
      ],
    });
    meshes.push(client);

    // gRPC: frontend-v1 → echo-v1, in namespace grpc (the HTTP queries above look at default).
    const echoMesh = await createMesh({ service: 'echo', namespace: 'grpc', workloadName: 'echo-v1', labels: { app: 'echo', version: 'v1' }, config: [], identity: 'none' });
    meshes.push(echoMesh);
    grpcServer = await startMeshGrpcServer(echoMesh, 'mesh');
    const echoHost = 'echo.grpc.svc.cluster.local';
    const frontend = await createMesh({
      service: 'frontend',
      namespace: 'grpc',
      workloadName: 'frontend-v1',
      labels: { app: 'frontend', version: 'v1' },
      identity: 'none',
      // Declared in its own namespace, as the Service of a workload in namespace grpc would be (the
      // service's namespace is destination_service_namespace).
      config: [{ ...grpcServiceEntry('echo', echoHost, 9090, [{ port: grpcServer.port, labels: { app: 'echo', version: 'v1', 'service.istio.io/workload-name': 'echo-v1' } }]), metadata: { name: 'echo', namespace: 'grpc' } }],
    });
    meshes.push(frontend);
    grpcClient = frontend.grpc.client(EchoClient, `${echoHost}:9090`) as unknown as Echo;
    const grpcRound = async (): Promise<void> => {
      assert.equal((await unary(grpcClient, { text: 'u' })).error, undefined);
      assert.equal((await collect(grpcClient.ServerStream({ text: 's', count: 3 }))).messages.length, 3);
      await new Promise<void>((resolve, reject) => {
        const call = grpcClient.ClientStream(new grpc.Metadata(), {}, (err) => (err ? reject(err) : resolve()));
        call.write({ text: 'a' });
        call.write({ text: 'b' });
        call.end();
      });
      const bidi = grpcClient.Bidi();
      for (const t of ['1', '2']) {
        bidi.write({ text: t });
        await new Promise((r) => bidi.once('data', r));
      }
      const done = collect(bidi);
      bidi.end();
      assert.equal((await done).status.code, grpc.status.OK);
    };

    prometheus = await startPrometheus({ targets: [`127.0.0.1:${(gate.address() as AddressInfo).port}`], scrapeIntervalMs: 1000 });

    for (let round = 1; round <= ROUNDS; round++) {
      let open!: () => void;
      roundDone = new Promise<void>((r) => {
        open = r;
      });
      const paths = ['/v1/a', '/v1/b', '/v1/c', '/v1/d', '/v2/a', '/v2/b', '/v2/c', '/v2/fail'];
      for (const p of paths) {
        const res = await client.fetch(`http://reviews:9080${p}`);
        await res.text();
      }
      await grpcRound();
      // Every server-side data point of the round is recorded before a scrape may read.
      await until(() => inboundEnds === (PER_ROUND + GRPC_PER_ROUND) * round, `${(PER_ROUND + GRPC_PER_ROUND) * round} inbound:end messages`);
      open();
      const before = scrapes;
      await until(() => scrapes > before, 'a scrape after the round');
    }
    await until(async () => (await prometheus.query('sum(istio_requests_total{reporter="destination"})'))[0]?.value === (PER_ROUND + GRPC_PER_ROUND) * ROUNDS, 'Prometheus to hold the last round');
  });

  after(async () => {
    unsubscribe('meshlet:inbound:end', countInbound);
    await prometheus?.stop();
    grpcClient?.close();
    await grpcServer?.close();
    for (const m of meshes) await m.close();
    for (const s of servers) await new Promise((r) => s.close(r));
    await new Promise((r) => gate?.close(r));
    await telemetry?.shutdown();
  });

  it('the metric names are exactly Istio’s', async () => {
    const names = (await prometheus.query('count by (__name__) ({__name__=~"istio_.*"})')).map((r) => r.metric['__name__']).sort();
    assert.deepEqual(names, [
      'istio_build',
      'istio_request_bytes_bucket',
      'istio_request_bytes_count',
      'istio_request_bytes_sum',
      'istio_request_duration_milliseconds_bucket',
      'istio_request_duration_milliseconds_count',
      'istio_request_duration_milliseconds_sum',
      'istio_request_messages_total',
      'istio_requests_total',
      'istio_response_bytes_bucket',
      'istio_response_bytes_count',
      'istio_response_bytes_sum',
      'istio_response_messages_total',
    ]);
    const buckets = (await prometheus.query('count by (le) (istio_request_duration_milliseconds_bucket)')).map((r) => r.metric['le']);
    assert.deepEqual(new Set(buckets), new Set(['0.5', '1', '5', '10', '25', '50', '100', '250', '500', '1000', '2500', '5000', '10000', '30000', '60000', '300000', '600000', '1800000', '3600000', '+Inf']));
  });

  it("Istio's mesh dashboard: the Istio Component Versions panel counts each mesh as a proxy of meshlet's version", async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    // manifests/addons/dashboards/istio-mesh.libsonnet: sum by (component,tag) (istio_build)
    const rows = await prometheus.query('sum by (component,tag) (istio_build)');
    assert.deepEqual(
      rows.map((r) => r.metric),
      [{ component: 'proxy', tag: pkg.version }],
    );
    // One series per mesh (by mesh_service and mesh_namespace, as every own metric: the two reviews meshes of this process are one).
    const series = await prometheus.query('istio_build');
    assert.deepEqual(series.map((r) => [r.metric['mesh_service'], r.value]).sort(), [
      ['echo', 1],
      ['frontend', 1],
      ['productpage', 1],
      ['reviews', 1],
    ]);
  });

  it("Flagger's request-success-rate: 100 for v1, 75 for v2 (1 in 4 is a 500), 87.5 for both", async () => {
    const rate = async (target: string) => (await prometheus.query(flagger('request-success-rate', 'default', target)))[0]?.value as number;
    // Exact up to floating point (rate() divides each series by the same extrapolated interval).
    const near = (got: number, want: number) => assert.ok(Math.abs(got - want) < 1e-9, `${got} ≠ ${want}`);
    near(await rate('reviews-v1'), 100);
    near(await rate('reviews-v2'), 75);
    near(await rate('reviews-.*'), 87.5);
  });

  it("Flagger's request-duration: p99 inside the bucket of each version's duration (3 ms → (1, 5], 40 ms → (25, 50])", async () => {
    const p99 = async (target: string) => (await prometheus.query(flagger('request-duration', 'default', target)))[0]?.value as number;
    assert.ok(Math.abs((await p99('reviews-v1')) - (1 + 4 * 0.99)) < 1e-9);
    assert.ok(Math.abs((await p99('reviews-v2')) - (25 + 25 * 0.99)) < 1e-9);
  });

  it("Kiali's graph: no unknown sources (metadata exchange named them), no outside traffic, and the in-namespace edges productpage-v1 → reviews-v1/v2", async () => {
    assert.deepEqual(await prometheus.query(kiali.unknownSources('default')), []);
    assert.deepEqual(await prometheus.query(kiali.external('default')), []);
    const edges = await prometheus.query(kiali.internal('default'));
    const common = {
      source_workload_namespace: 'default',
      source_workload: 'productpage-v1',
      source_canonical_service: 'productpage',
      source_canonical_revision: 'v1',
      destination_service_namespace: 'default',
      destination_service: 'reviews.default.svc.cluster.local',
      destination_service_name: 'reviews',
      destination_workload_namespace: 'default',
      destination_canonical_service: 'reviews',
      request_protocol: 'http',
      response_flags: '-',
    };
    const byKey = new Map(edges.map((e) => [`${e.metric['destination_workload']} ${e.metric['response_code']}`, e]));
    assert.deepEqual([...byKey.keys()].sort(), ['reviews-v1 200', 'reviews-v2 200', 'reviews-v2 500']);
    for (const [key, e] of byKey) {
      const [wl, code] = key.split(' ') as [string, string];
      assert.deepEqual(e.metric, { ...common, destination_workload: wl, destination_canonical_revision: wl.slice(-2), response_code: code }, key);
    }
    // The rates are in the traffic's proportions (4 : 3 : 1 per round).
    const v1 = byKey.get('reviews-v1 200')?.value as number;
    assert.ok(Math.abs((byKey.get('reviews-v2 200')?.value as number) / v1 - 0.75) < 1e-9);
    assert.ok(Math.abs((byKey.get('reviews-v2 500')?.value as number) / v1 - 0.25) < 1e-9);
  });

  it('the destination side names the source workload and its security policy', async () => {
    const rows = await prometheus.query('sum by (source_workload, source_app, source_version, destination_workload, connection_security_policy) (istio_requests_total{reporter="destination", destination_workload_namespace="default"})');
    assert.deepEqual(
      rows.map((r) => [r.metric['source_workload'], r.metric['source_app'], r.metric['source_version'], r.metric['destination_workload'], r.metric['connection_security_policy'], r.value]).sort(),
      [
        ['productpage-v1', 'productpage', 'v1', 'reviews-v1', 'none', 4 * ROUNDS],
        ['productpage-v1', 'productpage', 'v1', 'reviews-v2', 'none', 4 * ROUNDS],
      ],
    );
  });

  it("gRPC messages (Kiali's gRPC sent / received rates): per edge, from both reporters, in the traffic's proportions", async () => {
    // Kiali's edge grouping, without the labels the message counters do not have (the proxy reports them before it adds those).
    const by = 'source_workload_namespace,source_workload,source_canonical_service,source_canonical_revision,destination_service_namespace,destination_service,destination_service_name,destination_workload_namespace,destination_workload,destination_canonical_service,destination_canonical_revision';
    const edge = {
      source_workload_namespace: 'grpc',
      source_workload: 'frontend-v1',
      source_canonical_service: 'frontend',
      source_canonical_revision: 'v1',
      destination_service_namespace: 'grpc',
      destination_service: 'echo.grpc.svc.cluster.local',
      destination_service_name: 'echo',
      destination_workload_namespace: 'grpc',
      destination_workload: 'echo-v1',
      destination_canonical_service: 'echo',
      destination_canonical_revision: 'v1',
    };
    const near = (got: number | undefined, want: number, what: string) => assert.ok(got !== undefined && Math.abs(got - want) < 1e-9, `${what}: ${got} ≠ ${want}`);
    for (const reporter of ['source', 'destination']) {
      const sel = `reporter="${reporter}",source_workload_namespace="grpc"`;
      const sent = await prometheus.query(`sum(rate(istio_request_messages_total{${sel}} [60s])) by (${by})`);
      const received = await prometheus.query(`sum(rate(istio_response_messages_total{${sel}} [60s])) by (${by})`);
      assert.deepEqual([sent.map((r) => r.metric), received.map((r) => r.metric)], [[edge], [edge]], reporter);
      assert.ok((sent[0]?.value as number) > 0 && (received[0]?.value as number) > 0, reporter);
      // Each round: 4 calls, 6 messages sent by the client, 7 by the server (in one query: one evaluation time, so the rates extrapolate alike).
      const perCall = async (metric: string) => (await prometheus.query(`sum(rate(${metric}{${sel}} [60s])) by (${by}) / sum(rate(istio_requests_total{${sel},request_protocol="grpc"} [60s])) by (${by})`))[0]?.value;
      near(await perCall('istio_request_messages_total'), GRPC_REQUEST_MESSAGES / GRPC_PER_ROUND, `${reporter} sent per call`);
      near(await perCall('istio_response_messages_total'), GRPC_RESPONSE_MESSAGES / GRPC_PER_ROUND, `${reporter} received per call`);
    }
    // The counters' totals.
    const total = async (q: string) => (await prometheus.query(q))[0]?.value;
    assert.equal(await total('sum(istio_request_messages_total{reporter="source"})'), GRPC_REQUEST_MESSAGES * ROUNDS);
    assert.equal(await total('sum(istio_response_messages_total{reporter="destination"})'), GRPC_RESPONSE_MESSAGES * ROUNDS);
    // Not for HTTP requests: no message series in namespace default.
    assert.deepEqual(await prometheus.query('istio_request_messages_total{source_workload_namespace="default"}'), []);
  });
});

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
