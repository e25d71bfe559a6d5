/**
 * What the control-plane client takes from the wire (issue 11, points 9 and 13), against a fake
 * control plane whose answers the test writes: every duration from the server is clamped (the
 * heartbeat of `hello`, the lease of a registration), `endpoints-delta` events are applied on top
 * of the endpoints the mesh has, and a delta that does not chain makes the mesh resync.
 * Time is a ManualClock: nothing here sleeps for a duration under test.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { createMesh, type Mesh } from '../../src/index.ts';
import { MAX_HEARTBEAT_MS, MAX_LEASE_MS, MIN_HEARTBEAT_MS, MIN_LEASE_MS } from '../../src/control-plane/protocol.ts';
import { quietLogger, until } from './client-helpers.ts';

interface Watch {
  readonly lastEventId: string | undefined;
  readonly query: URLSearchParams;
  readonly res: ServerResponse;
  send(event: string, data: unknown, id?: string): void;
}

/** A fake control plane: the test scripts what each watch gets; ACKs and registry calls are recorded. */
class FakeControlPlane {
  readonly watches: Watch[] = [];
  readonly acks: Record<string, unknown>[] = [];
  readonly calls: string[] = [];
  leaseMs: unknown = 30_000;
  onWatch: (w: Watch) => void = () => undefined;
  readonly #server: Server;
  url = '';

  constructor() {
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    let body = '';
    for await (const c of req) body += c;
    this.calls.push(`${req.method} ${url.pathname}`);
    if (url.pathname === '/v1/watch') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const w: Watch = {
        lastEventId: req.headers['last-event-id'] as string | undefined,
        query: url.searchParams,
        res,
        send: (event, data, id) => res.write(`event: ${event}\n${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`),
      };
      this.watches.push(w);
      this.onWatch(w);
      return;
    }
    if (url.pathname === '/v1/ack') this.acks.push(JSON.parse(body));
    // A control plane without a CA (as before issue 14): the mesh runs without a workload certificate.
    if (url.pathname === '/v1/certificates') return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"NOT_FOUND","message":"no such endpoint: POST /v1/certificates"}}');
    const registry = url.pathname === '/v1/workloads' || url.pathname.endsWith('/lease');
    const answer = registry ? { name: 'client-1', namespace: 'default', leaseMs: this.leaseMs, workload: {} } : { ok: true };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  }

  async close(): Promise<void> {
    for (const w of this.watches) w.res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

const workload = (name: string, address: string): object => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'WorkloadEntry',
  metadata: { name, namespace: 'default', labels: { app: 'ratings' } },
  spec: { address, ports: { http: 9080 }, labels: { app: 'ratings' } },
});
const ratingsService = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'ratings', namespace: 'default' },
  spec: { selector: { app: 'ratings' }, ports: [{ port: 9080, name: 'http' }] },
};

/** Greets a watch: hello, then config and endpoints unless the client has these versions. */
function greet(w: Watch, heartbeatMs: unknown, workloads: object[] = [], endpointsVersion = 'e1'): void {
  w.send('hello', { connection: `c${Date.now()}`, server: 'fake', configVersion: 'c1', endpointsVersion, heartbeatMs });
  const [have, haveEndpoints] = (w.lastEventId ?? '/').split('/');
  if (have !== 'c1') w.send('config', { version: 'c1', resources: [ratingsService] }, `c1/${haveEndpoints}`);
  if (haveEndpoints !== endpointsVersion) w.send('endpoints', { version: endpointsVersion, workloads }, `c1/${endpointsVersion}`);
}

/** The addresses the mesh would send a call to ratings to. */
const endpointsOf = (mesh: Mesh): string[] =>
  (mesh.explain({ url: 'http://ratings:9080/' }).targets[0]?.endpoints ?? []).map((e) => e.endpoint.replace(/:9080$/, '')).sort();

