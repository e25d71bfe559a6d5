/**
 * Inbound circuit breaking through every server's real entry point — node:http
 * (`mesh.createServer`), Express 5 and 4 (`app.use(mesh.express())`), Fastify 5 — and a grpc-js
 * server under `mesh.grpc.serverInterceptors()`: the inbound cluster's `connectionPool` (from the
 * service's DestinationRule, a Sidecar's ingress listener or `inboundConnectionPool`) lets
 * min(`maxConnections`, `http2MaxRequests`) HTTP/1.1 requests reach the app, queues up to
 * `http1MaxPendingRequests` more while every "connection" is busy (never beyond
 * `http2MaxRequests`, which gRPC calls are limited by alone), and answers the rest 503 UO with
 * `x-envoy-overloaded: true` (gRPC: UNAVAILABLE). Requests are held in the
 * app with promises the test releases; a queued request is seen queued in `mesh.diagnostics()`.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import express from 'express';
import express4 from 'express4';
import Fastify from 'fastify';
import { Client } from 'undici';
import { createMesh, type InboundPoolCounters, type Mesh } from '../../src/index.ts';
import type { InboundEndMessage } from '../../src/core/observe.ts';
import { type Echo, grpc, unary } from '../helpers/grpc.ts';
import { md, plainClient, startMeshGrpcServer } from '../helpers/grpc-server.ts';
import { listen, raw } from '../helpers/frameworks.ts';
import { sdk } from '../helpers/metric-reader.ts';
import { until } from '../helpers/until.ts';

const OVERFLOW = 'upstream connect error or disconnect/reset before headers. reset reason: overflow';
const dir = mkdtempSync(join(tmpdir(), 'meshlet-inbound-pool-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Requests the app holds until the test lets them go, by id (`/hold/<id>`). */
class Gates {
  readonly #released = new Map<string, ReturnType<typeof deferred>>();
  /** Ids that reached the app, in order. */
  readonly seen: string[] = [];

  #of(m: Map<string, ReturnType<typeof deferred>>, id: string) {
    let d = m.get(id);
    if (d === undefined) {
      d = deferred();
      m.set(id, d);
    }
    return d;
  }

  /** The app's side: says the request arrived, waits to be let go. */
  hold(id: string): Promise<void> {
    this.seen.push(id);
    if (this.#open) return Promise.resolve();
    return this.#of(this.#released, id).promise;
  }

  /** Resolves when `id` is in the app (bounded, as {@link until} is: a request that never gets there fails the test). */
  entered(id: string): Promise<void> {
    return until(() => this.seen.includes(id), `${id} in the app`);
  }

  release(id: string): void {
    this.#of(this.#released, id).resolve();
  }

  /** Lets every request go (a failed test must not leave the servers draining held requests). */
  releaseAll(): void {
    this.#open = true;
    for (const id of this.#released.keys()) this.release(id);
  }

  #open = false;
}

/** The app: `/hold/<id>` waits for the gate, anything else answers at once. */
async function answer(gates: Gates, path: string): Promise<string> {
  const m = /^\/hold\/(\w+)/.exec(path);
  if (m !== null) await gates.hold(m[1] as string);
  return `done ${path}`;
}

interface Started {
  readonly port: number;
  close(): Promise<void>;
}

interface Framework {
  readonly name: string;
  start(mesh: Mesh, gates: Gates): Promise<Started>;
}

const nodeHttp: Framework = {
  name: 'node:http (mesh.createServer)',
  async start(mesh, gates) {
    const server = mesh.createServer((req: IncomingMessage, res: ServerResponse) => {
      void answer(gates, req.url ?? '/').then((t) => res.end(t));
    });
    const port = await listen(server);
    return {
      port,
      close: () =>
        new Promise<void>((r) => {
          server.close(() => r());
          // A failed assertion may leave requests held: their connections go too.
          server.closeAllConnections();
        }),
    };
  },
};

const frameworks: Framework[] = [
  nodeHttp,
  ...(
    [
      ['Express 5', express],
      ['Express 4', express4],
    ] as const
  ).map(([name, make]) => ({
    name,
    async start(mesh: Mesh, gates: Gates): Promise<Started> {
      const app = (make as typeof express)();
      app.use(mesh.express());
      app.use((req: express.Request, res: express.Response) => {
        void answer(gates, req.path).then((t) => res.send(t));
      });
      const server = app.listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      return {
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      };
    },
  })),
  {
    name: 'Fastify 5',
    async start(mesh, gates) {
      // A failed assertion may leave requests waiting: closing does not wait for them.
      const app = Fastify({ ...mesh.fastifyOptions(), forceCloseConnections: true });
      await app.register(mesh.fastify() as never);
      app.all('/*', (req) => answer(gates, req.url));
      await app.listen({ port: 0, host: '127.0.0.1' });
      return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
    },
  },
];

const destinationRule = (pool: object, portLevel?: object[]) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'DestinationRule',
  metadata: { name: 'httpbin', namespace: 'foo' },
  spec: { host: 'httpbin', trafficPolicy: { connectionPool: pool, ...(portLevel === undefined ? {} : { portLevelSettings: portLevel }) } },
});

