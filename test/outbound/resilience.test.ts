import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerResponse } from 'node:http';
import { after, describe, test } from 'node:test';
import { createMesh, type LoadBalancerSettings, ManualClock, type Mesh, type OutboundEvent, seededRandom } from '../../src/index.ts';
import { createPicker, HostSet, HostState } from '../../src/internals.ts';
import { hash32 } from '../../src/routing/balancer/hash.ts';
import { call, destinationRule, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';
import { until } from '../helpers/until.ts';

const SVC = 'svc.default.svc.cluster.local';

async function meshFor(endpoints: { port: number; labels?: Record<string, string>; address?: string }[], http: unknown[], dr: Record<string, unknown>, opts: object = {}): Promise<Mesh> {
  return createMesh({
    service: 'client',
    random: seededRandom(11),
    config: [serviceEntry('svc', SVC, 80, endpoints), virtualService('svc', ['svc'], http), destinationRule('svc', 'svc', dr)],
    ...opts,
  });
}

/** Polls `cond` every 2 ms (up to 2 s of real time: a bound on a hang, not a timing assertion). */
/**
 * Upstreams on the given loopback addresses (any 127.x on Linux); where the system has only
 * 127.0.0.1 (macOS without aliases), all of them on 127.0.0.1.
 */
async function startOnAddresses(names: readonly string[], addresses: readonly string[]): Promise<Upstream[]> {
  try {
    return await Promise.all(names.map((n, i) => startUpstream(n, undefined, addresses[i])));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL') throw err;
    return Promise.all(names.map((n) => startUpstream(n)));
  }
}

/**
 * The upstream meshlet's ring picks for a hash key: the picker createPicker builds for
 * `settings` over these upstreams' endpoints, asked directly (the mesh builds the same one).
 */
function ringOwners(ups: readonly Upstream[], settings: LoadBalancerSettings): (key: string) => string {
  const byKey = new Map(ups.map((u) => [`${u.host}:${u.port}`, u.name]));
  const set = new HostSet(
    ups.map((u) => new HostState({ address: u.host, port: u.port, labels: {}, locality: '', weight: 1, origin: 'test', serviceAccount: 'default', namespace: 'default', workloadName: '', key: `${u.host}:${u.port}` })),
  );
  const picker = createPicker(set, settings, { random: seededRandom(1), clock: new ManualClock(), locality: '', labels: {}, outlierDetection: false });
  assert.match(picker.kind, /RING_HASH/);
  return (key) => byKey.get(picker.pick({ hash: hash32(key), avoid: undefined })?.key ?? '') ?? '?';
}

describe('outlier detection', () => {
  const ups: Upstream[] = [];
  after(async () => {
    await Promise.all(ups.map((u) => u.close()));
  });

  test('consecutive 5xx eject an endpoint; it returns after baseEjectionTime', async () => {
    let failing = true;
    const bad = await startUpstream('bad', (_q, res) => {
      res.statusCode = failing ? 500 : 200;
      res.end();
    });
    const good = await startUpstream('good');
    ups.push(bad, good);
    const clock = new ManualClock(1000);
    const events: OutboundEvent[] = [];
    const mesh = await meshFor(
      [{ port: bad.port }, { port: good.port }],
      [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }],
      { trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 3, interval: '1s', baseEjectionTime: '10s', maxEjectionPercent: 100 } } },
      { clock },
    );
    mesh.on('ejected', (e: OutboundEvent) => events.push(e));
    mesh.on('returned', (e: OutboundEvent) => events.push(e));
    try {
      for (let i = 0; i < 10; i++) await call(mesh, 'http://svc/');
      assert.equal(bad.hits, 3, 'ejected after the third consecutive 5xx');
      assert.equal(events[0]?.type, 'ejected');
      assert.equal(events[0]?.endpoint, `127.0.0.1:${bad.port}`);
      assert.match(events[0]?.reason ?? '', /5xx/);
      const e = mesh.explain({ url: 'http://svc/' });
      const ep = e.targets[0]?.endpoints.find((x) => x.endpoint === `127.0.0.1:${bad.port}`);
      assert.equal(ep?.ejected, true);
      assert.match(ep?.ejection ?? '', /returns in/);
      const goodBefore = good.hits;
      for (let i = 0; i < 6; i++) assert.equal((await call(mesh, 'http://svc/')).upstream, 'good');
      assert.equal(good.hits - goodBefore, 6);
      failing = false;
      clock.advance(11_000);
      assert.equal(events.at(-1)?.type, 'returned');
      const badBefore = bad.hits;
      for (let i = 0; i < 6; i++) await call(mesh, 'http://svc/');
      assert.ok(bad.hits - badBefore >= 2, 'the endpoint takes traffic again');
    } finally {
      await mesh.close();
    }
  });

  test('every endpoint ejected: 503 UH (panic threshold 0)', async () => {
    const bad = await startUpstream('allbad', (_q, res) => {
      res.statusCode = 502;
      res.end();
    });
    ups.push(bad);
    const mesh = await meshFor(
      [{ port: bad.port }],
      [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }],
      { trafficPolicy: { outlierDetection: { consecutiveGatewayErrors: 2, baseEjectionTime: '30s' } } },
      { clock: new ManualClock() },
    );
    try {
      assert.equal((await call(mesh, 'http://svc/')).status, 502);
      assert.equal((await call(mesh, 'http://svc/')).status, 502);
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 503);
      assert.equal(r.flags, 'UH');
      assert.equal(r.body, 'no healthy upstream');
      assert.equal(bad.hits, 2);
    } finally {
      await mesh.close();
    }
  });

  test('maxEjectionPercent caps ejections (one is always allowed)', async () => {
    const bads = await Promise.all([0, 1, 2, 3].map((i) => startUpstream(`b${i}`, (_q, res) => { res.statusCode = 503; res.end(); })));
    ups.push(...bads);
    const mesh = await meshFor(
      bads.map((b) => ({ port: b.port })),
      [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }],
      { trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 1, maxEjectionPercent: 10 } } },
      { clock: new ManualClock() },
    );
    try {
      for (let i = 0; i < 12; i++) await call(mesh, 'http://svc/');
      const eps = mesh.explain({ url: 'http://svc/' }).targets[0]?.endpoints ?? [];
      assert.equal(eps.filter((e) => e.ejected).length, 1);
    } finally {
      await mesh.close();
    }
  });
});

