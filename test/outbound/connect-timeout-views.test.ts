/**
 * What users see of a cluster's connect timeout matches what the mesh runs with: istiod writes each
 * cluster's `connect_timeout` from MeshConfig's `connectTimeout` when its DestinationRule sets no
 * `connectionPool.tcp.connectTimeout`, so `meshlet routes` and `meshlet explain` with
 * `--mesh-config`, a mesh's `/config_dump` and `mesh.explain()` show the mesh's value for such a
 * cluster, and the rule's where it sets one. ALLOW_ANY's PassthroughCluster, which istiod builds
 * with the mesh's connect timeout (cluster_builder.go `buildDefaultPassthroughCluster`), shows it too.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { meshlet } from '../cli/helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-cto-views-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

/** `plain.internal`: no DestinationRule connectTimeout; `ruled.internal`: 300ms from its rule; `ext.example`: resolution NONE, 450ms. */
const YAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: plain, namespace: default}
spec:
  hosts: [plain.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: plain, namespace: default}
spec:
  host: plain.internal
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 7}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ruled, namespace: default}
spec:
  hosts: [ruled.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ruled, namespace: default}
spec:
  host: ruled.internal
  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 300ms}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [ext.example]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ext, namespace: default}
spec:
  host: ext.example
  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 450ms}}}
