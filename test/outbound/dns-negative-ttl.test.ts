/**
 * A name that does not exist (NXDOMAIN) or has no addresses, with a real DNS server on 127.0.0.1
 * answering the mesh's resolver (the default one, its lookups pointed at the server):
 *
 * - the resolver's answer is empty, and says how long it holds: the zone's SOA minimum (RFC 2308),
 *   found by walking up from the name to its zone;
 * - a `resolution: DNS` ServiceEntry whose name goes away loses its hosts (Envoy's c-ares resolver
 *   reports NXDOMAIN as a success with no records; the cluster keeps nothing), and is asked again
 *   once the SOA minimum has passed, at a `dnsRefreshRate` tick (c-ares's query cache answers
 *   from memory until then) — not after the failure backoff with the old hosts kept, as before;
 *   a positive answer is kept for its records' TTL (Istio's `respect_dns_ttl`);
 * - an east-west gateway name that answers NXDOMAIN stands for no gateway for the SOA's time
 *   (istiod's `minimalTTL` reads the authority SOA), not a fixed 30 s.
 */
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createMesh, ManualClock } from '../../src/index.ts';
import { systemDnsResolver } from '../../src/outbound/dns-target.ts';
import { GatewayNames } from '../../src/outbound/gateway-names.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { until } from '../helpers/until.ts';
import { call } from '../helpers/upstreams.ts';

const quiet = { warn: () => undefined, error: () => undefined, info: () => undefined };

describe('negative DNS answers', () => {
  let dns: TestDnsServer;
  let resolver: Resolver;
  /** The OS's lookup, asked of the test server instead: its A (and AAAA) records, NXDOMAIN as ENOTFOUND. */
  let lookupVia: (name: string, family: 0 | 4 | 6) => Promise<string[]>;
  before(async () => {
    dns = await startDnsServer();
    dns.zone('meshlet.test', 300);
    resolver = new Resolver({ timeout: 1000, tries: 1 });
    resolver.setServers([dns.server]);
    lookupVia = async (name, family) => {
      const asks = family === 0 ? [resolver.resolve4(name), resolver.resolve6(name)] : [family === 4 ? resolver.resolve4(name) : resolver.resolve6(name)];
      const got = await Promise.allSettled(asks);
      const ok = got.filter((g): g is PromiseFulfilledResult<string[]> => g.status === 'fulfilled');
      if (ok.length === 0) throw (got[0] as PromiseRejectedResult).reason;
      return ok.flatMap((g) => g.value);
    };
  });
  after(() => dns.close());

  it("the resolver's empty answer holds for the zone's SOA minimum", async () => {
    const resolve = systemDnsResolver(resolver, lookupVia);
    assert.deepEqual(await resolve('gone.meshlet.test', 4), { addresses: [], ttlMs: 300_000 }, 'NXDOMAIN: the SOA of meshlet.test, one label up');
    assert.deepEqual(await resolve('deep.er.gone.meshlet.test', 4), { addresses: [], ttlMs: 300_000 }, 'several labels up');
    dns.set('v6only.meshlet.test', ['fd00::1'], 30);
    assert.deepEqual(await resolve('v6only.meshlet.test', 4), { addresses: [], ttlMs: 300_000 }, 'NODATA (no A record): the SOA too');
    assert.deepEqual(await resolve('gone.elsewhere.test', 4), { addresses: [], ttlMs: undefined }, 'no SOA anywhere: no TTL (dnsRefreshRate applies)');
    dns.set('up.meshlet.test', ['127.0.0.1'], 7);
    assert.deepEqual(await resolve('up.meshlet.test', 4), { addresses: ['127.0.0.1'], ttlMs: 7_000 }, 'a positive answer: its records’ TTL');
  });

  it('a DNS ServiceEntry whose name goes away loses its hosts, and is asked again after the SOA minimum (at a refresh)', async () => {
    const server = createServer((_req, res) => res.end('db'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const host = 'db.meshlet.test';
    dns.set(host, ['127.0.0.1'], 5);
    const clock = new ManualClock();
    const mesh = await createMesh({
      service: 'client',
      clock,
      logger: quiet,
      config: [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'db', namespace: 'default' },
          spec: { hosts: ['db.example.test'], location: 'MESH_EXTERNAL', resolution: 'DNS', ports: [{ number: 80, name: 'http', protocol: 'HTTP', targetPort: port }], endpoints: [{ address: host }] },
        },
      ],
      dns: { resolve: systemDnsResolver(resolver, lookupVia), refreshRateMs: 60_000 },
    });
    const asked = () => dns.asked.filter((q) => q === `${host}/A`).length;
    /** Waits for `n` questions (a resolution started by the clock is a real query); where none should come, a short while. */
    const questions = async (n: number, patienceMs = 10_000) => {
      for (let i = 0; i < patienceMs / 5 && asked() < n; i++) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 30));
    };
    try {
      assert.equal((await call(mesh, 'http://db.example.test/')).body, 'db');
      const q0 = asked();
      // The name goes away; its 5 s TTL runs out: asked again, NXDOMAIN.
      dns.delete(host);
      clock.advance(4_999);
      await questions(q0 + 1, 500);
      assert.equal(asked(), q0, 'not before the 5 s TTL');
      clock.advance(1);
      await questions(q0 + 1);
      assert.ok(asked() > q0, 'asked again at the TTL');
      await until(async () => (await call(mesh, 'http://db.example.test/')).status === 503, 'the cluster has no hosts once the name is gone');
      const q1 = asked();
      // The name comes back, but the NXDOMAIN holds for the zone's 300 s (five 60 s refreshes).
      dns.set(host, ['127.0.0.1'], 5);
      clock.advance(299_999);
      await questions(q1 + 1, 500);
      assert.equal(asked(), q1, 'not asked again before the SOA minimum (300 s)');
      clock.advance(1);
      await questions(q1 + 1);
      assert.ok(asked() > q1, 'asked again at 300 s');
      await until(async () => (await call(mesh, 'http://db.example.test/')).body === 'db', 'served again once the name resolves');
    } finally {
      await mesh.close();
      await new Promise((r) => server.close(r));
    }
  });

  it('an east-west gateway name that answers NXDOMAIN stands for no gateway for the SOA minimum', async () => {
    dns.zone('gw.test', 120);
    const clock = new ManualClock();
    const names = new GatewayNames({ resolve: systemDnsResolver(resolver, lookupVia), refreshMs: 60_000, clock, logger: quiet });
    try {
      names.use(['east.gw.test']);
      await until(() => names.view()[0]?.addresses !== null, 'the name answered');
      assert.deepEqual(names.view()[0], { hostname: 'east.gw.test', addresses: [], refreshInMs: 120_000, lastError: null });
    } finally {
      await names.close();
    }
  });
});
