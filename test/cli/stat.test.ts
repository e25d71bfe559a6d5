/**
 * `meshlet stat <metrics-url>`: `linkerd viz stat` for meshlet — a workload's success rate,
 * requests and latency percentiles per served workload (inbound) and per called service and route
 * (outbound), read from a real `startTelemetry()` Prometheus endpoint after real calls between
 * two meshes on 127.0.0.1; and `histogram_quantile` as Prometheus computes it.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { histogramQuantile, parseSamples, type Sample } from '../../src/cli/prometheus-text.ts';
import { statRows } from '../../src/cli/commands/stat.ts';
import { startTelemetry } from '../../src/telemetry/sdk/index.ts';
import { meshletAsync } from './helpers.ts';

describe('histogram_quantile, as Prometheus computes it', () => {
  const buckets = new Map([
    [5, 10],
    [10, 20],
    [Number.POSITIVE_INFINITY, 20],
  ]);
  it('interpolates inside the bucket the rank falls in, from 0 for the first', () => {
    assert.equal(histogramQuantile(0.5, buckets), 5);
    assert.equal(histogramQuantile(0.25, buckets), 2.5);
    assert.equal(histogramQuantile(0.75, buckets), 7.5);
  });
  it('gives the highest finite bound for a rank in +Inf, and nothing without observations', () => {
    assert.equal(histogramQuantile(0.99, new Map([[5, 10], [Number.POSITIVE_INFINITY, 20]])), 5);
    assert.equal(histogramQuantile(0.5, new Map([[5, 0], [Number.POSITIVE_INFINITY, 0]])), undefined);
  });
  it('reads samples with escaped label values and skips other metrics and comments', () => {
    const text = '# HELP x\nistio_requests_total{a="x\\"y",le="+Inf"} 3\nother_total{} 1\nistio_requests_total 2 1700000000\n';
    assert.deepEqual(parseSamples(text, new Set(['istio_requests_total'])), [
      { name: 'istio_requests_total', labels: { a: 'x"y', le: '+Inf' }, value: 3 },
      { name: 'istio_requests_total', labels: {}, value: 2 },
    ]);
  });
});

describe('the rows, as Prometheus and Linkerd count them', () => {
  const req = (labels: Record<string, string>, value: number): Sample => ({
    name: 'istio_requests_total',
    labels: { reporter: 'source', source_workload: 'fe', source_workload_namespace: 'a', response_code: '200', ...labels },
    value,
  });
  it('a counter lower than at the first scrape was reset and counts from 0, as increase() does', () => {
    const svc = { destination_service: 'web.a.svc.cluster.local', destination_service_name: 'web', destination_service_namespace: 'a' };
    const rows = statRows([req(svc, 30)], [req(svc, 100)], 10, false);
    assert.deepEqual(rows.map((r) => [r.peer, r.requests, r.rps]), [['a/web', 30, 3]]);
  });
  it('two services of one short name in two namespaces are two rows', () => {
    const rows = statRows(
      [
        req({ destination_service: 'reviews.a.svc.cluster.local', destination_service_name: 'reviews', destination_service_namespace: 'a' }, 4),
        req({ destination_service: 'reviews.b.svc.cluster.local', destination_service_name: 'reviews', destination_service_namespace: 'b' }, 6),
      ],
      undefined,
      undefined,
      false,
    );
    assert.deepEqual(rows.map((r) => [r.peer, r.requests]), [['a/reviews', 4], ['b/reviews', 6]]);
  });
  it('a gRPC status other than OK and no response at all (response_code 0) fail, as Linkerd counts them', () => {
    const svc = { destination_service: 'api.a.svc.cluster.local', destination_service_name: 'api', destination_service_namespace: 'a' };
    const rows = statRows([req({ ...svc, grpc_response_status: '0' }, 90), req({ ...svc, grpc_response_status: '5' }, 5), req({ ...svc, response_code: '0' }, 5)], undefined, undefined, false);
    assert.equal(rows[0]?.successRate, 90);
  });
  it('histogram_quantile needs a bucket besides +Inf, and makes counts monotonic first', () => {
    assert.equal(histogramQuantile(0.5, new Map([[Number.POSITIVE_INFINITY, 10]])), undefined);
    // The 10 ms bucket read lower than the 5 ms one (a scrape between two updates): taken as 4, so
    // the median falls in the 20 ms bucket from 4 (not from 2).
    assert.equal(histogramQuantile(0.5, new Map([[5, 4], [10, 2], [20, 10], [Number.POSITIVE_INFINITY, 10]]))?.toFixed(2), '11.67');
  });
});

describe('meshlet stat against a live Prometheus endpoint', () => {
  let telemetry: Awaited<ReturnType<typeof startTelemetry>>;
  let server: Mesh;
  let client: Mesh;
  let url: string;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    res.statusCode = req.url === '/bad' ? 503 : 200;
    res.end();
  };

  before(async () => {
    telemetry = await startTelemetry({ serviceName: 'stat', prometheus: { port: 0, host: '127.0.0.1' } });
    url = `${telemetry.prometheusUrl}/stats/prometheus`;
    server = await createMesh({ service: 'web', namespace: 'shop', config: [] });
    const s = server.createServer(handler).listen(0, '127.0.0.1');
    await new Promise((r) => s.once('listening', r));
    const port = (s.address() as AddressInfo).port;
    const config = [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 8080 }] } },
      { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'web', namespace: 'shop' }, spec: { address: '127.0.0.1', ports: { http: port }, labels: { app: 'web' } } },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'web', namespace: 'shop' },
        spec: { hosts: ['web'], http: [{ name: 'bad', match: [{ uri: { exact: '/bad' } }], route: [{ destination: { host: 'web' } }], retries: { attempts: 0 } }, { name: 'rest', route: [{ destination: { host: 'web' } }] }] },
      },
      {
        apiVersion: 'telemetry.istio.io/v1',
        kind: 'Telemetry',
        metadata: { name: 'routes', namespace: 'istio-system' },
        spec: { metrics: [{ overrides: [{ match: { mode: 'CLIENT' }, tagOverrides: { route_name: { value: 'xds.route_name' } } }] }] },
      },
    ];
    client = await createMesh({ service: 'frontend', namespace: 'shop', config });
    for (let i = 0; i < 6; i++) await (await client.fetch('http://web.shop:8080/ok')).arrayBuffer();
    for (let i = 0; i < 2; i++) await (await client.fetch('http://web.shop:8080/bad')).arrayBuffer();
  });
  after(async () => {
    await client?.close();
    await server?.close();
    await telemetry?.shutdown();
  });

  it('prints the success rate and requests per workload and called service, and per route with --by route', async () => {
    const r = await meshletAsync(['stat', url]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^DIRECTION +WORKLOAD +TO +REQUESTS +SUCCESS +RPS +P50 +P95 +P99$/m);
    assert.match(r.stdout, /^inbound +shop\/web +- +8 +75\.00% +- +[\d.]+ms +[\d.]+ms +[\d.]+ms$/m);
    assert.match(r.stdout, /^outbound +shop\/frontend +shop\/web +8 +75\.00% +- /m);
    const routes = await meshletAsync(['stat', url, '--by', 'route', '-o', 'json']);
    assert.equal(routes.code, 0, routes.stderr);
    const doc = JSON.parse(routes.stdout) as { rows: { direction: string; route: string; requests: number; successRate: number; rps: null }[] };
    const out = doc.rows.filter((x) => x.direction === 'outbound').map((x) => [x.route, x.requests, x.successRate, x.rps]);
    assert.deepEqual(out, [
      ['web.bad', 2, 0, null],
      ['web.rest', 6, 100, null],
    ]);
  });

  it('with --interval, only the traffic between two scrapes, with requests per second', async () => {
    let done = false;
    const run = meshletAsync(['stat', url, '--interval', '1s', '-o', 'json']).finally(() => {
      done = true;
    });
    // Calls all along, so some fall between the command's two scrapes whenever it makes them.
    let sent = 0;
    while (!done) {
      await (await client.fetch('http://web.shop:8080/ok')).arrayBuffer();
      sent++;
      await new Promise((r) => setTimeout(r, 10));
    }
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { intervalMs: number; rows: { direction: string; requests: number; successRate: number; rps: number }[] };
    assert.equal(doc.intervalMs, 1000);
    const inbound = doc.rows.find((x) => x.direction === 'inbound');
    assert.ok(inbound !== undefined && inbound.requests > 0 && inbound.requests <= sent && inbound.successRate === 100, r.stdout);
    // Per second of the time between the two scrapes: at least the 1 s slept.
    assert.ok(inbound.rps > 0 && inbound.rps <= inbound.requests, r.stdout);
  });

  it('names an unreachable endpoint and a usage mistake', async () => {
    const down = await meshletAsync(['stat', 'http://127.0.0.1:1/stats/prometheus']);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /^meshlet stat: cannot read http:\/\/127\.0\.0\.1:1\/stats\/prometheus: /);
    const bad = await meshletAsync(['stat', url, '--by', 'pod']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--by is workload or route, not "pod"/);
    // Longer than a Node timer can wait (2^31 - 1 ms): it would fire at once.
    const long = await meshletAsync(['stat', url, '--interval', '600h']);
    assert.equal(long.code, 2);
    assert.match(long.stderr, /--interval: must be more than 0 and at most 24h/);
  });
});