describe('connection-pool circuit breaking', () => {
  test('maxConnections 1 + http1MaxPendingRequests 1: the third concurrent request overflows (503 UO)', async () => {
    const release: (() => void)[] = [];
    const up = await startUpstream('slow', (_q, res) => {
      release.push(() => res.end('done'));
    });
    const mesh = await meshFor(
      [{ port: up.port }],
      [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }],
      { trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } } },
    );
    try {
      const calls = [0, 1, 2].map(() => call(mesh, 'http://svc/'));
      const [c0, c1, c2] = calls as [Promise<Awaited<ReturnType<typeof call>>>, Promise<Awaited<ReturnType<typeof call>>>, Promise<Awaited<ReturnType<typeof call>>>];
      const third = await c2;
      assert.equal(third.status, 503);
      assert.equal(third.flags, 'UO');
      assert.equal(third.headers.get('x-envoy-overloaded'), 'true');
      while (release.length === 0) await new Promise((r) => setTimeout(r, 5));
      assert.equal(up.hits, 1, 'only one request at a time reaches the upstream');
      release.shift()?.();
      assert.equal((await c0).status, 200);
      while (release.length === 0) await new Promise((r) => setTimeout(r, 5));
      release.shift()?.();
      assert.equal((await c1).status, 200, 'the queued request went out when the slot freed');
      assert.match(mesh.explain({ url: 'http://svc/' }).targets[0]?.connectionPool ?? '', /overflows 1/);
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  test('a reload that raises the limits lets a queued request go at once (not at the next release)', async () => {
    const release: (() => void)[] = [];
    const up = await startUpstream('slow', (_q, res) => {
      release.push(() => res.end('done'));
    });
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-limits-'));
    const write = (maxConnections: number) =>
      writeFileSync(
        join(dir, 'svc.json'),
        [
          serviceEntry('svc', SVC, 80, [{ port: up.port }]),
          virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }]),
          destinationRule('svc', 'svc', { trafficPolicy: { connectionPool: { tcp: { maxConnections }, http: { http1MaxPendingRequests: 1 } } } }),
        ]
          .map((d) => JSON.stringify(d))
          .join('\n---\n'),
      );
    write(1);
    const mesh = await createMesh({ service: 'client', config: dir, watch: false });
    try {
      const first = call(mesh, 'http://svc/');
      await until(() => release.length === 1, 'the first request at the upstream');
      const second = call(mesh, 'http://svc/');
      await until(() => mesh.explain({ url: 'http://svc/' }).targets[0]?.connectionPool?.includes('pending 1/1') === true, 'the second request queued');
      write(2);
      assert.equal(await mesh.reload(), true);
      await until(() => release.length === 2, 'the queued request at the upstream');
      assert.equal(up.hits, 2, 'the queued request reached the upstream while the first is still held');
      for (const r of release.splice(0)) r();
      assert.deepEqual([(await first).status, (await second).status], [200, 200]);
    } finally {
      for (const r of release.splice(0)) r();
      await mesh.close();
      await up.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('retries beyond connectionPool.http.maxRetries are refused with UO', async () => {
    const up = await startUpstream('r503', (_q, res) => {
      setTimeout(() => {
        res.statusCode = 503;
        res.end();
      }, 20);
    });
    const mesh = await meshFor(
      [{ port: up.port }],
      [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, retryOn: '503', retryIgnorePreviousHosts: false } }],
      { trafficPolicy: { connectionPool: { http: { maxRetries: 1 } } } },
    );
    try {
      const rs = await Promise.all([0, 1, 2, 3].map(() => call(mesh, 'http://svc/')));
      assert.ok(rs.every((r) => r.status === 503));
      assert.ok(rs.some((r) => (r.flags ?? '').includes('UO')), `flags ${rs.map((r) => r.flags).join(' ')}`);
      assert.ok(up.hits < 12, `hits ${up.hits}: retries were capped`);
    } finally {
      await mesh.close();
      await up.close();
    }
  });
  test("one call's retries follow each other under connectionPool.http.maxRetries: 1 (a retry's slot is given back at its answer, as Envoy's shouldRetry runs resetRetry before canCreate)", async () => {
    const up = await startUpstream('r503', (_q, res) => {
      res.statusCode = 503;
      res.end();
    });
    const mesh = await meshFor(
      [{ port: up.port }],
      [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 3, retryOn: '503', retryIgnorePreviousHosts: false } }],
      { trafficPolicy: { connectionPool: { http: { maxRetries: 1 } } } },
    );
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 503);
      assert.equal(up.hits, 4, 'the first attempt and its three retries');
      assert.equal(r.flags, 'URX');
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});

