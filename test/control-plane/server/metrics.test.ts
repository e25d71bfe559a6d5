/**
 * The control plane's own `/metrics` (docs/control-plane.md): scraped with a real HTTP client and
 * parsed with a strict exposition parser (every line checked), and with Prometheus's own
 * `promtool check metrics` when it is installed. Real meshes watch, ACK, NACK, register and get
 * certificates; a config change is pushed and ACKed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../../src/index.ts';
import { type ControlPlane, startControlPlane } from '../../../src/control-plane-server/server.ts';
import { ControlPlaneMetrics } from '../../../src/control-plane-server/metrics/control-plane-metrics.ts';
import type { ConfigStore, RegistryStore } from '../../../src/control-plane-server/store.ts';
import { sdk } from '../../helpers/metric-reader.ts';
import { type Family, parseExposition, sampleValue } from '../../helpers/prometheus-text.ts';
import { serviceEntry, virtualService } from '../../helpers/upstreams.ts';
import { quietLogger, until, waitFor } from '../client-helpers.ts';

const PROMTOOL = (process.env['PATH'] ?? '').split(delimiter).map((d) => join(d, 'promtool')).find((p) => existsSync(p));

/** What promtool may say about this exposition: istiod's names keep istiod's (no `_total`). */
const ACCEPTED_LINT = /^(pilot_xds_pushes|pilot_push_triggers|pilot_total_xds_rejects|citadel_server_\w+) (counter metrics should have "_total" suffix|non-histogram and non-summary metrics should not have "_count" suffix)$/;

/** GET /metrics with no token; the page parsed strictly (and by promtool when installed). */
async function scrape(url: string): Promise<Map<string, Family>> {
  const res = await request(`${url}/metrics`, { reset: true });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, text);
  assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  const families = parseExposition(text);
  if (PROMTOOL !== undefined) {
    const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    const problems = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '');
    assert.doesNotMatch(problems.join('\n'), /error while linting|parsing error/, 'promtool parses it');
    for (const p of problems) assert.match(p, ACCEPTED_LINT, `promtool: ${p}`);
  }
  return families;
}

const v = (f: Map<string, Family>, name: string, labels: Record<string, string> = {}) => sampleValue(f, name, labels);

let dir: string;
let cp: ControlPlane;
const meshes: Mesh[] = [];

async function writeConfig(name: string, resources: object[]): Promise<void> {
  await writeFile(join(dir, 'config', `${name}.json`), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: resources }));
}

const route = (dest: string) => virtualService('svc', ['svc.example'], [{ route: [{ destination: { host: dest } }] }]);
const entries = () => [
  serviceEntry('a', 'a.example', 80, [{ port: 1 }]),
  serviceEntry('b', 'b.example', 80, [{ port: 2 }]),
  { ...(serviceEntry('svc', 'svc.example', 80, []) as { spec: object }), spec: { hosts: ['svc.example'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], workloadSelector: { labels: { app: 'svc' } } } },
];

