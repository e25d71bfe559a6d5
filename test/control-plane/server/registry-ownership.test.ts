/**
 * Who may change which registry record, and which addresses a workload may register (issue 11,
 * point 8): a record belongs to the service that registered it, record names cannot collide
 * across services or addresses, and addresses that are not a workload endpoint are refused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AddressPolicy, loopbackByDefault } from '../../../src/control-plane-server/address-policy.ts';
import { workloadName } from '../../../src/control-plane-server/api-workloads.ts';
import { MemoryRegistry } from '../../../src/control-plane-server/memory-registry.ts';
import type { WireResource } from '../../../src/control-plane/protocol.ts';
import { isMeshletError } from '../../../src/core/errors.ts';
import { api, startTestServer, type TestServer } from './helpers.ts';

const register = (s: TestServer, token: string, body: object) => api(s.url, 'POST', '/v1/workloads', { token, body });

describe('a workload cannot take over another service’s registry record', { timeout: 60_000 }, () => {
  let s: TestServer;
  let gateway: string;
  let apiToken: string;
  before(async () => {
    // DNS names allowed, so the address of the original attack is accepted and only naming and ownership protect the victim.
    s = await startTestServer(undefined, { registrationAddresses: { hostnames: true } });
    gateway = await s.cp.mintToken({ service: 'api-gateway', namespace: 'default' });
    apiToken = await s.cp.mintToken({ service: 'api', namespace: 'default' });
  });
  after(() => s.close());

  it('“api” registering address gateway-127-0-0-1 gets its own record; api-gateway’s stays, and its renewals keep working', async () => {
    const victim = await register(s, gateway, { address: '127.0.0.1', ports: { http: 9080 }, leaseMs: 30_000 });
    assert.equal(victim.status, 200, JSON.stringify(victim.body));
    const attack = await register(s, apiToken, { address: 'gateway-127-0-0-1', ports: { http: 9080 } });
    assert.equal(attack.status, 200, JSON.stringify(attack.body));
    assert.notEqual(attack.body.name, victim.body.name, 'the readable parts are the same; the names are not');
    const all = (await api(s.url, 'GET', '/v1/workloads', { token: s.admin })).body.workloads as { name: string; workload: WireResource }[];
    const victimNow = all.find((w) => w.name === victim.body.name);
    assert.ok(victimNow !== undefined);
    assert.equal((victimNow.workload.spec as { address: string }).address, '127.0.0.1');
    assert.equal(victimNow.workload.metadata.labels?.app, 'api-gateway');
    const renewed = await api(s.url, 'PUT', `/v1/workloads/default/${victim.body.name}/lease`, { token: gateway });
    assert.equal(renewed.status, 200, JSON.stringify(renewed.body));
  });

  it('the owner alone renews and deregisters (403 otherwise); an admin may do both', async () => {
    const own = await register(s, gateway, { address: '10.9.0.1', ports: { http: 9080 } });
    const path = `/v1/workloads/default/${own.body.name}`;
    for (const [method, p] of [
      ['PUT', `${path}/lease`],
      ['DELETE', path],
    ] as const) {
      const r = await api(s.url, method, p, { token: apiToken });
      assert.equal(r.status, 403, `${method} ${p}`);
      assert.match(r.body.error.message, /is registered by service default\/api-gateway, not default\/api/);
    }
    assert.equal((await api(s.url, 'PUT', `${path}/lease`, { token: s.admin })).status, 200);
    assert.equal((await api(s.url, 'DELETE', path, { token: s.admin })).status, 200);
  });

  it('a workload token lists only the records it owns', async () => {
    await register(s, gateway, { address: '10.9.0.2', ports: { http: 9080 } });
    const mine = (await api(s.url, 'GET', '/v1/workloads', { token: apiToken })).body.workloads as { workload: WireResource }[];
    assert.ok(mine.length > 0);
    assert.ok(mine.every((w) => w.workload.metadata.labels?.app === 'api'));
  });

  it('names: one registration, one name; different owner, group, address or port, another name; valid DNS-1123 names of at most 253 characters', () => {
    const owner = { namespace: 'default', service: 'api' };
    const base = workloadName(owner, 'api', '10.0.0.1', 80);
    assert.equal(workloadName(owner, 'api', '10.0.0.1', 80), base);
    const others = [
      workloadName({ namespace: 'default', service: 'api-gateway' }, 'api', '10.0.0.1', 80),
      workloadName({ namespace: 'prod', service: 'api' }, 'api', '10.0.0.1', 80),
      workloadName(owner, 'api-v2', '10.0.0.1', 80),
      workloadName(owner, 'api', '10.0.0.2', 80),
      workloadName(owner, 'api', '10.0.0.1', 81),
    ];
    assert.equal(new Set([base, ...others]).size, 6);
    // IPv6 splits anywhere: group a-b + c::1 reads like group a + b:c::1; the hash keeps them apart.
    assert.notEqual(workloadName(owner, 'a-b', 'c::1', 80), workloadName(owner, 'a', 'b:c::1', 80));
    const long = workloadName(owner, `${'g'.repeat(250)}`, '10.0.0.1', 80);
    assert.equal(long.length, 253);
    assert.match(long, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
  });
});

describe('MemoryRegistry: records belong to their owner', () => {
  const entry = (name: string, address: string): WireResource => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name, namespace: 'default' },
    spec: { address, ports: { http: 9080 } },
  });

  it('another service cannot replace (409), renew or deregister (403) a record; the owner can; expiry frees the name', async () => {
    const r = new MemoryRegistry();
    await r.register(entry('x', '10.0.0.1'), 'gateway', 60_000);
    await assert.rejects(r.register(entry('x', '10.6.6.6'), 'api', 60_000), (e: unknown) => isMeshletError(e, 'MESHLET_ERR_CONTROL_PLANE') && e.httpStatus === 409);
    await assert.rejects(r.renew('default', 'x', 'api'), (e: unknown) => isMeshletError(e) && e.httpStatus === 403);
    await assert.rejects(r.deregister('default', 'x', 'api'), (e: unknown) => isMeshletError(e) && e.httpStatus === 403);
    assert.equal((r.list()[0]!.entry.spec as { address: string }).address, '10.0.0.1');
    assert.equal(r.owned('default', 'gateway'), 1);
    assert.equal(r.owned('default', 'api'), 0);
    await r.register(entry('x', '10.0.0.2'), 'gateway', 60_000);
    assert.equal(r.owned('default', 'gateway'), 1, 'replacing its own record does not count twice');
    assert.ok(await r.renew('default', 'x', 'gateway'));
    assert.equal(await r.deregister('default', 'x', 'gateway'), true);
    assert.equal(r.owned('default', 'gateway'), 0);
    await r.close();
  });
});

describe('which addresses a workload may register', () => {
  const policy = (o: ConstructorParameters<typeof AddressPolicy>[0]) => new AddressPolicy(o);
  const cases: [string, string, ConstructorParameters<typeof AddressPolicy>[0], string | RegExp][] = [
    ['a private IPv4', '10.0.0.7', { loopback: false }, '10.0.0.7'],
    ['a public IPv6, made canonical', '2001:DB8:0:0::1', { loopback: false }, '2001:db8::1'],
    ['an IPv4-mapped IPv6 is the IPv4 address', '::ffff:10.0.0.7', { loopback: false }, '10.0.0.7'],
    ['AWS/GCP/Azure metadata', '169.254.169.254', { loopback: false }, /cloud metadata/],
    ['ECS task metadata', '169.254.170.2', { loopback: false }, /cloud metadata/],
    ['AWS IPv6 metadata', 'fd00:ec2::254', { loopback: false }, /cloud metadata/],
    ['Alibaba metadata', '100.100.100.200', { loopback: false }, /cloud metadata/],
    ['metadata behind an IPv4-mapped IPv6', '::ffff:169.254.169.254', { loopback: false }, /::ffff:169\.254\.169\.254 \(169\.254\.169\.254\) is a cloud metadata/],
    ['metadata behind NAT64', '64:ff9b::a9fe:a9fe', { loopback: false }, /cloud metadata/],
    ['IPv4 link-local', '169.254.10.1', { loopback: false }, /link-local/],
    ['IPv6 link-local', 'fe80::1', { loopback: false }, /link-local/],
    ['IPv6 with a zone', 'fe80::1%eth0', { loopback: false }, /zone index/],
    ['unspecified IPv4', '0.0.0.0', { loopback: true }, /unspecified, multicast or broadcast/],
    ['unspecified IPv6', '::', { loopback: true }, /unspecified, multicast or broadcast/],
    ['IPv4 multicast', '239.1.2.3', { loopback: true }, /unspecified, multicast or broadcast/],
    ['IPv6 multicast', 'ff02::1', { loopback: true }, /unspecified, multicast or broadcast/],
    ['broadcast', '255.255.255.255', { loopback: true }, /unspecified, multicast or broadcast/],
    ['loopback, not allowed', '127.0.0.1', { loopback: false }, /loopback address/],
    ['loopback IPv6, not allowed', '::1', { loopback: false }, /loopback address/],
    ['loopback mapped, not allowed', '::ffff:127.0.0.2', { loopback: false }, /loopback address/],
    ['loopback, allowed', '127.0.0.1', { loopback: true }, '127.0.0.1'],
    ['a DNS name, not allowed', 'api.example.com', { loopback: true }, /not an IP address/],
    ['a DNS name, allowed', 'API.example.com', { loopback: false, hostnames: true }, 'api.example.com'],
    ['a unix socket', 'unix:///var/run/app.sock', { loopback: true, hostnames: true }, /unix:\/\/ socket/],
    ['allow list: inside', '10.1.2.3', { loopback: false, allow: ['10.0.0.0/8'] }, '10.1.2.3'],
    ['allow list: outside', '192.168.0.1', { loopback: false, allow: ['10.0.0.0/8', 'fd00::/8'] }, /not in the allowed ranges \(10\.0\.0\.0\/8, fd00::\/8\)/],
    ['allow list: loopback outside it even when loopback is allowed', '127.0.0.1', { loopback: true, allow: ['10.0.0.0/8'] }, /not in the allowed ranges/],
    ['allow list admits a link-local range on purpose', '169.254.10.1', { loopback: false, allow: ['169.254.10.0/24'] }, '169.254.10.1'],
    ['allow list never admits multicast', '239.1.2.3', { loopback: false, allow: ['224.0.0.0/4'] }, /unspecified, multicast or broadcast/],
  ];
  for (const [title, address, options, want] of cases) {
    it(title, () => {
      const r = policy(options).check(address);
      if (typeof want === 'string') assert.deepEqual(r, { ok: true, address: want });
      else {
        assert.equal(r.ok, false);
        assert.match((r as { reason: string }).reason, want);
      }
    });
  }

  it('peerOnly: only the address the request comes from (in any of its spellings)', () => {
    const p = policy({ loopback: false, peerOnly: true });
    assert.deepEqual(p.check('10.0.0.7', '10.0.0.7'), { ok: true, address: '10.0.0.7' });
    assert.deepEqual(p.check('::ffff:10.0.0.7', '10.0.0.7'), { ok: true, address: '10.0.0.7' });
    assert.deepEqual(p.check('2001:DB8::1', '2001:db8:0::1'), { ok: true, address: '2001:db8::1' });
    assert.match((p.check('10.0.0.8', '10.0.0.7') as { reason: string }).reason, /only the address the request comes from \(10\.0\.0\.7\) may be registered/);
    assert.match((p.check('169.254.169.254', '169.254.169.254') as { reason: string }).reason, /cloud metadata/, 'the classes still apply');
  });

  it('refuses a bad allow list at construction, naming the entry', () => {
    for (const bad of ['10.0.0.0/33', 'not-an-ip', '10.0.0.0/8/1', 'fd00::/129', '10.0.0.0/x']) {
      assert.throws(() => policy({ loopback: false, allow: [bad] }), new RegExp(`"${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}" is not an IP address or CIDR`));
    }
  });

  it('loopback is allowed by default only when the server listens on loopback, or runs --insecure', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.equal(loopbackByDefault(host, false), true, host);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '']) {
      assert.equal(loopbackByDefault(host, false), false, host);
      assert.equal(loopbackByDefault(host, true), true, `${host} --insecure`);
    }
  });
});

describe('the address policy over HTTP', { timeout: 60_000 }, () => {
  const servers: TestServer[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });
  const start = async (options: Parameters<typeof startTestServer>[1]) => {
    const s = await startTestServer(undefined, options);
    servers.push(s);
    return { s, token: await s.cp.mintToken({ service: 'reviews', namespace: 'default' }) };
  };

  it('refuses (403) a metadata address, a link-local one, and — on a server not limited to loopback — the loopback peer, naming why', async () => {
    const { s, token } = await start({ registrationAddresses: { loopback: false } });
    const meta = await register(s, token, { address: '169.254.169.254', ports: { http: 80 } });
    assert.equal(meta.status, 403);
    assert.match(meta.body.error.message, /^register: address 169\.254\.169\.254 cannot be registered: 169\.254\.169\.254 is a cloud metadata service address$/);
    assert.equal((await register(s, token, { address: 'fe80::1', ports: { http: 80 } })).status, 403);
    // No address: the request's own address (127.0.0.1 here) is registered, and it is loopback.
    const peer = await register(s, token, { ports: { http: 80 } });
    assert.equal(peer.status, 403);
    assert.match(peer.body.error.message, /the address the request came from, 127\.0\.0\.1, cannot be registered \(give the workload's address\): 127\.0\.0\.1 is a loopback address/);
    assert.equal((await register(s, token, { address: '10.0.0.7', ports: { http: 80 } })).status, 200);
    const listed = (await api(s.url, 'GET', '/v1/workloads', { token: s.admin })).body.workloads as unknown[];
    assert.equal(listed.length, 1, 'nothing refused was stored');
  });

  it('a server listening on loopback accepts loopback addresses by default; the allow list restricts', async () => {
    const loop = await start({});
    assert.equal((await register(loop.s, loop.token, { ports: { http: 80 } })).status, 200);
    const ranged = await start({ registrationAddresses: { allow: ['10.0.0.0/8'] } });
    assert.equal((await register(ranged.s, ranged.token, { address: '10.3.0.1', ports: { http: 80 } })).status, 200);
    const out = await register(ranged.s, ranged.token, { address: '192.168.1.1', ports: { http: 80 } });
    assert.equal(out.status, 403);
    assert.match(out.body.error.message, /not in the allowed ranges \(10\.0\.0\.0\/8\)/);
  });

  it('peerOnly: a workload registers the address it connects from, and nothing else', async () => {
    const { s, token } = await start({ registrationAddresses: { peerOnly: true } });
    assert.equal((await register(s, token, { ports: { http: 80 } })).status, 200);
    assert.equal((await register(s, token, { address: '127.0.0.1', ports: { http: 81 } })).status, 200);
    const other = await register(s, token, { address: '10.0.0.7', ports: { http: 80 } });
    assert.equal(other.status, 403);
    assert.match(other.body.error.message, /only the address the request comes from \(127\.0\.0\.1\) may be registered/);
  });

  it('startControlPlane refuses a bad allow list before opening anything', async () => {
    await assert.rejects(startTestServer(undefined, { registrationAddresses: { allow: ['10.0.0.0/40'] } }), /"10\.0\.0\.0\/40" is not an IP address or CIDR/);
  });
});