describe('load balancing over real endpoints', () => {
  test('LEAST_REQUEST (the default) steers load away from an endpoint whose requests are still in flight', async () => {
    // No latency to measure: 'slow' holds every request it gets until the end of the test, so
    // after its first one it always has more requests in flight than 'fast', which answers each
    // call before the next starts. P2C over two endpoints draws twice, independently, as Envoy
    // does: 'slow' is chosen only when both draws hit it (1/4), so it gets about a quarter.
    const held: ServerResponse[] = [];
    const slow = await startUpstream('slow', (_q, res) => void held.push(res));
    const fast = await startUpstream('fast');
    const mesh = await meshFor([{ port: slow.port }, { port: fast.port }], [{ route: [{ destination: { host: 'svc' } }] }], {});
    const calls: Promise<Awaited<ReturnType<typeof call>>>[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const slowBefore = slow.hits;
        let answered = false;
        const c = call(mesh, 'http://svc/').finally(() => {
          answered = true;
        });
        calls.push(c);
        // Answered by 'fast', or held by 'slow': either way this call has picked its endpoint.
        await until(() => answered || slow.hits > slowBefore, 'the request to reach an upstream');
      }
      assert.equal(slow.hits + fast.hits, 40);
      assert.ok(slow.hits >= 1 && slow.hits <= 16, `slow got ${slow.hits} of 40 requests; about 10 expected (both draws on it)`);
      for (const res of held) res.end();
      for (const r of await Promise.all(calls)) assert.equal(r.status, 200);
    } finally {
      for (const res of held) if (!res.writableEnded) res.end();
      await Promise.allSettled(calls);
      await mesh.close();
      await slow.close();
      await fast.close();
    }
  });

  test('consistentHash on a header sends each key to the endpoint the ring names for it, every time; a cookie is generated with ttl', async () => {
    // Three endpoints on distinct loopback addresses. Their ports are the OS's, so which
    // endpoint owns which key differs from run to run: the test asks meshlet's own ring (the
    // picker the mesh builds for these settings, over these endpoints) for the owner of each
    // candidate key, takes two keys per endpoint, and checks that the mesh sends every request
    // of a key to that owner. Spread is then certain by construction, and a mesh that ignored
    // the header (or a ring that ignored the hash) fails the equality.
    const ups = await startOnAddresses(['a', 'b', 'c'], ['127.0.0.11', '127.0.0.12', '127.0.0.13']);
    const endpoints = ups.map((u) => ({ port: u.port, address: u.host }));
    const lb = { consistentHash: { httpHeaderName: 'x-user' } };
    const mesh = await meshFor(endpoints, [{ route: [{ destination: { host: 'svc' } }] }], { trafficPolicy: { loadBalancer: lb } });
    const m2 = await meshFor(endpoints, [{ route: [{ destination: { host: 'svc' } }] }], {
      trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { name: 'affinity', ttl: '60s', path: '/' } } } },
    });
    try {
      const owner = ringOwners(ups, lb);
      const keys = new Map<string, string>(); // key → expected upstream name
      const perUpstream = new Map<string, number>();
      for (let i = 0; i < 500 && keys.size < 6; i++) {
        const key = `user-${i}`;
        const up = owner(key);
        if ((perUpstream.get(up) ?? 0) >= 2) continue;
        perUpstream.set(up, (perUpstream.get(up) ?? 0) + 1);
        keys.set(key, up);
      }
      assert.deepEqual([...perUpstream.values()], [2, 2, 2], `the ring gives every endpoint keys (${JSON.stringify([...perUpstream])})`);
      const seen = new Map<string, string[]>();
      for (let round = 0; round < 10; round++) {
        for (const key of keys.keys()) {
          const r = await call(mesh, 'http://svc/', { headers: { 'x-user': key } });
          assert.equal(r.status, 200);
          seen.set(key, [...(seen.get(key) ?? []), r.upstream ?? '']);
        }
      }
      for (const [key, expected] of keys) assert.deepEqual(seen.get(key), Array(10).fill(expected), `${key}: every request on ${expected}`);

      const first = await call(m2, 'http://svc/');
      const cookie = first.headers.get('set-cookie') ?? '';
      assert.match(cookie, /^affinity="[0-9a-f]+"; Max-Age=60; Path=\/; HttpOnly$/);
      const value = cookie.split(';')[0] as string;
      const pinned = new Set<string>();
      for (let i = 0; i < 10; i++) pinned.add((await call(m2, 'http://svc/', { headers: { cookie: value } })).upstream ?? '');
      assert.equal(pinned.size, 1);
      assert.deepEqual([...pinned], [owner(value.slice('affinity="'.length, -1))], 'the cookie value is the hash key');
    } finally {
      await mesh.close();
      await m2.close();
      await Promise.all(ups.map((u) => u.close()));
    }
  });
});

