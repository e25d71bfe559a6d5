/**
 * The connect timeout of every HTTP connection the mesh opens is the cluster's, as istiod writes
 * each cluster's `connect_timeout` (the DestinationRule's `tcp.connectTimeout`, else MeshConfig's
 * `connectTimeout`), a TLS connect's timed on the mesh clock: a ServiceEntry with resolution NONE (istiod's
 * ORIGINAL_DST cluster, to which the rule's connection pool applies) with and without the rule's
 * TLS, an `https://` URL (the app's own TLS) to a mesh endpoint, with and without `tcpKeepalive`,
 * and ALLOW_ANY's PassthroughCluster (the mesh's). Each upstream accepts TCP and never answers the
 * TLS handshake; the call fails 503 UF, `connection timeout`, at the timeout and not 1 ms before.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { formatDuration } from '../../src/config/duration.ts';
import { createMesh, ManualClock, type MeshOptions } from '../../src/index.ts';
import { blackhole, endsAtConnectTimeout } from '../helpers/blackhole.ts';
import { call, destinationRule, serviceEntry, virtualService } from '../helpers/upstreams.ts';

const HOST = 'slow.default.svc.cluster.local';
const BODY = 'upstream connect error or disconnect/reset before headers. reset reason: connection timeout';
/** No retries, so that the call ends at the first connect timeout (Istio's default retries connect-failure). */
const noRetries = (host: string) => virtualService(host.split('.')[0] as string, [host], [{ route: [{ destination: { host } }], retries: { attempts: 0 } }]);
/** A ServiceEntry with resolution NONE for `localhost` on the blackhole's port (calls go to the address the URL names). */
const none = (port: number) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'ext', namespace: 'default' },
  spec: { hosts: ['localhost'], location: 'MESH_EXTERNAL', resolution: 'NONE', ports: [{ number: port, name: 'http', protocol: 'HTTP' }] },
});
const endpointCluster = (port: number, policy: Record<string, unknown>) => [serviceEntry('slow', HOST, 80, [{ port }]), destinationRule('slow', HOST, { trafficPolicy: policy }), noRetries(HOST)];
const noneCluster = (port: number, policy: Record<string, unknown>) => [none(port), destinationRule('ext', 'localhost', { trafficPolicy: policy }), noRetries('localhost')];

type Row = [name: string, config: (port: number) => object[], url: (port: number) => string, timeoutMs: number, meshOptions: Partial<MeshOptions>];
const ROWS: Row[] = [
  ['https:// URL to a mesh endpoint, no DestinationRule connectTimeout: the mesh’s (1800 ms)', (p) => endpointCluster(p, { loadBalancer: { simple: 'ROUND_ROBIN' } }), () => `https://${HOST}/`, 1800, { connectTimeoutMs: 1800 }],
  ['https:// URL to a mesh endpoint with tcpKeepalive: the DestinationRule’s connectTimeout (350ms)', (p) => endpointCluster(p, { connectionPool: { tcp: { connectTimeout: '350ms', tcpKeepalive: { time: '30s' } } } }), () => `https://${HOST}/`, 350, { connectTimeoutMs: 4000 }],
  ['https:// URL to a mesh endpoint with tcpKeepalive, no connectTimeout: the mesh’s (1300 ms)', (p) => endpointCluster(p, { connectionPool: { tcp: { tcpKeepalive: { time: '30s' } } } }), () => `https://${HOST}/`, 1300, { connectTimeoutMs: 1300 }],
  ['resolution NONE, no TLS (https:// URL): the DestinationRule’s connectTimeout (250ms), not the mesh’s', (p) => noneCluster(p, { connectionPool: { tcp: { connectTimeout: '250ms' } } }), (p) => `https://localhost:${p}/`, 250, { connectTimeoutMs: 4000 }],
  ['resolution NONE, no TLS, no connectTimeout: the mesh’s (1500 ms)', (p) => noneCluster(p, { connectionPool: { tcp: { maxConnections: 5 } } }), (p) => `https://localhost:${p}/`, 1500, { connectTimeoutMs: 1500 }],
  ['resolution NONE with the DestinationRule’s TLS (SIMPLE): its connectTimeout (300ms)', (p) => noneCluster(p, { connectionPool: { tcp: { connectTimeout: '300ms' } }, tls: { mode: 'SIMPLE', sni: 'ext.example' } }), (p) => `http://localhost:${p}/`, 300, { connectTimeoutMs: 4000 }],
  ['resolution NONE with the DestinationRule’s TLS (SIMPLE), no connectTimeout: the mesh’s (2500 ms), not 10 s', (p) => noneCluster(p, { tls: { mode: 'SIMPLE', sni: 'ext.example' } }), (p) => `http://localhost:${p}/`, 2500, { connectTimeoutMs: 2500 }],
  ['ALLOW_ANY PassthroughCluster (https:// URL outside the registry): the mesh’s (700 ms)', () => [], (p) => `https://127.0.0.1:${p}/`, 700, { connectTimeoutMs: 700 }],
  ['ALLOW_ANY PassthroughCluster, meshConfig `connectTimeout: 2s`', () => [], (p) => `https://127.0.0.1:${p}/`, 2000, { meshConfig: 'connectTimeout: 2s\n' }],
];

describe('HTTP connect timeouts of passthrough clusters and the app’s own TLS, on the mesh clock', () => {
  const open: { close(): unknown }[] = [];
  after(async () => {
    for (const o of open.reverse()) await o.close();
  });

  for (const [name, config, url, timeoutMs, meshOptions] of ROWS) {
    it(`${name}: 503 UF at the connect timeout`, async () => {
      const h = await blackhole();
      open.push(h);
      const clock = new ManualClock(1_000_000);
      const mesh = await createMesh({ service: 'client', clock, logger: { warn: () => undefined, info: () => undefined }, config: config(h.port), ...meshOptions });
      open.push(mesh);
      const r = await endsAtConnectTimeout(h, clock, timeoutMs, () => call(mesh, url(h.port)));
      assert.equal(r.status, 503);
      assert.equal(r.flags, 'UF');
      assert.equal(r.body, BODY);
      assert.equal(h.sockets.length, 1);
      // What explain shows is what the call got (the PassthroughCluster's too).
      const target = mesh.explain({ url: url(h.port) }).targets[0];
      assert.match(target?.connectionPool ?? '', new RegExp(`, connect timeout ${formatDuration(timeoutMs).replace('.', '\\.')}(, TCP keepalive \\(.*\\))?$`));
    });
  }
});
