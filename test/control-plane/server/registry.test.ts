import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { workloadName } from '../../../src/control-plane-server/api-workloads.ts';
import { MemoryRegistry } from '../../../src/control-plane-server/memory-registry.ts';
import { ManualClock } from '../../../src/core/clock.ts';
import type { WireResource } from '../../../src/control-plane/protocol.ts';
import { api, startTestServer, type TestServer } from './helpers.ts';

const entry = (name: string, address: string, namespace = 'default'): WireResource => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'WorkloadEntry',
  metadata: { name, namespace },
  spec: { address, ports: { http: 9080 }, labels: { app: 'reviews' } },
});

describe('MemoryRegistry', () => {
  it('version is a content hash: same entries → same version, any change → another; renew keeps it', async () => {
    const a = new MemoryRegistry();
    const b = new MemoryRegistry();
    const empty = a.version();
    await a.register(entry('x', '10.0.0.1'), 'reviews', 60_000);
    await a.register(entry('y', '10.0.0.2'), 'reviews', 60_000);
    await b.register(entry('y', '10.0.0.2'), 'reviews', 5_000);
    await b.register(entry('x', '10.0.0.1'), 'reviews', 60_000);
    assert.equal(a.version(), b.version());
    assert.notEqual(a.version(), empty);
    const v = a.version();
    assert.ok(await a.renew('default', 'x'));
    assert.equal(a.version(), v);
    await a.register(entry('x', '10.0.0.3'), 'reviews', 60_000);
    assert.notEqual(a.version(), v);
    assert.equal(a.list().length, 2, 're-registering the same name replaces');
    // An annotation decides whether the entry is an endpoint (proxy.istio.io/health-checks-enabled): it changes the version.
    const plain = a.version();
    const annotated = entry('x', '10.0.0.3');
    await a.register({ ...annotated, metadata: { ...annotated.metadata, annotations: { 'proxy.istio.io/health-checks-enabled': 'true' } } }, 'reviews', 60_000);
    assert.notEqual(a.version(), plain, 'the version covers annotations');
    await a.close();
    await b.close();
  });

  it('onChange fires synchronously on register and deregister; deregister of a missing record is false', async () => {
    const r = new MemoryRegistry();
    let n = 0;
    r.onChange(() => n++);
    const p = r.register(entry('x', '10.0.0.1'), 'reviews', 60_000);
    assert.equal(n, 1);
    await p;
    assert.equal(await r.deregister('default', 'x'), true);
    assert.equal(n, 2);
    assert.equal(await r.deregister('default', 'x'), false);
    assert.equal(n, 2);
    await r.close();
  });

  it('removes records whose lease ended (one timer, on its clock), and renew keeps a record alive', async () => {
    const clock = new ManualClock(1_000);
    const r = new MemoryRegistry({ clock });
    const changes: number[] = [];
    r.onChange(() => changes.push(r.list().length));
    await r.register(entry('short', '10.0.0.1'), 'reviews', 40);
    await r.register(entry('long', '10.0.0.2'), 'reviews', 60_000);
    await r.register(entry('renewed', '10.0.0.3'), 'reviews', 400);
    assert.equal(clock.pending, 1, 'one timer, for the earliest expiry');
    clock.advance(30);
    assert.ok(await r.renew('default', 'renewed'));
    assert.equal(r.list()[2]!.expiresAt, 1_430, 'a renewal runs from now');
    clock.advance(9);
    assert.equal(r.list().length, 3, 'not before the lease ends');
    clock.advance(1);
    assert.deepEqual(r.list().map((x) => x.entry.metadata.name).sort(), ['long', 'renewed']);
    clock.advance(389);
    assert.equal(r.list().length, 2, 'the renewal moved the end past the first one (1 400) to 1 430');
    assert.ok(await r.renew('default', 'renewed'), 'renewable until its end');
    clock.advance(399);
    assert.equal(r.list().length, 2);
    clock.advance(1);
    assert.deepEqual(r.list().map((x) => x.entry.metadata.name), ['long']);
    assert.equal(await r.renew('default', 'renewed'), undefined, 'renewing an expired record says it is gone');
    assert.deepEqual(changes, [1, 2, 3, 2, 1]);
    await r.close();
    assert.equal(clock.pending, 0, 'close clears the timer');
  });

  it('a lease that ended is gone for renew and deregister before the timer runs, and its name is free', async () => {
    // A clock whose timers never run: only the reads of the time decide.
    let now = 0;
    const r = new MemoryRegistry({ clock: { now: () => now, setTimer: () => ({ clear() {} }) } });
    const changes: string[] = [];
    r.onChange((c) => changes.push(c.kind === 'delta' ? `+${c.upserted.length}-${c.removed.length}` : c.kind));
    await r.register(entry('x', '10.0.0.1'), 'reviews', 100);
    now = 100;
    assert.equal(await r.renew('default', 'x'), undefined);
    assert.equal(await r.deregister('default', 'x'), false);
    await r.register(entry('x', '10.0.0.9'), 'ratings', 100);
    assert.equal(r.owned('default', 'reviews'), 0, 'the ended record no longer counts for its owner');
    assert.equal(r.owned('default', 'ratings'), 1);
    assert.deepEqual(changes, ['+1-0', '+1-0']);
    await r.close();
  });
});

