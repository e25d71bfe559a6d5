/**
 * Istio's Sidecar applied by a mesh, end to end over real loopback upstreams: egress scoping
 * (hosts, listener ports, workloadSelector over the namespace default), the Sidecar's
 * outboundTrafficPolicy (ALLOW_ANY passes an out-of-scope host through, REGISTRY_ONLY answers
 * 502, egressProxy sends it to the egress proxy), reloads that add and remove a Sidecar, the gRPC
 * client, and what mesh.explain() says.
 *
 * A call names the out-of-scope service in its Host header and the URL names a real loopback
 * upstream, so "passes through" is observable: routed, it reaches the service's endpoint;
 * passed through, the address in the URL.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh, type MeshOptions } from '../../src/index.ts';
import { type Echo, EchoClient, grpc, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { call, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const NET = 'networking.istio.io/v1';
const RATINGS = 'ratings.other.svc.cluster.local';

const inNamespace = (o: object, namespace: string) => ({ ...o, metadata: { ...(o as { metadata: object }).metadata, namespace } });
const sidecar = (name: string, spec: object, namespace = 'default') => ({ apiVersion: NET, kind: 'Sidecar', metadata: { name, namespace }, spec });

describe('Sidecar egress scoping through real upstreams', () => {
  let reviews: Upstream;
  let reviews2: Upstream;
  let ratings: Upstream;
  let direct: Upstream;
  let gateway: Upstream;
  const meshes: Mesh[] = [];
  before(async () => {
    reviews = await startUpstream('reviews');
    reviews2 = await startUpstream('reviews-9090');
    ratings = await startUpstream('ratings');
    direct = await startUpstream('direct');
    gateway = await startUpstream('egress-gateway');
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all([reviews, reviews2, ratings, direct, gateway].map((u) => u.close()));
  });

  /** reviews (default, ports 9080 and 9090), ratings (namespace other), an egress gateway (istio-system). */
  const services = (): object[] => [
    {
      apiVersion: NET,
      kind: 'ServiceEntry',
      metadata: { name: 'reviews', namespace: 'default' },
      spec: {
        hosts: ['reviews.default.svc.cluster.local'],
        location: 'MESH_INTERNAL',
        resolution: 'STATIC',
        ports: [
          { number: 9080, name: 'http', protocol: 'HTTP' },
          { number: 9090, name: 'http-alt', protocol: 'HTTP' },
        ],
        endpoints: [{ address: '127.0.0.1', ports: { http: reviews.port, 'http-alt': reviews2.port } }],
      },
    },
    inNamespace(serviceEntry('ratings', RATINGS, 9080, [{ port: ratings.port }]), 'other'),
    inNamespace(serviceEntry('egress', 'egress.istio-system.svc.cluster.local', 80, [{ port: gateway.port }]), 'istio-system'),
  ];

  async function mesh(config: object[] | string, o: Partial<MeshOptions> = {}): Promise<Mesh> {
    const m = await createMesh({ service: 'productpage', config, ...o });
    meshes.push(m);
    return m;
  }

  /** A call for ratings.other (Host header) sent to the `direct` upstream's address (the URL). */
  async function ratingsCall(m: Mesh): Promise<{ status: number; upstream: string | null }> {
    const r = await request(`http://127.0.0.1:${direct.port}/r`, { dispatcher: m.dispatcher, headers: { host: 'ratings.other:9080' } });
    await r.body.text();
    return { status: r.statusCode, upstream: (r.headers['x-upstream'] as string | undefined) ?? null };
  }

  it('no Sidecar: another namespace’s service is routed to its endpoints', async () => {
    const m = await mesh(services());
    assert.deepEqual(await ratingsCall(m), { status: 200, upstream: 'ratings' });
    assert.equal(m.snapshot.sidecar, undefined);
  });

  it('`./*` with ALLOW_ANY (the mesh default): a call to another namespace’s service passes through to its own address', async () => {
    const m = await mesh([...services(), sidecar('local', { egress: [{ hosts: ['./*'] }] })]);
    assert.deepEqual(await ratingsCall(m), { status: 200, upstream: 'direct' });
    assert.equal((await call(m, 'http://reviews:9080/')).upstream, 'reviews', 'its own namespace is still routed');
  });

  it('`./*` with the Sidecar’s REGISTRY_ONLY: 502 (BlackHole), nothing sent; mesh.fetch says the same', async () => {
    const m = await mesh([...services(), sidecar('local', { egress: [{ hosts: ['./*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } })]);
    const before = direct.hits + ratings.hits;
    assert.deepEqual(await ratingsCall(m), { status: 502, upstream: null });
    const r = await call(m, 'http://ratings.other:9080/');
    assert.equal(r.status, 502);
    assert.equal(direct.hits + ratings.hits, before);
    assert.equal((await call(m, 'http://reviews:9080/')).upstream, 'reviews');
  });

  it('the Sidecar’s ALLOW_ANY overrides the mesh’s REGISTRY_ONLY, and without a policy the mesh’s applies', async () => {
    const allow = await mesh([...services(), sidecar('local', { egress: [{ hosts: ['./*'] }], outboundTrafficPolicy: { mode: 'ALLOW_ANY' } })], { outboundTrafficPolicy: 'REGISTRY_ONLY' });
    assert.deepEqual(await ratingsCall(allow), { status: 200, upstream: 'direct' });
    const inherit = await mesh([...services(), sidecar('local', { egress: [{ hosts: ['./*'] }] })], { outboundTrafficPolicy: 'REGISTRY_ONLY' });
    assert.equal((await ratingsCall(inherit)).status, 502);
  });

  it("errors: 'throw': an out-of-scope host under REGISTRY_ONLY rejects with MESHLET_ERR_REGISTRY_ONLY naming the Sidecar", async () => {
    const m = await mesh([...services(), sidecar('local', { egress: [{ hosts: ['./*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } })], { errors: 'throw' });
    await assert.rejects(m.fetch('http://ratings.other:9080/'), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'MESHLET_ERR_REGISTRY_ONLY');
      assert.match(e.message, /egress hosts of Sidecar default\/local/);
      return true;
    });
  });

  // sidecar_test.go TestSidecarOutboundTrafficPolicy: MeshConfig's mode (createMesh's option) × the Sidecar's policy.
  // (Istio's rows use an empty Sidecar, which its validation refuses: "without OutboundTrafficPolicy" here has egress */* only.)
  const policyRows: { name: string; mesh: 'ALLOW_ANY' | 'REGISTRY_ONLY' | undefined; sidecar: object | undefined; want: 'ALLOW_ANY' | 'REGISTRY_ONLY' }[] = [
    { name: 'default MeshConfig, no Sidecar', mesh: undefined, sidecar: undefined, want: 'ALLOW_ANY' },
    { name: 'default MeshConfig, sidecar without OutboundTrafficPolicy', mesh: undefined, sidecar: { egress: [{ hosts: ['*/*'] }] }, want: 'ALLOW_ANY' },
    { name: 'default MeshConfig, Sidecar with registry only', mesh: undefined, sidecar: { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }, want: 'REGISTRY_ONLY' },
    { name: 'default MeshConfig, Sidecar with allow any', mesh: undefined, sidecar: { outboundTrafficPolicy: { mode: 'ALLOW_ANY' } }, want: 'ALLOW_ANY' },
    { name: 'MeshConfig registry only, no Sidecar', mesh: 'REGISTRY_ONLY', sidecar: undefined, want: 'REGISTRY_ONLY' },
    { name: 'MeshConfig registry only, sidecar without OutboundTrafficPolicy', mesh: 'REGISTRY_ONLY', sidecar: { egress: [{ hosts: ['*/*'] }] }, want: 'REGISTRY_ONLY' },
    { name: 'MeshConfig registry only, Sidecar with registry only', mesh: 'REGISTRY_ONLY', sidecar: { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }, want: 'REGISTRY_ONLY' },
    { name: 'MeshConfig registry only, Sidecar with allow any', mesh: 'REGISTRY_ONLY', sidecar: { outboundTrafficPolicy: { mode: 'ALLOW_ANY' } }, want: 'ALLOW_ANY' },
    { name: '(proto default) a policy without mode is REGISTRY_ONLY', mesh: undefined, sidecar: { outboundTrafficPolicy: {} }, want: 'REGISTRY_ONLY' },
  ];
  for (const r of policyRows) {
    it(`TestSidecarOutboundTrafficPolicy ${r.name}: a host outside the registry ${r.want === 'ALLOW_ANY' ? 'passes through' : 'gets 502'}`, async () => {
      const m = await mesh([...services(), ...(r.sidecar === undefined ? [] : [sidecar('s', r.sidecar)])], r.mesh === undefined ? {} : { outboundTrafficPolicy: r.mesh });
      const res = await call(m, `http://127.0.0.1:${direct.port}/unknown`);
      assert.deepEqual({ status: res.status, upstream: res.upstream }, r.want === 'ALLOW_ANY' ? { status: 200, upstream: 'direct' } : { status: 502, upstream: null });
    });
  }

  it('an egress listener with a port exposes only that port of the services it imports', async () => {
    const m = await mesh([...services(), sidecar('port', { egress: [{ port: { number: 9080, protocol: 'HTTP', name: 'http' }, hosts: ['*/*'] }] })], { outboundTrafficPolicy: 'REGISTRY_ONLY' });
    assert.equal((await call(m, 'http://reviews:9080/')).upstream, 'reviews');
    const other = await call(m, 'http://reviews:9090/');
    assert.equal(other.status, 502);
    assert.equal(reviews2.hits, 0);
    assert.deepEqual(await ratingsCall(m), { status: 200, upstream: 'ratings' });
  });

  it('a workloadSelector Sidecar beats the namespace default for the workloads it selects', async () => {
    const config = [...services(), sidecar('ns-default', { egress: [{ hosts: ['./*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }), sidecar('wide', { workloadSelector: { labels: { app: 'wide' } }, egress: [{ hosts: ['*/*'] }] })];
    const wide = await mesh(config, { labels: { app: 'wide' } });
    const narrow = await mesh(config, { labels: { app: 'narrow' } });
    assert.deepEqual(await ratingsCall(wide), { status: 200, upstream: 'ratings' });
    assert.equal((await ratingsCall(narrow)).status, 502);
    assert.equal(wide.snapshot.sidecar?.ref, 'Sidecar default/wide');
    assert.equal(narrow.snapshot.sidecar?.ref, 'Sidecar default/ns-default');
    assert.equal(wide.diagnostics().sidecar, 'Sidecar default/wide', 'diagnostics() names the Sidecar that applies');
    assert.equal(narrow.diagnostics().sidecar, 'Sidecar default/ns-default');
  });

  it('a root-namespace Sidecar is the mesh-wide default (the rootNamespace option names it)', async () => {
    const config = [...services(), sidecar('default', { egress: [{ hosts: ['./*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }, 'mesh-root')];
    const m = await mesh(config, { rootNamespace: 'mesh-root' });
    assert.equal((await ratingsCall(m)).status, 502);
    const unaware = await mesh(config);
    assert.equal((await ratingsCall(unaware)).upstream, 'ratings', 'istio-system is the root namespace by default');
  });

  it('egressProxy: a host outside the registry goes to the egress proxy, keeping its Host', async () => {
    const proxy = { host: 'egress.istio-system.svc.cluster.local', port: { number: 80 } };
    const m = await mesh([...services(), sidecar('via-gateway', { egress: [{ hosts: ['./*', 'istio-system/*'] }], outboundTrafficPolicy: { mode: 'ALLOW_ANY', egressProxy: proxy } })]);
    const seen = gateway.seen.length;
    const r = await call(m, 'http://api.external.example/v1/x');
    assert.equal(r.status, 200);
    assert.equal(r.upstream, 'egress-gateway');
    assert.equal(gateway.seen[seen]?.headers.host, 'api.external.example');
    assert.equal(gateway.seen[seen]?.url, '/v1/x');
    // And so does a service the Sidecar leaves out.
    assert.equal((await ratingsCall(m)).upstream, 'egress-gateway');
    const e = m.explain({ url: 'http://api.external.example/' });
    assert.equal(e.outcome, 'routed');
    assert.equal(e.virtualHost, 'allow_any');
    assert.equal(e.targets[0]?.cluster, 'outbound|80||egress.istio-system.svc.cluster.local');
    assert.match(e.notInMesh ?? e.scope ?? '', /api\.external\.example is not in the registry/);
    // A service in the registry the Sidecar leaves out: explain says so, as it does for a call passed through or refused.
    const left = m.explain({ url: 'http://ratings.other:9080/' });
    assert.equal(left.virtualHost, 'allow_any');
    assert.match(left.scope ?? '', /ratings\.other\.svc\.cluster\.local \(namespace other\) is not in the egress hosts of Sidecar default\/via-gateway/);
    assert.match(String(left), /ratings\.other\.svc\.cluster\.local \(namespace other\) is not in the egress hosts/);
  });

  it('an egressProxy the Sidecar does not import: 503 NC, as Envoy with a route to a missing cluster', async () => {
    const m = await mesh([...services(), sidecar('no-gateway', { egress: [{ hosts: ['./*'] }], outboundTrafficPolicy: { mode: 'ALLOW_ANY', egressProxy: { host: 'egress.istio-system.svc.cluster.local', port: { number: 80 } } } })]);
    const r = await call(m, 'http://api.external.example/');
    assert.equal(r.status, 503);
    assert.equal(r.flags, 'NC');
  });

  it('mesh.explain says which Sidecar applies and that its egress hosts leave a host out', async () => {
    const m = await mesh([...services(), sidecar('local', { egress: [{ hosts: ['./*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } })]);
    const e = m.explain({ url: 'http://ratings.other:9080/' });
    assert.equal(e.outcome, 'registry-only');
    assert.equal(e.sidecar, 'Sidecar default/local');
    assert.match(e.scope ?? '', /ratings\.other\.svc\.cluster\.local \(namespace other\) is not in the egress hosts of Sidecar default\/local \(\.\/\*\)/);
    assert.match(String(e), /Sidecar default\/local/);
    const inScope = m.explain({ url: 'http://reviews:9080/' });
    assert.equal(inScope.outcome, 'routed');
    assert.equal(inScope.sidecar, 'Sidecar default/local');
    assert.equal(inScope.scope, undefined);
    const unknown = m.explain({ url: 'http://nowhere.example/' });
    assert.equal(unknown.outcome, 'registry-only');
    assert.match(unknown.scope ?? '', /not in the registry/);
  });

  it('a reload that adds the Sidecar applies on the next call; one that removes it, too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-sidecar-'));
    try {
      const yaml = (docs: object[]) => docs.map((d) => JSON.stringify(d)).join('\n---\n');
      await writeFile(join(dir, 'services.yaml'), yaml(services()));
      const m = await mesh(dir, { watch: false });
      assert.equal((await ratingsCall(m)).upstream, 'ratings');
      assert.equal('sidecar' in m.diagnostics(), false, 'no Sidecar applies');
      await writeFile(join(dir, 'sidecar.yaml'), yaml([sidecar('local', { egress: [{ hosts: ['./*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } })]));
      assert.equal(await m.reload(), true);
      assert.equal((await ratingsCall(m)).status, 502);
      assert.equal(m.diagnostics().sidecar, 'Sidecar default/local');
      await writeFile(join(dir, 'sidecar.yaml'), yaml([sidecar('local', { egress: [{ hosts: ['./*'] }], outboundTrafficPolicy: { mode: 'ALLOW_ANY' } })]));
      assert.equal(await m.reload(), true);
      assert.equal((await ratingsCall(m)).upstream, 'direct');
      await rm(join(dir, 'sidecar.yaml'));
      assert.equal(await m.reload(), true);
      assert.equal((await ratingsCall(m)).upstream, 'ratings');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Sidecar scoping for mesh.grpc.client', () => {
  let up: GrpcUpstream;
  const meshes: Mesh[] = [];
  const clients: Echo[] = [];
  before(async () => {
    up = await startGrpcUpstream('echo-other');
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(meshes.map((m) => m.close()));
    await up.close();
  });
  const config = (extra: object[]) => [inNamespace(grpcServiceEntry('echo', 'echo.other.svc.cluster.local', 9090, [{ port: up.port }]), 'other'), ...extra];

  it('an out-of-scope service under REGISTRY_ONLY: UNAVAILABLE (Envoy’s 502 as gRPC), nothing sent; in scope it is called', async () => {
    const scoped = await createMesh({ service: 'client', config: config([sidecar('local', { egress: [{ hosts: ['./*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } })]) });
    const open = await createMesh({ service: 'client', config: config([sidecar('all', { egress: [{ hosts: ['./*', 'other/*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } })]) });
    meshes.push(scoped, open);
    const refused = scoped.grpc.client(EchoClient, 'echo.other:9090') as unknown as Echo;
    const allowed = open.grpc.client(EchoClient, 'echo.other:9090') as unknown as Echo;
    clients.push(refused, allowed);
    const r = await unary(refused, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(up.hits, 0);
    assert.equal((await unary(allowed, { text: 'y' })).reply?.server, 'echo-other');
    assert.equal(up.hits, 1);
  });
});