`;
const CONFIG = file('mesh.yaml', YAML);
const MESH_CONFIG = file('mesh-config.yaml', 'connectTimeout: 2s\n');
const PLAIN = 'outbound|8080||plain.internal';
const RULED = 'outbound|8080||ruled.internal';
const EXT = 'outbound|80||ext.example';

interface ClusterJson {
  name: string;
  connectionPool: string;
  settings: { connectionPool: { connectTimeoutMs: number } };
}

/** Each cluster's connect timeout, as the text and as the data. */
function timeouts(clusters: ClusterJson[]): Record<string, [string, number]> {
  return Object.fromEntries(clusters.map((c) => [c.name, [/connect timeout (\S+),/.exec(c.connectionPool)?.[1] ?? '', c.settings.connectionPool.connectTimeoutMs]]));
}

describe('meshlet routes --mesh-config: the connect timeout of each cluster', () => {
  it("a cluster whose DestinationRule sets none shows MeshConfig's connectTimeout (text and JSON); a rule's value still wins", () => {
    const r = meshlet(['routes', CONFIG, '--service', 'client', '--mesh-config', MESH_CONFIG, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(timeouts(JSON.parse(r.stdout).clusters), { [PLAIN]: ['2s', 2000], [RULED]: ['300ms', 300], [EXT]: ['450ms', 450] });
    const text = meshlet(['routes', CONFIG, '--service', 'client', '--mesh-config', MESH_CONFIG]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /outbound\|8080\|\|plain\.internal: 10\.0\.0\.1:8080\n +lb: [^\n]+\n +pool: active 7, pending ∞, connections 7, connect timeout 2s,/);
  });

  it("without --mesh-config: Istio's default 10 s", () => {
    const r = meshlet(['routes', CONFIG, '--service', 'client', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(timeouts(JSON.parse(r.stdout).clusters), { [PLAIN]: ['10s', 10000], [RULED]: ['300ms', 300], [EXT]: ['450ms', 450] });
  });
});

describe('meshlet explain --mesh-config: the connect timeout of the destination', () => {
  it("the connection pool line shows MeshConfig's connectTimeout, or the rule's", () => {
    const plain = meshlet(['explain', CONFIG, '--service', 'client', '--mesh-config', MESH_CONFIG, 'http://plain.internal:8080/']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /connection pool: +active 0\/7, pending 0\/∞, overflows 0, connect timeout 2s\n/);
    const json = meshlet(['explain', CONFIG, '--service', 'client', '--mesh-config', MESH_CONFIG, '-o', 'json', 'http://ext.example/']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).destinations[0].connectionPool, 'active 0/∞, pending 0/∞, overflows 0, connect timeout 450ms');
    const none = meshlet(['explain', CONFIG, '--service', 'client', 'http://plain.internal:8080/']);
    assert.match(none.stdout, /connection pool: +active 0\/7, pending 0\/∞, overflows 0, connect timeout 10s\n/);
  });
});

describe('meshlet explain: the PassthroughCluster of a host outside the mesh (ALLOW_ANY)', () => {
  it("its connection pool line shows the mesh's connect timeout (--mesh-config, else 10s), for HTTP and gRPC, text and JSON", () => {
    const text = meshlet(['explain', CONFIG, '--service', 'client', '--mesh-config', MESH_CONFIG, 'https://example.org/x']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /\nDestinations:\n +example\.org:443 +100% +PassthroughCluster\n +load balancing: +ORIGINAL_DST \(the address the URL names\)\n +connection pool: +no limits, connect timeout 2s\n/);
    const json = meshlet(['explain', CONFIG, '--service', 'client', '-o', 'json', 'http://example.org:8080/x']);
    assert.equal(json.code, 0, json.stderr);
    const d = JSON.parse(json.stdout).destinations;
    assert.deepEqual(
      d.map((x: { host: string; port: number; cluster: string; connectionPool: string }) => [x.host, x.port, x.cluster, x.connectionPool]),
      [['example.org', 8080, 'PassthroughCluster', 'no limits, connect timeout 10s']],
    );
    const grpc = meshlet(['explain', CONFIG, '--service', 'client', '--mesh-config', MESH_CONFIG, 'grpc://example.org:9090/pkg.Svc/Get']);
    assert.equal(grpc.code, 0, grpc.stderr);
    assert.match(grpc.stdout, /\n +example\.org:9090 +100% +PassthroughCluster\n +load balancing: [^\n]+\n +connection pool: +no limits, connect timeout 2s\n/);
  });

  it('REGISTRY_ONLY: no destination (the call gets 502 from the BlackHoleCluster)', () => {
    const mc = file('registry-only.yaml', 'outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n');
    const json = meshlet(['explain', CONFIG, '--service', 'client', '--mesh-config', mc, '-o', 'json', 'http://example.org/x']);
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout);
    assert.equal(doc.outcome, 'registry-only');
    assert.deepEqual(doc.destinations, []);
  });
});

describe("a mesh's own views: /config_dump and mesh.explain()", () => {
  function get(url: string): Promise<string> {
    return new Promise((resolve, reject) => {
      request(url, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve(body));
      })
        .on('error', reject)
        .end();
    });
  }

  for (const [name, options] of [
    ['createMesh({ connectTimeoutMs: 2000 })', { connectTimeoutMs: 2000 }],
    ['meshConfig `connectTimeout: 2s`', { meshConfig: 'connectTimeout: 2s\n' }],
  ] as const) {
    it(`${name}: /config_dump and mesh.explain() show 2s for a cluster whose DestinationRule sets none`, async () => {
      const mesh = await createMesh({ service: 'client', config: [CONFIG], admin: { port: 0 }, watch: false, logger: { warn: () => undefined, info: () => undefined }, ...options });
      try {
        const dump = JSON.parse(await get(`${mesh.adminUrl}/config_dump`));
        assert.deepEqual(timeouts(dump.clusters), { [PLAIN]: ['2s', 2000], [RULED]: ['300ms', 300], [EXT]: ['450ms', 450] });
        assert.match(mesh.explain({ url: 'http://plain.internal:8080/' }).targets[0]?.connectionPool ?? '', /, connect timeout 2s$/);
        assert.match(mesh.explain({ url: 'http://ruled.internal:8080/' }).targets[0]?.connectionPool ?? '', /, connect timeout 300ms$/);
        const pass = mesh.explain({ url: 'http://example.org/' });
        assert.equal(pass.outcome, 'passthrough');
        assert.deepEqual(
          pass.targets.map((t) => [t.destination, t.cluster, t.connectionPool]),
          [['example.org:80', 'PassthroughCluster', 'no limits, connect timeout 2s']],
        );
        assert.match(String(pass), /→ example\.org:80 100% \[PassthroughCluster\]\n +lb: ORIGINAL_DST[^\n]*\n +pool: no limits, connect timeout 2s/);
      } finally {
        await mesh.close();
      }
    });
  }
});