const ONE_AND_ONE = { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } };

function mesh(config: object[] | string, options: Partial<Parameters<typeof createMesh>[0]> = {}): Promise<Mesh> {
  return createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config, watch: false, logger: { warn: () => {} }, ...options });
}

function poolOf(m: Mesh, port: number, protocol: 'http1' | 'grpc' = 'http1'): InboundPoolCounters | undefined {
  return m.diagnostics().inboundPools.find((p) => p.cluster === `inbound|${port}||` && p.protocol === protocol);
}

/** A request on a connection of its own that the test can abort (the client going away). */
function abortable(port: number, path: string): { response: Promise<unknown>; abort(): void } {
  const client = new Client(`http://127.0.0.1:${port}`);
  const ac = new AbortController();
  const response = client
    .request({ path, method: 'GET', signal: ac.signal })
    .then((r) => r.body.text())
    .catch((e: unknown) => e)
    .finally(() => client.destroy());
  return { response, abort: () => ac.abort() };
}

describe('inbound circuit breaking through every framework', () => {
  for (const fw of frameworks) {
    it(`${fw.name}: one in the app, one waiting and served after it, the third 503 UO x-envoy-overloaded`, async () => {
      const m = await mesh([destinationRule(ONE_AND_ONE)]);
      const gates = new Gates();
      const server = await fw.start(m, gates);
      try {
        assert.deepEqual(m.diagnostics().inboundPhases, ['connection-pool']);
        const first = raw(server.port, '/hold/a');
        await gates.entered('a');
        const second = raw(server.port, '/hold/b');
        await until(() => poolOf(m, server.port)?.pending === 1, 'the second request queued');
        const third = await raw(server.port, '/hold/c');
        assert.equal(third.statusCode, 503);
        assert.equal(third.text, OVERFLOW);
        assert.equal(third.headers['x-envoy-overloaded'], 'true');
        assert.equal(third.headers['content-type'], 'text/plain');
        assert.deepEqual(gates.seen, ['a']);
        gates.release('a');
        assert.equal((await first).text, 'done /hold/a');
        await gates.entered('b');
        gates.release('b');
        assert.equal((await second).statusCode, 200);
        await until(() => poolOf(m, server.port)?.active === 0, 'the second slot released');
        assert.deepEqual(poolOf(m, server.port), { cluster: `inbound|${server.port}||`, protocol: 'http1', active: 0, pending: 0, overflows: 1, maxActive: 1, maxPending: 1 });
        // Free again: a request goes straight to the app.
        assert.equal((await raw(server.port, '/now')).text, 'done /now');
        assert.deepEqual(gates.seen, ['a', 'b']);
      } finally {
        gates.releaseAll();
        await server.close();
        await m.close();
      }
    });

    it(`${fw.name}: a caller that goes away frees its slot, or its place in the queue`, async () => {
      const m = await mesh([destinationRule(ONE_AND_ONE)]);
      const gates = new Gates();
      const server = await fw.start(m, gates);
      try {
        const held = abortable(server.port, '/hold/a');
        await gates.entered('a');
        const queued = abortable(server.port, '/hold/b');
        await until(() => poolOf(m, server.port)?.pending === 1, 'b queued');
        queued.abort();
        await queued.response;
        await until(() => poolOf(m, server.port)?.pending === 0, 'b out of the queue');
        // The queue has room again: c waits rather than overflowing.
        const c = raw(server.port, '/hold/c');
        await until(() => poolOf(m, server.port)?.pending === 1, 'c queued');
        // The caller in the app goes away: its slot goes to c.
        held.abort();
        await held.response;
        await gates.entered('c');
        gates.release('c');
        assert.equal((await c).statusCode, 200);
        gates.release('a');
        await until(() => poolOf(m, server.port)?.active === 0, 'every slot released');
        assert.equal(poolOf(m, server.port)?.overflows, 0);
        assert.deepEqual(gates.seen, ['a', 'c']);
      } finally {
        gates.releaseAll();
        await server.close();
        await m.close();
      }
    });
  }
});