describe("the control plane's /metrics", () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-cp-metrics-'));
    await mkdir(join(dir, 'config'));
    await writeConfig('se', entries());
    await writeConfig('vs', [route('a.example')]);
    // The server does not analyze: it serves what a mesh with blocking analysis NACKs.
    cp = await startControlPlane({ configDir: join(dir, 'config'), dataDir: join(dir, 'data'), host: '127.0.0.1', port: 0, monitoringPort: 0, logger: quietLogger, analysis: 'off' });
  });

  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await cp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('served without a token (the API asks one), on the API port and the monitoring port; the monitoring port serves nothing else', async () => {
    assert.equal((await request(`${cp.url}/status`, { reset: true })).statusCode, 401, 'the API needs a token');
    const f = await scrape(cp.url);
    assert.ok(cp.monitoringUrl !== undefined);
    const g = await scrape(cp.monitoringUrl);
    assert.deepEqual([...g.keys()], [...f.keys()], 'the same families on both ports');
    for (const path of ['/status', '/v1/watch', '/v1/certificates']) assert.equal((await request(`${cp.monitoringUrl}${path}`, { reset: true })).statusCode, 404, path);
    assert.equal((await request(`${cp.monitoringUrl}/healthz`, { reset: true })).statusCode, 200);
    const post = await request(`${cp.url}/metrics`, { method: 'POST', reset: true });
    await post.body.dump();
    assert.equal(post.statusCode, 405);
    const head = await request(`${cp.url}/metrics`, { method: 'HEAD', reset: true });
    assert.equal(head.statusCode, 200);
    assert.equal(await head.body.text(), '');
  });

  test('before any workload: nothing pushed, no watcher, the config by kind and version, the CA expiry', async () => {
    // The scrape reads the wall clock once for the time left: somewhere between these two reads.
    const scrapeStart = Date.now();
    const f = await scrape(cp.url);
    const scrapeEnd = Date.now();
    for (const type of ['config', 'endpoints', 'endpoints-delta', 'trust-bundle', 'mesh-config']) assert.equal(v(f, 'pilot_xds_pushes', { type }), 0, type);
    for (const type of ['config', 'endpoint', 'global']) assert.equal(v(f, 'pilot_push_triggers', { type }), 0, type);
    assert.equal(v(f, 'pilot_xds'), 0);
    assert.equal(v(f, 'meshlet_control_plane_config_resources', { kind: 'ServiceEntry' }), 3);
    assert.equal(v(f, 'meshlet_control_plane_config_resources', { kind: 'VirtualService' }), 1);
    assert.equal(v(f, 'meshlet_control_plane_config_resources', { kind: 'AuthorizationPolicy' }), 0, 'every kind, 0 when none');
    assert.equal(v(f, 'pilot_services'), 3);
    assert.equal(v(f, 'pilot_virt_services'), 1);
    // istiod's build info, which Istio's Grafana "Pilot Versions" panel reads (sum by (tag) (istio_build{component="pilot"})).
    const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(v(f, 'istio_build', { component: 'pilot', tag: pkg.version }), 1);
    assert.equal(f.get('istio_build')?.type, 'gauge');
    assert.equal(v(f, 'meshlet_control_plane_config_version'), Number.parseInt(cp.status().configVersion, 16));
    assert.equal(v(f, 'meshlet_control_plane_registered_workloads'), 0);
    assert.equal(v(f, 'citadel_server_csr_count'), 0);
    const info = cp.ca.info();
    assert.equal(v(f, 'citadel_server_root_cert_expiry_timestamp'), Date.parse(info.roots[0]?.notAfter ?? '') / 1000);
    assert.equal(v(f, 'citadel_server_cert_chain_expiry_timestamp'), Date.parse(info.signer.notAfter) / 1000);
    const leftMs = Math.round((v(f, 'citadel_server_root_cert_expiry_seconds') as number) * 1000);
    const rootEnd = Date.parse(info.roots[0]?.notAfter ?? '');
    assert.ok(leftMs > 0 && leftMs >= rootEnd - scrapeEnd && leftMs <= rootEnd - scrapeStart, `root expires in ${leftMs} ms, scraped ${rootEnd - scrapeEnd}..${rootEnd - scrapeStart} ms before it`);
    assert.equal(f.get('pilot_proxy_convergence_time')?.type, 'histogram');
  });

  test('a mesh connects (certificate, config, endpoints, trust bundle, ACKs), a change is pushed and ACKed, a workload registers', async () => {
    const token = await cp.mintToken({ service: 'productpage', namespace: 'default' });
    const own = sdk();
    const mesh = await createMesh({ service: 'productpage', controlPlane: cp.url, token, logger: quietLogger, telemetry: { ownMetrics: { meterProvider: own.provider } } });
    meshes.push(mesh);
    await until(() => cp.status().workloads.some((w) => w.acked.config !== undefined && w.acked.endpoints !== undefined), 'the ACKs');
    let f = await scrape(cp.url);
    assert.equal(v(f, 'pilot_xds'), 1);
    assert.equal(v(f, 'pilot_xds_pushes', { type: 'config' }), 1);
    assert.equal(v(f, 'pilot_xds_pushes', { type: 'endpoints' }), 1);
    assert.equal(v(f, 'pilot_xds_pushes', { type: 'trust-bundle' }), 1);
    assert.equal(v(f, 'pilot_xds_pushes', { type: 'mesh-config' }), 1, 'the MeshConfig ({} without --mesh-config) each stream gets after hello');
    assert.equal(v(f, 'pilot_xds_config_size_bytes_count', { type: 'config' }), 1);
    assert.equal(v(f, 'pilot_xds_config_size_bytes_count', { type: 'mesh-config' }), undefined, 'a MeshConfig is not config: not sized');
    assert.ok((v(f, 'pilot_xds_config_size_bytes_sum', { type: 'config' }) as number) > 100, 'the config event has its bytes');
    assert.equal(v(f, 'meshlet_control_plane_acks_total', { type: 'config', status: 'ACK' }), 1);
    assert.equal(v(f, 'meshlet_control_plane_acks_total', { type: 'endpoints', status: 'ACK' }), 1);
    assert.equal(v(f, 'pilot_proxy_convergence_time_count'), undefined, 'the first config of a stream is not a change reaching it');
    assert.equal(v(f, 'pilot_push_triggers', { type: 'config' }), 0, "a stream's first events are no push trigger (istiod sends them outside its push queue)");
    assert.equal(v(f, 'meshlet_control_plane_propagation_seconds_count', { type: 'config' }), undefined);
    assert.equal(v(f, 'citadel_server_csr_count'), 1, "the mesh's certificate");
    assert.equal(v(f, 'citadel_server_success_cert_issuance_count'), 1);
    assert.equal(v(f, 'meshlet_control_plane_certificate_issuance_seconds_count'), 1);

    const before = mesh.configVersion;
    const changed = waitFor<{ version: string }>(mesh, 'config', (e) => e.version !== before);
    await writeConfig('vs', [route('b.example')]);
    const after = (await changed).version;
    await until(() => cp.status().workloads.some((w) => w.acked.config?.version === after), 'the ACK of the change');
    f = await scrape(cp.url);
    assert.equal(v(f, 'meshlet_control_plane_config_changes_total'), 1);
    assert.equal(v(f, 'pilot_xds_pushes', { type: 'config' }), 2);
    assert.equal(v(f, 'pilot_proxy_convergence_time_count'), 1, 'the change was written to the one stream');
    assert.equal(v(f, 'pilot_push_triggers', { type: 'config' }), 1, 'a config push to the one stream (istiod: ConfigUpdate)');
    assert.equal(v(f, 'meshlet_control_plane_propagation_seconds_count', { type: 'config' }), 1, 'and ACKed');
    assert.equal(v(f, 'meshlet_control_plane_propagation_seconds_bucket', { type: 'config', le: '+Inf' }), 1);
    assert.equal(v(f, 'meshlet_control_plane_acks_total', { type: 'config', status: 'ACK' }), 2);
    assert.equal(v(f, 'meshlet_control_plane_config_version'), Number.parseInt(after, 16));
    // The mesh's own metrics say the same version, from the control plane: the cross-check docs/control-plane.md queries.
    assert.equal(await own.value('meshlet_config_version', { mesh_service: 'productpage' }), v(f, 'meshlet_control_plane_config_version'));
    assert.equal(await own.value('meshlet_config_source', { source: 'control-plane' }), 1);
    assert.equal(await own.value('meshlet_config_applied_total', { source: 'control-plane' }), 2);
    await own.shutdown();

    const svcToken = await cp.mintToken({ service: 'svc', namespace: 'default' });
    const svc = await createMesh({ service: 'svc', labels: { app: 'svc' }, controlPlane: cp.url, token: svcToken, identity: 'none', logger: quietLogger });
    meshes.push(svc);
    const endpointsBefore = cp.status().workloads.find((w) => w.service === 'productpage')?.acked.endpoints?.version;
    await svc.register({ ports: { http: 9080, metrics: 9090 }, address: '127.0.0.1' });
    await until(() => {
      const acked = cp.status().workloads.find((w) => w.service === 'productpage')?.acked.endpoints?.version;
      return acked !== undefined && acked !== endpointsBefore;
    }, 'productpage to ACK the new endpoints');
    f = await scrape(cp.url);
    assert.equal(v(f, 'pilot_xds'), 2);
    assert.equal(v(f, 'meshlet_control_plane_registered_workloads'), 1);
    assert.equal(v(f, 'meshlet_control_plane_registered_endpoints'), 2, 'one address, two ports');
    assert.equal(v(f, 'meshlet_control_plane_registered_services'), 1);
    const pushed = (v(f, 'pilot_xds_pushes', { type: 'endpoints' }) as number) + (v(f, 'pilot_xds_pushes', { type: 'endpoints-delta' }) as number);
    assert.equal(pushed, 4, "each stream's first endpoints, then the registration to both");
    assert.equal(v(f, 'pilot_push_triggers', { type: 'endpoint' }), 2, 'the registration pushed to both streams (istiod: EndpointUpdate)');
    assert.equal(v(f, 'meshlet_control_plane_propagation_seconds_count', { type: 'endpoints' }), 2, 'both watchers ACKed the registration');
    assert.equal(v(f, 'citadel_server_csr_count'), 1, 'identity none asks no certificate');
  });

  test('a NACK is counted as istiod counts it (pilot_total_xds_rejects)', async () => {
    const token = await cp.mintToken({ service: 'strict', namespace: 'default' });
    const strict = await createMesh({ service: 'strict', controlPlane: cp.url, token, analysis: 'blocking', identity: 'none', logger: quietLogger });
    meshes.push(strict);
    const rejected = waitFor(strict, 'rejected');
    await writeConfig('vs', [virtualService('svc', ['svc.example'], [{ route: [{ destination: { host: 'a.example', subset: 'v9' } }] }])]);
    await rejected;
    await until(() => cp.status().workloads.some((w) => w.nacked !== undefined), 'the NACK');
    const f = await scrape(cp.url);
    assert.equal(v(f, 'pilot_total_xds_rejects', { type: 'config' }), 1);
    assert.equal(v(f, 'meshlet_control_plane_acks_total', { type: 'config', status: 'NACK' }), 1);
    assert.equal(v(f, 'pilot_total_xds_rejects', { type: 'endpoints' }), 0);
  });

  test("a MeshConfig change is a push to every stream, timed as istiod times the full push it makes (pilot_xds_pushes{type=\"mesh-config\"}, pilot_proxy_convergence_time)", async () => {
    const f0 = await scrape(cp.url);
    const streams = v(f0, 'pilot_xds') as number;
    assert.ok(streams >= 2, `${streams} meshes watching`);
    const pushes = v(f0, 'pilot_xds_pushes', { type: 'mesh-config' }) as number;
    const converged = (v(f0, 'pilot_proxy_convergence_time_count') ?? 0) as number;
    const globals = v(f0, 'pilot_push_triggers', { type: 'global' }) as number;
    const compiled = meshes.map((m) => m.snapshot);
    cp.setMeshConfig({ connectTimeout: '3s' }, 'metrics-mesh.yaml');
    // Every mesh, the one with its own telemetry.ownMetrics.meterProvider too.
    await until(() => meshes.every((m, i) => m.snapshot !== compiled[i]), 'every mesh compiled again for the new MeshConfig');
    const f = await scrape(cp.url);
    assert.equal(v(f, 'pilot_xds_pushes', { type: 'mesh-config' }), pushes + streams);
    assert.equal(v(f, 'pilot_proxy_convergence_time_count'), converged + streams);
    assert.equal(v(f, 'pilot_push_triggers', { type: 'global' }), globals + streams, 'a MeshConfig change is a global push to every stream (istiod: GlobalUpdate, bootstrap/server.go initMeshHandlers)');
    cp.setMeshConfig({ connectTimeout: '3s' }, 'metrics-mesh.yaml');
    assert.equal(v(await scrape(cp.url), 'pilot_xds_pushes', { type: 'mesh-config' }), pushes + streams, 'the same MeshConfig again is no push');
  });

  test('certificate requests refused: no token (authentication), another identity (authentication), a CSR that does not parse (parsing)', async () => {
    const f0 = await scrape(cp.url);
    const csr = (n: string) => v(f0, n) as number;
    const post = async (body: unknown, token?: string) => {
      const res = await request(`${cp.url}/v1/certificates`, {
        method: 'POST',
        reset: true,
        headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
        body: JSON.stringify(body),
      });
      await res.body.dump();
      return res.statusCode;
    };
    const workload = await cp.mintToken({ service: 'productpage', namespace: 'default' });
    assert.equal(await post({ csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' }), 401);
    assert.equal(await post({ csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', namespace: 'other' }, workload), 403);
    assert.equal(await post({ csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' }, workload), 400);
    assert.equal(await post({ csr: 'not a csr' }, workload), 400);
    const f = await scrape(cp.url);
    assert.equal(v(f, 'citadel_server_csr_count'), csr('citadel_server_csr_count') + 4);
    assert.equal(v(f, 'citadel_server_authentication_failure_count'), csr('citadel_server_authentication_failure_count') + 2);
    assert.equal(v(f, 'citadel_server_csr_parsing_err_count'), csr('citadel_server_csr_parsing_err_count') + 2);
    assert.equal(v(f, 'citadel_server_csr_sign_err_count'), 0);
    assert.equal(v(f, 'citadel_server_success_cert_issuance_count'), csr('citadel_server_success_cert_issuance_count'));
  });
});

describe('ControlPlaneMetrics: what counts as a propagation (injected clock)', () => {
  test('an ACK of a version that changed while the stream was open is observed with its delay; a version the stream opened with, a NACK and an unknown version are not', () => {
    let now = 1000;
    const store = { current: () => ({ version: 'abc', resources: [], findings: [] }) } as unknown as ConfigStore;
    const registry = { list: () => [] } as unknown as RegistryStore;
    const m = new ControlPlaneMetrics({ store, registry, watchers: () => 0, ca: () => ({ roots: [], signer: { notAfter: new Date(0).toISOString() } }) as never }, { now: () => now });
    m.opened('c1');
    now = 2000;
    const at = m.configChanged('v2');
    m.pushed('config', 10, at);
    m.pushed('trust-bundle', 5, at); // a root rotation is not config convergence
    now = 2600;
    m.acked('c1', 'config', 'v2', 'ACK');
    now = 3000;
    m.opened('c2'); // after the change: its v2 came with its opening
    m.acked('c2', 'config', 'v2', 'ACK');
    m.acked('c1', 'config', 'v9', 'ACK');
    m.acked('c1', 'config', 'v2', 'NACK');
    m.closed('c1');
    m.acked('c1', 'config', 'v2', 'ACK');
    const f = parseExposition(m.expose());
    assert.equal(v(f, 'meshlet_control_plane_propagation_seconds_count', { type: 'config' }), 1);
    assert.equal(v(f, 'meshlet_control_plane_propagation_seconds_sum', { type: 'config' }), 0.6);
    assert.equal(v(f, 'meshlet_control_plane_propagation_seconds_bucket', { type: 'config', le: '0.5' }), 0);
    assert.equal(v(f, 'meshlet_control_plane_propagation_seconds_bucket', { type: 'config', le: '1' }), 1);
    assert.equal(v(f, 'pilot_proxy_convergence_time_sum'), 0);
    assert.equal(v(f, 'pilot_proxy_convergence_time_count'), 1);
    assert.equal(v(f, 'pilot_xds_pushes', { type: 'trust-bundle' }), 1);
    assert.equal(v(f, 'pilot_xds_config_size_bytes_count', { type: 'config' }), 1);
    assert.equal(v(f, 'meshlet_control_plane_acks_total', { type: 'config', status: 'ACK' }), 4);
    assert.equal(v(f, 'pilot_total_xds_rejects', { type: 'config' }), 1);
    assert.deepEqual([...f.keys()].filter((k) => k.startsWith('citadel_server_root')), ['citadel_server_root_cert_expiry_timestamp', 'citadel_server_root_cert_expiry_seconds']);
    assert.equal(v(f, 'citadel_server_root_cert_expiry_timestamp'), undefined, 'no root: no sample');
  });
});