describe('locality load balancing', () => {
  test('with outlierDetection, traffic stays in the client locality and fails over when it is ejected', async () => {
    let localUp = true;
    const local = await startUpstream('local', (_q, res) => {
      res.statusCode = localUp ? 200 : 503;
      res.end();
    });
    const remote = await startUpstream('remote');
    const mesh = await createMesh({
      service: 'client',
      locality: 'us-east/a/1',
      random: seededRandom(5),
      clock: new ManualClock(),
      config: [
        serviceEntry('svc', SVC, 80, [
          { port: local.port, locality: 'us-east/a/1' },
          { port: remote.port, locality: 'us-west/b/1' },
        ]),
        virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }]),
        destinationRule('svc', 'svc', { trafficPolicy: { outlierDetection: { consecutive5xxErrors: 2, maxEjectionPercent: 100 } } }),
      ],
    });
    try {
      for (let i = 0; i < 20; i++) assert.equal((await call(mesh, 'http://svc/')).upstream, 'local');
      localUp = false;
      await call(mesh, 'http://svc/');
      await call(mesh, 'http://svc/');
      for (let i = 0; i < 10; i++) assert.equal((await call(mesh, 'http://svc/')).upstream, 'remote');
    } finally {
      await mesh.close();
      await local.close();
      await remote.close();
    }
  });

  test('without outlierDetection, locality does not change the balance', async () => {
    const a = await startUpstream('a');
    const b = await startUpstream('b');
    const mesh = await createMesh({
      service: 'client',
      locality: 'us-east/a/1',
      random: seededRandom(5),
      config: [
        serviceEntry('svc', SVC, 80, [
          { port: a.port, locality: 'us-east/a/1' },
          { port: b.port, locality: 'us-west/b/1' },
        ]),
      ],
    });
    try {
      for (let i = 0; i < 40; i++) await call(mesh, 'http://svc/');
      assert.ok(a.hits > 5 && b.hits > 5, `a ${a.hits} b ${b.hits}`);
    } finally {
      await mesh.close();
      await a.close();
      await b.close();
    }
  });
});