describe('durations from the wire are clamped', { timeout: 60_000 }, () => {
  const opened: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const o of opened.reverse()) await o.close();
  });

  async function meshOn(fake: FakeControlPlane, clock: ManualClock): Promise<Mesh> {
    const mesh = await createMesh({ service: 'client', controlPlane: fake.url, token: 't', clock, random: { next: () => 0 }, logger: quietLogger, drainMs: 0 });
    opened.push(mesh);
    return mesh;
  }

  const heartbeats: [string, unknown, number][] = [
    // [what, hello.heartbeatMs, the silence after which the stream counts as dead: 3 heartbeats]
    ['huge (1e12 would overflow setTimeout into a 1 ms spin, and a dead stream would never be noticed)', 1e12, 3 * MAX_HEARTBEAT_MS],
    ['past setTimeout’s 2^31-1 ms', 2 ** 31, 3 * MAX_HEARTBEAT_MS],
    ['tiny', 1, 3 * MIN_HEARTBEAT_MS],
    ['zero', 0, 3 * MIN_HEARTBEAT_MS],
  ];
  for (const [title, heartbeatMs, deadAfter] of heartbeats) {
    it(`hello.heartbeatMs ${title}: clamped, the stream is dead after ${deadAfter} ms of silence`, async () => {
      const fake = await new FakeControlPlane().start();
      opened.push(fake);
      fake.onWatch = (w) => greet(w, heartbeatMs);
      const clock = new ManualClock(1_000_000);
      await meshOn(fake, clock);
      assert.equal(fake.watches.length, 1);
      clock.advance(deadAfter - 1);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(fake.watches.length, 1, 'not dead yet');
      clock.advance(1);
      await until(() => fake.watches.length === 2, 'a reconnect once 3 heartbeats were missed');
      assert.equal(fake.watches[1]!.lastEventId, 'c1/e1', 'the reconnect says what the mesh has');
    });
  }

  it("a stall of the mesh's own process is not a dead stream: data already in the socket when the watchdog runs keeps the stream", async () => {
    const fake = await new FakeControlPlane().start();
    opened.push(fake);
    fake.onWatch = (w) => greet(w, 1000);
    const clock = new ManualClock(1_000_000);
    await meshOn(fake, clock);
    await new Promise((r) => setTimeout(r, 20));
    // A heartbeat arrives, but the watchdog's time comes before the mesh read it — what a GC
    // pause or a long synchronous task in the mesh's process looks like once it ends.
    fake.watches[0]!.res.write(': heartbeat\n\n');
    clock.advance(3000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(fake.watches.length, 1, 'the stream was kept');
    // A stream that really stays silent is still dropped, 3 heartbeats after the last data.
    clock.advance(2999);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(fake.watches.length, 1, 'not dead yet');
    clock.advance(1);
    await until(() => fake.watches.length === 2, 'a reconnect once 3 heartbeats were missed');
  });

  it('hello.heartbeatMs that is no number: the hello is refused as malformed and the mesh reconnects', async () => {
    const fake = await new FakeControlPlane().start();
    opened.push(fake);
    let n = 0;
    fake.onWatch = (w) => greet(w, n++ === 0 ? 10_000 : 'soon');
    const clock = new ManualClock(0);
    await meshOn(fake, clock);
    fake.watches[0]!.res.destroy();
    await until(() => fake.watches.length >= 3, 'reconnects after the malformed hello');
  });

  const leases: [string, unknown, number][] = [
    // [what, the granted leaseMs, the lease the mesh uses (it renews every third of it)]
    ['huge', 1e12, MAX_LEASE_MS],
    ['tiny', 1, MIN_LEASE_MS],
    ['negative', -5, MIN_LEASE_MS],
    ['not a number: the lease asked for', 'forever', 30_000],
  ];
  for (const [title, leaseMs, used] of leases) {
    const renewAt = Math.floor(used / 3);
    it(`a granted leaseMs that is ${title}: a lease of ${used} ms, renewed every ${renewAt} ms`, async () => {
      const fake = await new FakeControlPlane().start();
      opened.push(fake);
      fake.onWatch = (w) => greet(w, 10_000);
      fake.leaseMs = leaseMs;
      const clock = new ManualClock(0);
      const mesh = await meshOn(fake, clock);
      const reg = await mesh.register({ ports: { http: 9080 }, address: '10.0.0.1', leaseMs: 30_000 });
      assert.equal(reg.leaseMs, used);
      const renewals = () => fake.calls.filter((c) => c.endsWith('/lease')).length;
      clock.advance(renewAt - 1);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(renewals(), 0, 'no renewal before its time (no spin)');
      clock.advance(1);
      await until(() => renewals() === 1, 'the first renewal');
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(renewals(), 1);
    });
  }
});

