/**
 * WorkloadGroup readiness probes end to end, as Istio runs them for VMs: two reviews instances
 * register through a group with an httpGet probe (each mesh probes its own address, on its own
 * ManualClock), the control plane writes their Healthy conditions, and productpage's calls go
 * only to the instances whose probe passes — none before the first probe, then both, then one
 * while the other answers 500, then both again. Real control plane, real sockets on 127.0.0.1
 * and 127.0.0.2 (one port, as VMs share a port on different addresses).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { createMesh, type Mesh, MeshletError } from '../../src/index.ts';
import { quietLogger, startTestControlPlane, type TestControlPlane, until } from './client-helpers.ts';

const NET = 'networking.istio.io/v1';

interface Instance {
  readonly host: string;
  ready: number;
  probes: number;
  readonly server: Server;
}

function instance(host: string, port: number): Promise<Instance> {
  const i: Instance = {
    host,
    ready: 200,
    probes: 0,
    server: createServer((req, res) => {
      if (req.url === '/ready') {
        i.probes++;
        assert.equal(req.headers['user-agent'], 'istio-probe/1.0');
        res.writeHead(i.ready).end();
        return;
      }
      res.end(host);
    }),
  };
  return new Promise((resolve, reject) => {
    i.server.once('error', reject);
    i.server.listen(port, host, () => resolve(i));
  });
}

let t: TestControlPlane;
let a: Instance;
let b: Instance;
let port: number;
before(async () => {
  a = await instance('127.0.0.1', 0);
  port = (a.server.address() as { port: number }).port;
  b = await instance('127.0.0.2', port);
  t = await startTestControlPlane({
    bookinfo: [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'default' }, spec: { ports: [{ name: 'http', port: 9080 }], selector: { app: 'reviews' } } },
      {
        apiVersion: NET,
        kind: 'WorkloadGroup',
        metadata: { name: 'reviews', namespace: 'default' },
        spec: { template: { ports: { http: port } }, probe: { periodSeconds: 5, httpGet: { path: '/ready', port } } },
      },
      { apiVersion: NET, kind: 'WorkloadGroup', metadata: { name: 'reviews-exec', namespace: 'default' }, spec: { template: { ports: { http: port } }, probe: { exec: { command: ['true'] } } } },
    ],
  });
});
after(async () => {
  await t.close();
  await new Promise((r) => a.server.close(r));
  await new Promise((r) => b.server.close(r));
});

const endpoints = (mesh: Mesh): string[] => (mesh.snapshot.clusters.get('outbound|9080||reviews.default.svc.cluster.local')?.endpoints ?? []).map((e) => e.key).sort();

async function hosts(mesh: Mesh, n: number): Promise<string[]> {
  const seen = new Set<string>();
  for (let k = 0; k < n; k++) {
    const res = await mesh.fetch('http://reviews:9080/');
    seen.add(res.status === 200 ? await res.text() : `${res.status} ${res.headers.get('x-meshlet-response-flags')}`);
  }
  return [...seen].sort();
}

test("productpage's calls go only to instances whose WorkloadGroup probe passes", async () => {
  const token = await t.cp.mintToken({ service: 'reviews', namespace: 'default' });
  const productpage = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'productpage', namespace: 'default' }), logger: quietLogger });
  const ca = new ManualClock(0);
  const cb = new ManualClock(0);
  const warnings: string[] = [];
  const ra = await createMesh({ service: 'reviews', controlPlane: t.cp.url, token, clock: ca, drainMs: 0, identity: 'none', logger: { warn: (m: string) => warnings.push(m), info: () => undefined } });
  const rb = await createMesh({ service: 'reviews', controlPlane: t.cp.url, token, clock: cb, drainMs: 0, identity: 'none', logger: quietLogger });
  try {
    const regA = await ra.register({ group: 'reviews', address: a.host });
    const regB = await rb.register({ group: 'reviews', address: b.host });
    // Registered, health-checked, not probed yet: no endpoint (Istio: not Healthy until the agent reports).
    await until(() => t.cp.status().registered === 2, 'both registered');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(endpoints(productpage), []);
    assert.deepEqual(await hosts(productpage, 2), ['503 UH']);

    // The first probe runs at once (no initial delay): both healthy.
    ca.advance(0);
    cb.advance(0);
    await until(() => endpoints(productpage).length === 2, 'both healthy endpoints');
    assert.deepEqual(endpoints(productpage), [`127.0.0.1:${port}`, `127.0.0.2:${port}`]);
    assert.deepEqual(await hosts(productpage, 20), ['127.0.0.1', '127.0.0.2']);

    // a's probe fails; one failure is enough (pilot-agent's failureThreshold default is 1).
    a.ready = 500;
    ca.advance(4999);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(a.probes, 1, 'the next probe is a period later');
    ca.advance(1);
    await until(() => endpoints(productpage).length === 1, 'a leaves');
    assert.deepEqual(endpoints(productpage), [`127.0.0.2:${port}`]);
    assert.deepEqual(await hosts(productpage, 20), ['127.0.0.2']);
    // Still failing: no new report (transitions only), nothing changes.
    const version = productpage.snapshot.version;
    ca.advance(5000);
    await until(() => {
      ca.advance(0);
      return a.probes === 3;
    }, 'third probe');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(productpage.snapshot.version, version);

    // a recovers.
    a.ready = 200;
    ca.advance(5000);
    await until(() => endpoints(productpage).length === 2, 'a is back');
    assert.deepEqual(await hosts(productpage, 20), ['127.0.0.1', '127.0.0.2']);

    // The control plane forgets b (an admin deletes its record): at its next renewal (a third of
    // the 30 s lease) b registers anew and sends its last health again, as pilot-agent re-sends
    // its last health event on a new connection to istiod.
    const admin = await t.cp.mintToken({ admin: true });
    const del = await fetch(`${t.cp.url}/v1/workloads/default/${regB.name}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } });
    assert.equal(del.status, 200);
    await until(() => endpoints(productpage).length === 1, 'b forgotten');
    // (One period at a time: a ManualClock jump past a probe's timeout would time the probe out.)
    // advance(0) while waiting: a probe still in flight when the clock moved sets its next timer
    // at "now" once it ends, which a ManualClock fires only when it is moved again.
    for (const n of [2, 3]) {
      cb.advance(5000);
      await until(() => {
        cb.advance(0);
        return b.probes === n;
      }, `b's probe ${n}`);
    }
    await until(() => endpoints(productpage).length === 2, 'b registered again, healthy');

    // Deregistering stops the probe.
    await regA.close();
    const probes = a.probes;
    ca.advance(60_000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(a.probes, probes);
    await until(() => endpoints(productpage).length === 1, 'a deregistered');

    // An exec probe comes from the control plane's config: it runs only when the workload allows it.
    await assert.rejects(
      () => ra.register({ group: 'reviews-exec', address: a.host }),
      (e: unknown) => e instanceof MeshletError && e.code === 'MESHLET_ERR_INVALID_ARG' && /WorkloadGroup default\/reviews-exec has an exec probe \(\["true"\]\).*register with \{ allowExecProbe: true \}/.test(e.message),
    );
    await until(() => t.cp.status().registered === 1, 'the refused registration is deregistered');
    assert.deepEqual(warnings.filter((w) => /exec probe/.test(w)), [], 'the rejection says it all');
    await assert.rejects(
      () => ra.register({ group: 'reviews-exec', address: a.host, probeHosts: 'db.internal' as never }),
      (e: unknown) => e instanceof MeshletError && e.code === 'MESHLET_ERR_INVALID_ARG' && /`probeHosts` must be an array of host names or addresses, got "db\.internal"/.test(e.message),
    );
    await ra.register({ group: 'reviews-exec', address: a.host, allowExecProbe: true });
    ca.advance(0);
    await until(() => endpoints(productpage).length === 2, 'the exec-probed instance is healthy');
  } finally {
    await ra.close();
    await rb.close();
    await productpage.close();
  }
  assert.equal(ca.pending, 0, "a closed mesh leaves no probe timer on its clock");
});