describe('ServiceEntry resolution', () => {
  test('DNS endpoints are resolved by name; NONE sends to the original destination', async () => {
    const up = await startUpstream('named');
    const mesh = await createMesh({
      service: 'client',
      config: [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'dns', namespace: 'default' },
          spec: {
            hosts: ['db.example.test'],
            location: 'MESH_EXTERNAL',
            resolution: 'DNS',
            ports: [{ number: 8000, name: 'http', protocol: 'HTTP', targetPort: up.port }],
            endpoints: [{ address: 'localhost' }],
          },
        },
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'none', namespace: 'default' },
          spec: { hosts: ['localhost'], location: 'MESH_EXTERNAL', resolution: 'NONE', ports: [{ number: up.port, name: 'http', protocol: 'HTTP' }] },
        },
        virtualService('none', ['localhost'], [{ route: [{ destination: { host: 'localhost' } }], headers: { request: { set: { 'x-via': 'none-rule' } } } }]),
      ],
    });
    try {
      const r = await call(mesh, 'http://db.example.test:8000/q');
      assert.equal(r.upstream, 'named');
      const n = await call(mesh, `http://localhost:${up.port}/p`);
      assert.equal(n.upstream, 'named');
      assert.equal(up.seen.at(-1)?.headers['x-via'], 'none-rule', 'the request was routed by the mesh, then sent to its original address');
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});
