/**
 * The default resolver of `resolution: DNS` names gives the records' TTL, so a name is
 * re-resolved when its records expire, as Istio configures Envoy's STRICT_DNS clusters
 * (`respect_dns_ttl: true`; `dnsRefreshRate`, 60 s, only for answers without a TTL and after
 * failures). It used to take the OS's `lookup` alone, which gives no TTL: every name was kept for
 * 60 s whatever its records said — a record with a 5 s TTL moved 55 s late. The addresses stay
 * the OS's (`/etc/hosts`, search domains); the TTL comes from the same name's A/AAAA records, and
 * only when they name the addresses the OS gave.
 */
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createMesh, ManualClock } from '../../src/index.ts';
import { systemDnsResolver } from '../../src/outbound/dns-target.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { call } from '../helpers/upstreams.ts';

describe('the default DNS resolver', () => {
  let dns: TestDnsServer;
  let resolver: Resolver;
  before(async () => {
    dns = await startDnsServer();
    resolver = new Resolver({ timeout: 1000, tries: 1 });
    resolver.setServers([dns.server]);
  });
  after(() => dns.close());

  it("gives the smallest TTL of the records that name the OS's addresses, none otherwise", async () => {
    const resolve = systemDnsResolver(resolver);
    // `localhost` is 127.0.0.1 in /etc/hosts (the OS's answer); the DNS server's records carry the TTLs.
    dns.setRecords('localhost', [
      { address: '127.0.0.1', ttl: 7 },
      { address: '10.9.9.9', ttl: 2 },
    ]);
    assert.deepEqual(await resolve('localhost', 4), { addresses: ['127.0.0.1'], ttlMs: 7_000 }, "a record for another address (here 10.9.9.9) is not the answer's");
    dns.set('localhost', ['10.9.9.9'], 2);
    assert.deepEqual(await resolve('localhost', 4), { addresses: ['127.0.0.1'], ttlMs: undefined }, "the records are not the OS's answer: no TTL");
    dns.delete('localhost');
    assert.deepEqual(await resolve('localhost', 4), { addresses: ['127.0.0.1'], ttlMs: undefined }, 'a name only /etc/hosts knows: no TTL');
    dns.set('localhost', ['127.0.0.1'], 0);
    assert.deepEqual(await resolve('localhost', 4), { addresses: ['127.0.0.1'], ttlMs: 0 }, 'TTL 0: the refresh rate applies (DnsTarget)');
    assert.deepEqual(await resolve('no-such-name.invalid', 4), { addresses: [], ttlMs: undefined }, "the OS's NXDOMAIN is an answer with no addresses (no SOA here: no TTL)");
  });

  it('re-resolves a DNS ServiceEntry at its TTL (mesh clock), and at dnsRefreshRate when the records give none', async () => {
    const server = createServer((_req, res) => res.end('db'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    dns.set('localhost', ['127.0.0.1'], 5);
    const clock = new ManualClock();
    const mesh = await createMesh({
      service: 'client',
      clock,
      config: [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'db', namespace: 'default' },
          spec: { hosts: ['db.example.test'], location: 'MESH_EXTERNAL', resolution: 'DNS', ports: [{ number: 80, name: 'http', protocol: 'HTTP', targetPort: port }], endpoints: [{ address: 'localhost' }] },
        },
      ],
      dns: { resolve: systemDnsResolver(resolver) },
    });
    const asked = () => dns.asked.filter((q) => q === 'localhost/A').length;
    /**
     * Lets a resolution started by the clock finish (a real lookup and a real DNS query): waits
     * until the server was asked `n` times, at most `patienceMs` — generous where a query is
     * expected (a loaded machine), one second where none should come.
     */
    const resolved = async (n: number, patienceMs = 10_000) => {
      for (let i = 0; i < patienceMs / 5 && asked() < n; i++) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 20));
    };
    try {
      const q0 = asked();
      assert.equal((await call(mesh, 'http://db.example.test/')).body, 'db');
      assert.equal(asked(), q0 + 1, 'resolved once for the first call');
      clock.advance(4_999);
      await resolved(q0 + 2, 1000);
      assert.equal(asked(), q0 + 1, 'not before the TTL');
      // The next answer has no record for the address: kept for dnsRefreshRate (60 s).
      dns.set('localhost', ['10.9.9.9'], 5);
      clock.advance(1);
      await resolved(q0 + 2);
      assert.equal(asked(), q0 + 2, 're-resolved when the 5 s TTL ran out (not 60 s later)');
      clock.advance(59_999);
      await resolved(q0 + 3, 1000);
      assert.equal(asked(), q0 + 2, 'an answer without its TTL is kept for dnsRefreshRate');
      clock.advance(1);
      await resolved(q0 + 3);
      assert.equal(asked(), q0 + 3);
      assert.equal((await call(mesh, 'http://db.example.test/')).body, 'db');
    } finally {
      await mesh.close();
      await new Promise((r) => server.close(r));
    }
  });
});