describe('/v1/workloads', () => {
  let s: TestServer;
  let token: string;
  // Leases run on this clock: only the lease test moves it.
  const clock = new ManualClock();
  const registry = new MemoryRegistry({ clock });
  before(async () => {
    s = await startTestServer(undefined, { registry });
    token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
  });
  after(async () => {
    await s.close();
    await registry.close();
  });

  it('registers with service/namespace from the token, app label added, name from group, address, first port and a hash', async () => {
    const r = await api(s.url, 'POST', '/v1/workloads', {
      token,
      body: { address: '10.0.0.7', ports: { http: 9080, grpc: 9090 }, labels: { version: 'v2' }, locality: 'eu/west/a', weight: 3, leaseMs: 10_000 },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(r.body.name, /^reviews-10-0-0-7-9080-[0-9a-f]{10}$/);
    assert.equal(r.body.name, workloadName({ namespace: 'default', service: 'reviews' }, 'reviews', '10.0.0.7', 9080));
    assert.equal(r.body.namespace, 'default');
    assert.equal(r.body.leaseMs, 10_000);
    assert.deepEqual(r.body.workload.spec, { address: '10.0.0.7', ports: { http: 9080, grpc: 9090 }, labels: { version: 'v2', app: 'reviews' }, locality: 'eu/west/a', weight: 3 });
    assert.match(workloadName({ namespace: 'default', service: 'reviews' }, 'reviews', 'fd00::1', 80), /^reviews-fd00--1-80-[0-9a-f]{10}$/);
    // The same instance again replaces its record.
    await api(s.url, 'POST', '/v1/workloads', { token, body: { address: '10.0.0.7', ports: { http: 9080 } } });
    const list = await api(s.url, 'GET', '/v1/workloads', { token: s.admin });
    assert.equal(list.body.workloads.filter((w: { name: string }) => w.name === r.body.name).length, 1);
  });

  it("names the token's service account on the entry (the identity clients check the server's certificate against); another one in the body is refused", async () => {
    const saToken = await s.cp.mintToken({ service: 'ratings', namespace: 'default', serviceAccount: 'bookinfo-ratings' });
    const r = await api(s.url, 'POST', '/v1/workloads', { token: saToken, body: { address: '10.0.0.9', ports: { http: 9080 } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.workload.spec.serviceAccount, 'bookinfo-ratings');
    const same = await api(s.url, 'POST', '/v1/workloads', { token: saToken, body: { address: '10.0.0.9', ports: { http: 9080 }, serviceAccount: 'bookinfo-ratings' } });
    assert.equal(same.status, 200);
    const other = await api(s.url, 'POST', '/v1/workloads', { token: saToken, body: { address: '10.0.0.9', ports: { http: 9080 }, serviceAccount: 'admin' } });
    assert.equal(other.status, 403);
    assert.equal(other.body.error.message, 'register: serviceAccount "admin" is not the token\'s service account "bookinfo-ratings"');
    const plain = await api(s.url, 'POST', '/v1/workloads', { token, body: { address: '10.0.0.10', ports: { http: 9080 } } });
    assert.equal(plain.body.workload.spec.serviceAccount, undefined, "the default account is what an entry without one means");
  });

  it('defaults the address to the peer (loopback: the server listens on 127.0.0.1) and bounds the lease', async () => {
    const r = await api(s.url, 'POST', '/v1/workloads', { token, body: { ports: { http: 19081 }, leaseMs: 10 } });
    assert.equal(r.status, 200);
    assert.equal(r.body.workload.spec.address, '127.0.0.1');
    assert.equal(r.body.leaseMs, 1000);
    const big = await api(s.url, 'POST', '/v1/workloads', { token, body: { ports: { http: 19082 }, leaseMs: 10_000_000 } });
    assert.equal(big.body.leaseMs, 300_000);
  });

  it('refuses a registration without ports, or naming another service, or with a bad address', async () => {
    assert.equal((await api(s.url, 'POST', '/v1/workloads', { token, body: { address: '10.0.0.1', ports: {} } })).status, 400);
    const other = await api(s.url, 'POST', '/v1/workloads', { token, body: { service: 'ratings', ports: { http: 1 } } });
    assert.equal(other.status, 403);
    const bad = await api(s.url, 'POST', '/v1/workloads', { token, body: { address: '10.0.0.1', ports: { http: 70000 } } });
    assert.equal(bad.status, 400);
    assert.ok(bad.body.error.issues.length > 0);
  });

  it('renews a lease; 404 once the lease ended, so the client re-registers', async () => {
    const r = await api(s.url, 'POST', '/v1/workloads', { token, body: { address: '10.0.0.8', ports: { http: 9080 }, leaseMs: 1000 } });
    const path = `/v1/workloads/default/${r.body.name}/lease`;
    clock.advance(600);
    const renewed = await api(s.url, 'PUT', path, { token });
    assert.equal(renewed.status, 200);
    assert.equal(renewed.body.name, r.body.name);
    const listed = async () => (await api(s.url, 'GET', '/v1/workloads', { token })).body.workloads.some((w: { name: string }) => w.name === r.body.name);
    clock.advance(600);
    assert.equal(await listed(), true, 'the renewal extended the lease past its first end');
    clock.advance(399);
    assert.equal(await listed(), true);
    clock.advance(1);
    assert.equal(await listed(), false, 'the lease ended 1 s after the renewal');
    const gone = await api(s.url, 'PUT', path, { token });
    assert.equal(gone.body.error.code, 'NOT_FOUND');
  });

  it('deregisters (only its own service); 404 when not registered', async () => {
    const r = await api(s.url, 'POST', '/v1/workloads', { token, body: { address: '10.0.0.9', ports: { http: 9080 } } });
    const path = `/v1/workloads/default/${r.body.name}`;
    const ratings = await s.cp.mintToken({ service: 'ratings', namespace: 'default' });
    assert.equal((await api(s.url, 'DELETE', path, { token: ratings })).status, 403);
    assert.equal((await api(s.url, 'DELETE', path, { token })).status, 200);
    assert.equal((await api(s.url, 'DELETE', path, { token })).status, 404);
    assert.equal((await api(s.url, 'PUT', `${path}/lease`, { token })).status, 404);
  });

  it('limits request bodies (413)', async () => {
    const r = await api(s.url, 'POST', '/v1/workloads', { token, text: 'x'.repeat(5 * 1024 * 1024), headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 413);
    assert.equal(r.body.error.code, 'TOO_LARGE');
  });
});