describe('which connectionPool applies, per port', () => {
  /** Two servers of one mesh; the config is written once their ports are known, and reloaded. */
  async function twoPorts(config: (a: number, b: number) => object[]): Promise<{ m: Mesh; gates: Gates; a: Started; b: Started; close(): Promise<void> }> {
    const file = join(dir, `${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(destinationRule({ tcp: { connectTimeout: '1s' } })));
    const m = await mesh(file);
    const gates = new Gates();
    const a = await nodeHttp.start(m, gates);
    const b = await nodeHttp.start(m, gates);
    writeFileSync(file, config(a.port, b.port).map((d) => JSON.stringify(d)).join('\n---\n'));
    assert.equal(await m.reload(), true);
    return {
      m,
      gates,
      a,
      b,
      close: async () => {
        await a.close();
        await b.close();
        await m.close();
      },
    };
  }

  /** Sends held requests to `port` one after the other: each got into the app (`in`), was queued (0) or answered (its status). */
  async function fill(s: { m: Mesh; gates: Gates }, port: number, ids: string[]): Promise<(number | 'in')[]> {
    const out: (number | 'in')[] = [];
    for (const id of ids) {
      const before = poolOf(s.m, port)?.pending ?? 0;
      let status: number | undefined;
      raw(port, `/hold/${id}`).then(
        (x) => {
          status = x.statusCode;
        },
        () => {}, // closed by the test's end
      );
      await until(() => s.gates.seen.includes(id) || status !== undefined || (poolOf(s.m, port)?.pending ?? 0) > before, `${id} let in, queued or answered`);
      out.push(s.gates.seen.includes(id) ? 'in' : (status ?? 0));
    }
    return out;
  }

  it("the DestinationRule's port-level setting applies to the port its service port reaches, the rule's own to the others", async () => {
    const s = await twoPorts((a, b) => [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'httpbin', namespace: 'foo' }, spec: { selector: { app: 'httpbin' }, ports: [{ name: 'http', port: 80, targetPort: a }, { name: 'http-admin', port: 81, targetPort: b }] } },
      destinationRule({ http: { http2MaxRequests: 3 } }, [{ port: { number: 80 }, connectionPool: ONE_AND_ONE }]),
    ]);
    try {
      // Port 80 → a: one in, one queued (0), one overflows; 81 → b: three in.
      assert.deepEqual(await fill(s, s.a.port, ['a1', 'a2', 'a3']), ['in', 0, 503]);
      assert.deepEqual(await fill(s, s.b.port, ['b1', 'b2', 'b3']), ['in', 'in', 'in']);
      assert.equal(poolOf(s.m, s.b.port)?.maxActive, 3);
      const x = await s.m.explainInbound({ url: '/', port: s.a.port });
      assert.equal(x.connectionPool?.source, 'DestinationRule foo/httpbin portLevelSettings (port 80)');
      for (const id of ['a1', 'a2', 'b1', 'b2', 'b3']) s.gates.release(id);
      await until(() => poolOf(s.m, s.a.port)?.active === 0 && poolOf(s.m, s.b.port)?.active === 0, 'every slot released');
    } finally {
      s.gates.releaseAll();
      await s.close();
    }
  });

  it("createMesh's `ports` resolves a Service's named targetPort: the port-level setting of the service port applies to the local port of that name", async () => {
    // A port the server then listens on (checked free; taken again if someone took it meanwhile).
    const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'httpbin', namespace: 'foo' }, spec: { selector: { app: 'httpbin' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } };
    const config = [service, destinationRule({ http: { http2MaxRequests: 3 } }, [{ port: { number: 80 }, connectionPool: ONE_AND_ONE }])];
    for (let attempt = 0; ; attempt++) {
      const free = await new Promise<number>((r) => {
        const srv = createNetServer().listen(0, '127.0.0.1', () => {
          const p = (srv.address() as AddressInfo).port;
          srv.close(() => r(p));
        });
      });
      const named = await mesh(config, { ports: { http: free } });
      const unnamed = await mesh(config);
      const gates = new Gates();
      const server = named.createServer((req: IncomingMessage, res: ServerResponse) => void answer(gates, req.url ?? '/').then((t) => res.end(t)));
      try {
        const listening = await new Promise<boolean>((r) => {
          server.once('error', () => r(false));
          server.listen(free, '127.0.0.1', () => r(true));
        });
        if (!listening) {
          if (attempt < 3) continue;
          assert.fail(`port ${free} was taken between the check and the listen, ${attempt + 1} times`);
        }
        const s = { m: named, gates };
        assert.deepEqual(await fill(s, free, ['n1', 'n2', 'n3']), ['in', 0, 503], 'ONE_AND_ONE, the port-level setting of service port 80');
        assert.equal((await named.explainInbound({ url: '/', port: free })).connectionPool?.source, 'DestinationRule foo/httpbin portLevelSettings (port 80)');
        assert.equal((await unnamed.explainInbound({ url: '/', port: free })).connectionPool?.source, 'DestinationRule foo/httpbin', 'without `ports` the named targetPort reaches no known port');
        return;
      } finally {
        gates.releaseAll();
        await new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        });
        await named.close();
        await unnamed.close();
      }
    }
  });

  it('createMesh refuses `ports` that are not names to port numbers', async () => {
    await assert.rejects(mesh([], { ports: { http: 0 } }), { code: 'MESHLET_ERR_INVALID_ARG', message: /`ports`: port "http" must be an integer 1\.\.65535, got 0/ });
    await assert.rejects(mesh([], { ports: [8080] as never }), { code: 'MESHLET_ERR_INVALID_ARG', message: /`ports` must map port names to numbers/ });
  });

  it("a Sidecar's ingress listener for the port beats the DestinationRule; inboundConnectionPool the others", async () => {
    const s = await twoPorts((_a, b) => [
      destinationRule(ONE_AND_ONE),
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'Sidecar',
        metadata: { name: 'httpbin', namespace: 'foo' },
        spec: {
          workloadSelector: { labels: { app: 'httpbin' } },
          ingress: [{ port: { number: b, protocol: 'HTTP', name: 'http' }, defaultEndpoint: `127.0.0.1:${b}`, connectionPool: { tcp: { maxConnections: 2 }, http: { http1MaxPendingRequests: 1 } } }],
          inboundConnectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 2 } },
        },
      },
    ]);
    try {
      assert.deepEqual(await fill(s, s.b.port, ['b1', 'b2', 'b3', 'b4']), ['in', 'in', 0, 503]);
      // a: inboundConnectionPool (two may wait), not the DestinationRule (one).
      assert.deepEqual(await fill(s, s.a.port, ['a1', 'a2', 'a3', 'a4']), ['in', 0, 0, 503]);
      const x = await s.m.explainInbound({ url: '/', port: s.b.port });
      assert.equal(x.connectionPool?.source, `Sidecar foo/httpbin ingress[0] (port ${s.b.port})`);
      assert.match(x.toString(), new RegExp(`Inbound pool:\\s+inbound\\|${s.b.port}\\|\\|: 2 in flight at most \\(HTTP/1.1; gRPC no limit\\), 1 waiting`));
      for (const id of ['a1', 'a2', 'a3', 'b1', 'b2', 'b3']) s.gates.release(id);
      await until(() => poolOf(s.m, s.a.port)?.active === 0 && poolOf(s.m, s.b.port)?.active === 0, 'every slot released');
    } finally {
      s.gates.releaseAll();
      await s.close();
    }
  });
});

describe('a config reload', () => {
  it('new limits apply to new requests; requests in flight stay counted', async () => {
    const file = join(dir, 'reload.json');
    writeFileSync(file, JSON.stringify(destinationRule(ONE_AND_ONE)));
    const m = await mesh(file);
    const gates = new Gates();
    const server = await nodeHttp.start(m, gates);
    const port = server.port;
    try {
      const a = raw(port, '/hold/a');
      await gates.entered('a');
      const b = raw(port, '/hold/b');
      await until(() => poolOf(m, port)?.pending === 1, 'b queued');
      // Two slots: b goes in at once, a still holds its slot.
      writeFileSync(file, JSON.stringify(destinationRule({ tcp: { maxConnections: 2 }, http: { http1MaxPendingRequests: 1 } })));
      assert.equal(await m.reload(), true);
      await gates.entered('b');
      assert.deepEqual(poolOf(m, port), { cluster: `inbound|${port}||`, protocol: 'http1', active: 2, pending: 0, overflows: 0, maxActive: 2, maxPending: 1 });
      const c = raw(port, '/hold/c');
      await until(() => poolOf(m, port)?.pending === 1, 'c queued');
      assert.equal((await raw(port, '/hold/d')).statusCode, 503);
      // Back to one slot: the two in flight finish; c waits until both are done.
      writeFileSync(file, JSON.stringify(destinationRule(ONE_AND_ONE)));
      assert.equal(await m.reload(), true);
      gates.release('a');
      assert.equal((await a).statusCode, 200);
      assert.equal(poolOf(m, port)?.pending, 1);
      assert.deepEqual(gates.seen, ['a', 'b']);
      gates.release('b');
      await gates.entered('c');
      assert.equal((await b).statusCode, 200);
      // No limit any more: the phase goes, what is in flight still counts down.
      writeFileSync(file, JSON.stringify(destinationRule({ tcp: { connectTimeout: '1s' } })));
      assert.equal(await m.reload(), true);
      assert.deepEqual(m.diagnostics().inboundPhases, []);
      assert.equal((await raw(port, '/now')).statusCode, 200);
      gates.release('c');
      assert.equal((await c).statusCode, 200);
      await until(() => poolOf(m, port)?.active === 0, 'c released');
    } finally {
      gates.releaseAll();
      await server.close();
      await m.close();
    }
  });
});

describe('inbound telemetry', () => {
  it('the overflow is UO in meshlet:inbound:end and in the access log, with its details, and counted in meshlet_pool_overflows_total', async () => {
    const lines: string[] = [];
    const metrics = sdk();
    const m = await mesh([destinationRule(ONE_AND_ONE)], {
      telemetry: { accessLog: { file: '/dev/stdout' }, ownMetrics: { meterProvider: metrics.provider } },
      logger: { warn: () => {}, info: (l: unknown) => (typeof l === 'string' && !l.startsWith('meshlet:') ? lines.push(l) : undefined) },
    });
    const gates = new Gates();
    const server = await nodeHttp.start(m, gates);
    const ends: InboundEndMessage[] = [];
    const onEnd = (msg: unknown) => ends.push(msg as InboundEndMessage);
    subscribe('meshlet:inbound:end', onEnd);
    try {
      const a = raw(server.port, '/hold/a');
      await gates.entered('a');
      const b = raw(server.port, '/hold/b');
      await until(() => poolOf(m, server.port)?.pending === 1, 'b queued');
      assert.equal((await raw(server.port, '/hold/c')).statusCode, 503);
      await until(() => ends.length === 1, 'the overflow published');
      const e = ends[0] as InboundEndMessage;
      assert.equal(e.flags, 'UO');
      assert.equal(e.details, 'upstream_reset_before_response_started{overflow}');
      assert.equal(e.status, 503);
      const cluster = `inbound|${server.port}||`;
      assert.equal(await metrics.value('meshlet_pool_overflows_total', { cluster }), 1);
      gates.release('a');
      await a;
      gates.release('b');
      await b;
      await until(() => ends.length === 3, 'all published');
      assert.deepEqual(
        ends.map((x) => x.flags),
        ['UO', '', ''],
      );
      await until(() => lines.length === 3, 'three access log lines');
      assert.match(lines[0] as string, /"GET \/hold\/c HTTP\/1\.1" 503 UO upstream_reset_before_response_started\{overflow\} /);
      assert.match(lines[1] as string, /"GET \/hold\/a HTTP\/1\.1" 200 - via_upstream /);
      const points = await metrics.points('meshlet_pool_overflows_total');
      assert.deepEqual(
        points.map((p) => [p.attributes['cluster'], p.value]),
        [[cluster, 1]],
        'the requests served are no overflow',
      );
    } finally {
      gates.releaseAll();
      unsubscribe('meshlet:inbound:end', onEnd);
      await server.close();
      await m.close();
      await metrics.provider.shutdown();
    }
  });
});

describe('a grpc-js server', () => {
  it('http2MaxRequests 1: one call in the handler, the next UNAVAILABLE at once with x-envoy-overloaded (HTTP/2: nothing waits for max_requests); a cancelled call frees its slot', async () => {
    const m = await mesh([destinationRule({ http: { http2MaxRequests: 1, http1MaxPendingRequests: 5 } })]);
    const gates = new Gates();
    const s = await startMeshGrpcServer(m, 'insecure', {
      Unary: (call, cb) => {
        void gates.hold(call.request.text).then(() => cb(null, { text: call.request.text, server: 'held', seen: [] }));
      },
    });
    const client = plainClient(s.port) as Echo;
    const pool = () => poolOf(m, s.port, 'grpc');
    try {
      const first = unary(client, { text: 'a' });
      await gates.entered('a');
      const second = await unary(client, { text: 'b' });
      assert.equal(second.error?.code, grpc.status.UNAVAILABLE);
      assert.equal(second.error?.details, OVERFLOW);
      assert.deepEqual(second.trailers?.get('x-envoy-overloaded'), ['true']);
      assert.equal(pool()?.pending, 0);
      gates.release('a');
      assert.equal((await first).reply?.text, 'a');
      await until(() => pool()?.active === 0, 'slot released');
      // A cancelled call in the handler frees its slot.
      const held = client.Unary({ text: 'd' }, md({}), {}, () => {});
      await gates.entered('d');
      held.cancel();
      await until(() => pool()?.active === 0, "d's slot released");
      const now = unary(client, { text: 'now' });
      await gates.entered('now');
      gates.release('now');
      assert.equal((await now).reply?.text, 'now');
      assert.deepEqual(gates.seen, ['a', 'd', 'now']);
      assert.equal(pool()?.overflows, 1);
    } finally {
      gates.releaseAll();
      client.close();
      await s.close();
      await m.close();
    }
  });
});

/** Limits an HTTP/1.1 request can wait under: one in flight, up to five waiting. */
const ONE_AND_FIVE_H1 = { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 5 } };

/** A raw HTTP/1.1 request on a connection of its own, which the test destroys (the caller going away). */
async function rawRequest(port: number, path: string): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  s.on('error', () => {});
  s.write(`GET ${path} HTTP/1.1\r\nHost: httpbin\r\n\r\n`);
  return s;
}

const counts = (m: Mesh) => m.diagnostics().inboundPools.map((p) => `${p.cluster} ${p.protocol} active ${p.active} pending ${p.pending}`);

describe('a caller that went away before the mesh ran', () => {
  it('Express, behind an earlier middleware that waits: neither judged nor served, no slot taken', async () => {
    const m = await mesh([destinationRule(ONE_AND_FIVE_H1)]);
    const app = express();
    const ran = deferred();
    const served: string[] = [];
    // Goes on only once the caller is gone (an async middleware the caller did not wait for).
    app.use((_req: express.Request, res: express.Response, next: express.NextFunction) => {
      res.once('close', () => {
        next();
        ran.resolve();
      });
    });
    app.use(m.express());
    app.use((req: express.Request, res: express.Response) => {
      served.push(req.path);
      res.send('ok');
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const port = (server.address() as AddressInfo).port;
      (await rawRequest(port, '/gone')).destroy();
      await ran.promise;
      // No slot held, under the real port or under port 0 (a destroyed socket's localPort).
      assert.deepEqual(counts(m), []);
      assert.deepEqual(served, []);
    } finally {
      server.closeAllConnections();
      server.close();
      await m.close();
    }
  });

  it('Fastify, behind an earlier onRequest hook that waits: neither judged nor answered, no slot taken', async () => {
    const m = await mesh([destinationRule(ONE_AND_FIVE_H1)]);
    const app = Fastify({ ...m.fastifyOptions(), forceCloseConnections: true });
    const ran = deferred();
    const statuses: number[] = [];
    app.addHook('onRequest', (_req, reply, done) => {
      reply.raw.once('close', () => {
        done();
        ran.resolve();
      });
    });
    app.addHook('onResponse', (_req, reply, done) => {
      statuses.push(reply.statusCode);
      done();
    });
    await app.register(m.fastify() as never);
    app.get('/*', () => 'ok');
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      (await rawRequest((app.server.address() as AddressInfo).port, '/gone')).destroy();
      await ran.promise;
      assert.deepEqual(counts(m), []);
      assert.deepEqual(statuses, []);
    } finally {
      await app.close();
      await m.close();
    }
  });
});

describe('connections closed together', () => {
  it('node:http: a waiting request whose connection closed with the one in flight is not handed to the app; the slot goes on', async () => {
    const m = await mesh([destinationRule(ONE_AND_FIVE_H1)]);
    const gates = new Gates();
    const server = m.createServer((req: IncomingMessage, res: ServerResponse) => {
      void answer(gates, req.url ?? '/').then((t) => res.end(t));
    });
    const port = await listen(server);
    try {
      await rawRequest(port, '/hold/a');
      await gates.entered('a');
      await rawRequest(port, '/hold/b');
      await rawRequest(port, '/hold/c');
      await until(() => poolOf(m, port)?.pending === 2, 'b and c waiting');
      // Destroyed at once, as mesh.close() past closeTimeoutMs does: every 'close' comes after the last destroy.
      server.closeAllConnections();
      await until(() => poolOf(m, port)?.active === 0 && poolOf(m, port)?.pending === 0, 'every slot back');
      assert.deepEqual(gates.seen, ['a']);
      // The pool still works.
      await rawRequest(port, '/hold/d');
      await gates.entered('d');
    } finally {
      gates.releaseAll();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await m.close();
    }
  });

  it('Fastify: a waiting caller that left, and one whose connection closed with the request in flight, are answered nothing and not handed to the app', async () => {
    const m = await mesh([destinationRule(ONE_AND_FIVE_H1)]);
    const gates = new Gates();
    const app = Fastify({ ...m.fastifyOptions(), forceCloseConnections: true });
    const ends: InboundEndMessage[] = [];
    const onEnd = (msg: unknown) => ends.push(msg as InboundEndMessage);
    subscribe('meshlet:inbound:end', onEnd);
    const statuses: number[] = [];
    app.addHook('onResponse', (_req, reply, done) => {
      statuses.push(reply.statusCode);
      done();
    });
    await app.register(m.fastify() as never);
    app.all('/*', (req) => answer(gates, req.url));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    try {
      await rawRequest(port, '/hold/a');
      await gates.entered('a');
      const left = await rawRequest(port, '/hold/left');
      await rawRequest(port, '/hold/b');
      await until(() => poolOf(m, port)?.pending === 2, 'left and b waiting');
      left.destroy();
      await until(() => poolOf(m, port)?.pending === 1, 'left out of the queue');
      app.server.closeAllConnections();
      await until(() => poolOf(m, port)?.active === 0 && poolOf(m, port)?.pending === 0, 'every slot back');
      assert.deepEqual(gates.seen, ['a']);
      await until(() => ends.length === 3, 'three ends');
      // Nobody answered: Envoy's downstream disconnect, no made-up 503 in the telemetry or in onResponse.
      assert.deepEqual(
        ends.map((e) => `${e.path} ${e.status} ${e.flags}`).sort(),
        ['/hold/a 0 DC', '/hold/b 0 DC', '/hold/left 0 DC'],
      );
      assert.deepEqual(statuses, []);
    } finally {
      unsubscribe('meshlet:inbound:end', onEnd);
      gates.releaseAll();
      await app.close();
      await m.close();
    }
  });
});