describe('endpoints-delta on the client', { timeout: 60_000 }, () => {
  const opened: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const o of opened.reverse()) await o.close();
  });

  it('asks for deltas, applies them on top of what it has, ACKs each version', async () => {
    const fake = await new FakeControlPlane().start();
    opened.push(fake);
    fake.onWatch = (w) => greet(w, 10_000, [workload('r1', '10.0.0.1')]);
    const mesh = await createMesh({ service: 'client', controlPlane: fake.url, token: 't', logger: quietLogger, drainMs: 0 });
    opened.push(mesh);
    const w = fake.watches[0]!;
    assert.equal(w.query.get('features'), 'endpoints-delta');
    assert.deepEqual(endpointsOf(mesh), ['10.0.0.1']);
    w.send('endpoints-delta', { version: 'e2', base: 'e1', workloads: [workload('r2', '10.0.0.2')], removed: [] }, 'c1/e2');
    await until(() => endpointsOf(mesh).length === 2, 'the added endpoint');
    w.send('endpoints-delta', { version: 'e3', base: 'e2', workloads: [workload('r2', '10.0.0.3')], removed: [{ namespace: 'default', name: 'r1' }] }, 'c1/e3');
    await until(() => endpointsOf(mesh).join() === '10.0.0.3', 'r1 removed, r2 replaced');
    await until(() => fake.acks.some((a) => a.kind === 'endpoints' && a.version === 'e3' && a.status === 'ACK'), 'the ACK of e3');
    assert.ok(fake.acks.some((a) => a.kind === 'endpoints' && a.version === 'e2' && a.status === 'ACK'));
    // An invalid entry in a delta is NACKed; the endpoints in use stay.
    w.send('endpoints-delta', { version: 'e4', base: 'e3', workloads: [{ ...workload('r9', '10.0.0.9'), spec: { ports: { http: 70000 } } }], removed: [] }, 'c1/e4');
    await until(() => fake.acks.some((a) => a.version === 'e4' && a.status === 'NACK'), 'the NACK of e4');
    assert.deepEqual(endpointsOf(mesh), ['10.0.0.3']);
  });

  it('a delta that does not start from the version the mesh has makes it resync: it reconnects with its versions and gets the whole list', async () => {
    const fake = await new FakeControlPlane().start();
    opened.push(fake);
    fake.onWatch = (w) => {
      if (fake.watches.length === 1) greet(w, 10_000, [workload('r1', '10.0.0.1')]);
      else greet(w, 10_000, [workload('r1', '10.0.0.1'), workload('r5', '10.0.0.5')], 'e5');
    };
    const mesh = await createMesh({ service: 'client', controlPlane: fake.url, token: 't', logger: quietLogger, drainMs: 0 });
    opened.push(mesh);
    let disconnected = 0;
    mesh.on('disconnected', () => disconnected++);
    fake.watches[0]!.send('endpoints-delta', { version: 'e5', base: 'e4', workloads: [workload('r5', '10.0.0.5')], removed: [] }, 'c1/e5');
    await until(() => fake.watches.length === 2, 'the resync');
    assert.equal(fake.watches[1]!.lastEventId, 'c1/e1', 'it says what it really has');
    await until(() => endpointsOf(mesh).length === 2, 'the whole list applied');
    assert.deepEqual(endpointsOf(mesh), ['10.0.0.1', '10.0.0.5']);
    assert.equal(disconnected, 0, 'a resync is not an outage');
  });

  it('bounds the reasons of a NACK to what a server accepts by default', async () => {
    const fake = await new FakeControlPlane().start();
    opened.push(fake);
    fake.onWatch = (w) => greet(w, 10_000);
    const mesh = await createMesh({ service: 'client', controlPlane: fake.url, token: 't', logger: quietLogger, drainMs: 0 });
    opened.push(mesh);
    // 300 invalid entries: 300+ reasons.
    const bad = Array.from({ length: 300 }, (_, i) => ({ ...workload(`b${i}`, '10.0.0.1'), spec: { address: '10.0.0.1', ports: { http: 70000 + i } } }));
    fake.watches[0]!.send('endpoints', { version: 'e9', workloads: bad }, 'c1/e9');
    await until(() => fake.acks.some((a) => a.version === 'e9'), 'the NACK');
    const nack = fake.acks.find((a) => a.version === 'e9') as { status: string; reasons: string[] };
    assert.equal(nack.status, 'NACK');
    assert.ok(nack.reasons.length <= 100, `${nack.reasons.length} reasons`);
    assert.match(nack.reasons.at(-1)!, /^… and \d+ more$/);
    assert.ok(Buffer.byteLength(nack.reasons.join('')) <= 64 * 1024);
  });
});
