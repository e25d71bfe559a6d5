import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, isMeshletError } from '../../../src/core/errors.ts';
import type { WireResource } from '../../../src/control-plane/protocol.ts';
import { EtcdClient } from '../../../src/control-plane-server/etcd/client.ts';
import { EtcdConfigStore } from '../../../src/control-plane-server/etcd/config-store.ts';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import type { ConfigState } from '../../../src/control-plane-server/store.ts';
import { contentVersion } from '../../../src/routing/compile.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';

const NET = 'networking.istio.io/v1';

function serviceEntry(name: string, port = 9080): WireResource {
  return {
    apiVersion: NET,
    kind: 'ServiceEntry',
    metadata: { name, namespace: 'default' },
    spec: {
      hosts: [`${name}.default.svc.cluster.local`],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: port, name: 'http', protocol: 'HTTP' }],
      endpoints: [
        { address: '127.0.0.1', ports: { http: 19081 }, labels: { version: 'v1' } },
        { address: '127.0.0.1', ports: { http: 19082 }, labels: { version: 'v2' } },
      ],
    },
  };
}
const reviewsRule: WireResource = {
  apiVersion: NET,
  kind: 'DestinationRule',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] },
};
function route(subset: string): WireResource {
  return {
    apiVersion: NET,
    kind: 'VirtualService',
    metadata: { name: 'reviews', namespace: 'default' },
    spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset } }] }] },
  };
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('EtcdConfigStore: replicas sharing one etcd', { skip: skipWithout('etcd') }, () => {
  let etcd: EtcdServer;
  let a: EtcdStores;
  let b: EtcdStores;
  let raw: EtcdClient;
  const seenByB: ConfigState[] = [];
  const warnings: string[] = [];

  before(async () => {
    etcd = await startEtcd();
    raw = new EtcdClient(etcd.endpoints);
    // Whole-set validation is exercised with analysis errors (IST0101): these stores block on them.
    a = await openEtcd(etcd.endpoints, { prefix: '/cs', analysis: 'blocking', logger: { warn: (m) => warnings.push(m) } });
    b = await openEtcd(etcd.endpoints, { prefix: '/cs/', analysis: 'blocking' });
    b.store.onChange((s) => seenByB.push(s));
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await raw?.close();
    await etcd?.stop();
  });

  it('starts empty with the empty content version on both replicas', () => {
    assert.equal(a.store.current().version, contentVersion([]));
    assert.equal(b.store.current().version, a.store.current().version);
    assert.deepEqual(a.store.health, { kind: 'etcd', location: etcd.endpoints[0], healthy: true });
  });

  it('an apply on one replica is committed in one txn and seen by the other with the same version', async () => {
    const res = await a.store.apply([serviceEntry('reviews'), reviewsRule], 'test apply');
    assert.deepEqual(res.applied, [
      { ref: 'ServiceEntry default/reviews', action: 'created' },
      { ref: 'DestinationRule default/reviews', action: 'created' },
    ]);
    assert.equal(a.store.current().version, res.version, 'the applying replica serves it when apply resolves');
    await until('replica B to see it', () => b.store.current().version === res.version);
    assert.equal(seenByB.length, 1, 'both resources arrive together (one txn, one change)');
    assert.deepEqual(b.store.current().resources.map((r) => r.ref).sort(), ['DestinationRule default/reviews', 'ServiceEntry default/reviews']);
    const stored = JSON.parse((await raw.get('/cs/config/ServiceEntry/default/reviews'))!.value) as WireResource;
    assert.equal(stored.kind, 'ServiceEntry');
    assert.match(stored.metadata.creationTimestamp ?? '', /^\d{4}-/);

    const again = await a.store.apply([serviceEntry('reviews')], 'test re-apply');
    assert.deepEqual(again.applied, [{ ref: 'ServiceEntry default/reviews', action: 'unchanged' }]);
    assert.equal(again.version, res.version);

    const fromB = await b.store.apply([route('v1')], 'apply on B');
    await until('replica A to see B\'s apply', () => a.store.current().version === fromB.version);
    assert.notEqual(fromB.version, res.version);
  });

  it('an apply that makes two VirtualServices claim one host is refused (IST0109 is an error; these stores block), naming both', async () => {
    const before = a.store.current().version;
    const canary: WireResource = { ...route('v2'), metadata: { name: 'reviews-canary', namespace: 'default' } };
    await assert.rejects(a.store.apply([canary], 'canary'), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const text = err.issues.map(String).join('\n');
      assert.match(text, /VirtualService default\/reviews-canary: spec\.hosts\[0\]: host reviews\.default\.svc\.cluster\.local is also claimed by VirtualService default\/reviews \(older: this one is ignored for that host\)/);
      assert.match(text, /VirtualService default\/reviews: spec\.hosts\[0\]: host reviews\.default\.svc\.cluster\.local is also claimed by VirtualService default\/reviews-canary \(newer: it is ignored for that host\)/);
      return true;
    });
    assert.equal(await raw.get('/cs/config/VirtualService/default/reviews-canary'), undefined);
    assert.equal(a.store.current().version, before);
  });

  it('rejects an invalid apply with every issue and writes nothing', async () => {
    const before = a.store.current().version;
    await assert.rejects(a.store.apply([route('v9')], 'bad apply'), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.issues.map(String).join('\n'), /IST0101|subset "v9"/);
      return true;
    });
    const stored = JSON.parse((await raw.get('/cs/config/VirtualService/default/reviews'))!.value) as WireResource;
    assert.deepEqual(stored.spec, route('v1').spec);
    assert.equal(a.store.current().version, before);
  });

  it('bad values written directly in etcd are skipped by every replica, reported with their keys, and do not block applies', async () => {
    const good = a.store.current().version;
    const served = a.store.current().resources.map((r) => r.ref).sort();
    const rejectedB = b.store.rejections().length;
    const badVs = { ...route('v1'), metadata: { name: 'bad', namespace: 'default' }, spec: { hosts: ['reviews'], http: [{ timeout: 'soon', route: [{ destination: { host: 'reviews' } }] }] } };
    await raw.put('/cs/config/ServiceEntry/default/junk', '{not json');
    await raw.put('/cs/config/VirtualService/default/bad', JSON.stringify(badVs));
    await raw.put('/cs/config/VirtualService/default/misnamed', JSON.stringify(route('v1')));
    const keys = ['/cs/config/ServiceEntry/default/junk', '/cs/config/VirtualService/default/bad', '/cs/config/VirtualService/default/misnamed'];
    await until('both replicas to skip them', () => [a, b].every((x) => (x.store.health.skipped ?? []).length === 3));
    for (const x of [a, b]) {
      const h = x.store.health;
      assert.equal(h.healthy, false, 'the source is unhealthy while values are skipped');
      assert.match(h.error ?? '', /3 stored value\(s\) skipped as invalid/);
      assert.deepEqual(h.skipped!.map((v) => v.key).sort(), [...keys].sort());
      assert.equal(x.store.current().version, good, 'the rest is served, unchanged');
    }
    const byKey = new Map(a.store.health.skipped!.map((v) => [v.key, v]));
    assert.deepEqual(byKey.get(keys[0]!), { key: keys[0], resource: 'ServiceEntry default/junk', reasons: ['the value is not JSON'] });
    assert.match(byKey.get(keys[1]!)!.reasons.join('\n'), /VirtualService default\/bad: spec\.http\[0\]\.timeout: invalid duration "soon"/);
    assert.deepEqual(byKey.get(keys[2]!)!.reasons, ['the key names VirtualService/default/misnamed but the value is VirtualService/default/reviews']);
    assert.ok(b.store.rejections().length > rejectedB, 'the skipped values are listed as refused changes too');
    assert.ok(warnings.some((w) => w.includes('skipping') && w.includes('/cs/config/ServiceEntry/default/junk')));

    // Bad values do not block a valid apply (they used to, until someone deleted them by hand).
    const applied = await a.store.apply([serviceEntry('ratings')], 'apply next to bad values');
    assert.deepEqual(applied.applied, [{ ref: 'ServiceEntry default/ratings', action: 'created' }]);
    assert.ok(applied.warnings.some((w) => w.startsWith('/cs/config/ServiceEntry/default/junk: skipped, not served: the value is not JSON')), applied.warnings.join('\n'));
    await until('B to serve the apply', () => b.store.current().version === applied.version);
    assert.deepEqual(b.store.current().resources.map((r) => r.ref).sort(), [...served, 'ServiceEntry default/ratings'].sort());
    // An apply that writes a bad value is refused as before.
    await assert.rejects(a.store.apply([badVs], 'apply of a bad value'), (err: unknown) => err instanceof ConfigError && /invalid duration "soon"/.test(err.message));

    // Repairs through the API: delete removes a bad key, apply replaces one.
    assert.equal((await a.store.delete('ServiceEntry', 'default', 'junk', 'repair: delete')).deleted, true);
    assert.equal((await a.store.delete('VirtualService', 'default', 'misnamed', 'repair: delete')).deleted, true);
    const fixedVs = { ...badVs, spec: { hosts: ['reviews-bad.example.com'], http: [{ timeout: '2s', route: [{ destination: { host: 'reviews' } }] }] } };
    const repaired = await b.store.apply([fixedVs], 'repair: apply');
    assert.deepEqual(repaired.applied, [{ ref: 'VirtualService default/bad', action: 'configured' }]);
    assert.deepEqual(repaired.warnings, []);
    await until('A to see the repair', () => a.store.current().version === repaired.version);
    for (const x of [a, b]) {
      assert.equal(x.store.health.skipped, undefined);
      assert.equal(x.store.health.healthy, true);
    }
    assert.ok(a.store.current().resources.some((r) => r.ref === 'VirtualService default/bad'));
    await a.store.delete('VirtualService', 'default', 'bad', 'cleanup');
    await a.store.delete('ServiceEntry', 'default', 'ratings', 'cleanup');
  });

  it('a set that is invalid as a whole (blocking analysis) is refused by every replica, which keep serving the last good version', async () => {
    const good = a.store.current().version;
    const rejectedA = a.store.rejections().length;
    const rejectedB = b.store.rejections().length;
    await raw.put('/cs/config/VirtualService/default/reviews', JSON.stringify(route('v9')));
    await until('both replicas to refuse it', () => a.store.rejections().length > rejectedA && b.store.rejections().length > rejectedB);
    assert.equal(a.store.current().version, good);
    assert.equal(b.store.current().version, good);
    const latest = b.store.rejections()[0]!;
    assert.match(latest.origin, /^etcd write at revision \d+ \(VirtualService\/default\/reviews\)$/);
    assert.ok(latest.reasons.some((r) => r.includes('subset "v9"')), latest.reasons.join('\n'));
    assert.ok(warnings.some((w) => w.includes(`still serving version ${good}`)));
    // In blocking mode the whole set must hold: an apply is refused, naming what to repair...
    await assert.rejects(a.store.apply([serviceEntry('ratings')], 'apply over a bad set'), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /subset "v9"/);
      return true;
    });
    // ...and the apply that repairs it is accepted: back to the same content, so the same version.
    const changes = seenByB.length;
    const fixed = await b.store.apply([route('v1')], 'repair');
    assert.equal(fixed.version, good);
    assert.equal(seenByB.length, changes, 'the repair restored the served content: no change event');
  });

  it('deletes validate the resulting set', async () => {
    const res = await a.store.delete('VirtualService', 'default', 'reviews', 'cleanup');
    assert.equal(res.deleted, true);
    assert.equal(a.store.current().version, res.version);
    await until('B to follow', () => b.store.current().version === res.version);
    assert.deepEqual(await a.store.delete('VirtualService', 'default', 'reviews', 'again'), { deleted: false, version: res.version, warnings: [] });
    await a.store.apply([route('v2')], 'route v2');
    await assert.rejects(a.store.delete('DestinationRule', 'default', 'reviews', 'delete a used rule'), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(String(err.issues[0]), /subset "v2"/);
      return true;
    });
    assert.ok(await raw.get('/cs/config/DestinationRule/default/reviews'));
  });

  it('an apply that lost a race re-reads, re-validates and commits; one that keeps losing is a 409', async () => {
    let n = 0;
    const racer = new EtcdConfigStore(raw, {
      analysis: 'blocking',
      prefix: '/cs',
      beforeCommit: async (attempt) => {
        if (attempt === 1) await b.store.apply([serviceEntry('details')], 'the other replica');
      },
    });
    await racer.start();
    try {
      const res = await racer.apply([serviceEntry('payments')], 'racer');
      await until('A to converge', () => a.store.current().version === res.version);
      const refs = a.store.current().resources.map((r) => r.ref);
      assert.ok(refs.includes('ServiceEntry default/details') && refs.includes('ServiceEntry default/payments'), 'neither write is lost');
    } finally {
      await racer.close();
    }
    const loser = new EtcdConfigStore(raw, {
      analysis: 'blocking',
      prefix: '/cs',
      maxAttempts: 3,
      beforeCommit: async () => {
        n++;
        await raw.put('/cs/config/ServiceEntry/default/details', JSON.stringify(serviceEntry('details', 9000 + n)));
      },
    });
    await loser.start();
    try {
      await assert.rejects(loser.apply([serviceEntry('productpage')], 'loser'), (err: unknown) => {
        assert.ok(isMeshletError(err, 'MESHLET_ERR_CONTROL_PLANE'));
        assert.equal(err.httpStatus, 409);
        assert.match(err.message, /conflict/);
        return true;
      });
      assert.equal(n, 3);
      assert.equal(await raw.get('/cs/config/ServiceEntry/default/productpage'), undefined);
    } finally {
      await loser.close();
    }
  });

  it('a delete by another replica between the read and the commit is noticed: the apply is re-validated', async () => {
    // A VirtualService for another host that routes to reviews' subset v1 (valid until the DestinationRule goes).
    const base = route('v1');
    const other: WireResource = { ...base, metadata: { name: 'reviews-canary', namespace: 'default' }, spec: { ...(base.spec as object), hosts: ['reviews-canary.example.com'] } };
    const racer = new EtcdConfigStore(raw, {
      analysis: 'blocking',
      prefix: '/cs',
      beforeCommit: async (attempt) => {
        if (attempt !== 1) return;
        await a.store.delete('VirtualService', 'default', 'reviews', 'the other replica');
        await a.store.delete('DestinationRule', 'default', 'reviews', 'the other replica');
      },
    });
    await racer.start();
    try {
      await assert.rejects(racer.apply([other], 'racer'), (err: unknown) => err instanceof ConfigError && /subset "v1"/.test(err.message));
      assert.equal(await raw.get('/cs/config/VirtualService/default/reviews-canary'), undefined, 'the invalid set never reached etcd');
      assert.equal(a.store.rejections().some((r) => r.origin.includes('reviews-canary')), false);
    } finally {
      await racer.close();
    }
    await a.store.apply([reviewsRule], 'restore');
  });

  it('concurrent applies on two replicas lose no committed write and converge', async () => {
    const names = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'];
    const outcomes = await Promise.allSettled(names.map((name, i) => (i % 2 === 0 ? a : b).store.apply([serviceEntry(name)], `concurrent ${name}`)));
    const committed = names.filter((_, i) => outcomes[i]!.status === 'fulfilled');
    for (const o of outcomes) if (o.status === 'rejected') assert.equal((o.reason as { httpStatus?: number }).httpStatus, 409);
    assert.ok(committed.length >= 1);
    const keys = (await raw.list('/cs/config/ServiceEntry/default/c')).kvs.map((kv) => kv.key.split('/').pop());
    assert.deepEqual(keys, committed);
    await until('convergence', () => a.store.current().version === b.store.current().version && a.store.current().resources.length === b.store.current().resources.length);
  });

  it('refuses to start on a stored set that is invalid as a whole (blocking analysis), or when etcd is unreachable', async () => {
    await raw.put('/bad/config/VirtualService/default/reviews', JSON.stringify(route('v1')));
    await assert.rejects(openEtcd(etcd.endpoints, { prefix: '/bad', analysis: 'blocking' }), (err: unknown) => err instanceof ConfigError && /IST0101|not found/.test(err.message));
    // Said once, by the rejection (a replica's stderr had it twice: a health warning too).
    const warnings: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m), info: () => undefined };
    await assert.rejects(openEtcd([`http://127.0.0.1:1`], { prefix: '/cs', timeoutMs: 500, logger }), /etcd kv\/range failed on every endpoint: http:\/\/127\.0\.0\.1:1/);
    assert.deepEqual(warnings, []);
  });

  it('starts on stored values of which some are invalid: serves the valid ones and reports the others, as istiod skips an invalid object', async () => {
    await raw.put('/partial/config/ServiceEntry/default/reviews', JSON.stringify(serviceEntry('reviews')));
    await raw.put('/partial/config/DestinationRule/default/reviews', JSON.stringify(reviewsRule));
    await raw.put('/partial/config/VirtualService/default/reviews', '{"kind": "VirtualService", "spec": ');
    await raw.put('/partial/config/DestinationRule/default/broken', JSON.stringify({ ...reviewsRule, metadata: { name: 'broken', namespace: 'default' }, spec: { host: 'reviews', subsets: [{ name: 'V1_bad' }] } }));
    await raw.put('/partial/config/NotAKind/x', JSON.stringify({ kind: 'NotAKind' }));
    const logs: string[] = [];
    const started = await openEtcd(etcd.endpoints, { prefix: '/partial', analysis: 'blocking', logger: { warn: (m) => logs.push(m) } });
    try {
      assert.deepEqual(started.store.current().resources.map((r) => r.ref).sort(), ['DestinationRule default/reviews', 'ServiceEntry default/reviews']);
      const skipped = started.store.health.skipped ?? [];
      assert.deepEqual(skipped.map((v) => [v.key, v.resource]).sort(), [
        ['/partial/config/DestinationRule/default/broken', 'DestinationRule default/broken'],
        ['/partial/config/NotAKind/x', undefined],
        ['/partial/config/VirtualService/default/reviews', 'VirtualService default/reviews'],
      ]);
      assert.match(skipped.find((v) => v.key.endsWith('broken'))!.reasons.join('\n'), /"V1_bad" is not a valid DNS-1123 label/);
      assert.equal(started.store.health.healthy, false);
      assert.ok(logs.some((l) => l.includes('skipping 3 invalid stored value(s)')), logs.join('\n'));
      assert.equal(started.store.rejections().length, 0, 'skipped at start: reported as skipped, not as a refused change');
    } finally {
      await started.close();
    }
  });

  it('advisory analysis (the default): a stored set with an IST0101 finding is served, with the finding', async () => {
    await raw.put('/advisory/config/VirtualService/default/reviews', JSON.stringify(route('v1')));
    const logs: string[] = [];
    const adv = await openEtcd(etcd.endpoints, { prefix: '/advisory', logger: { warn: (m) => logs.push(m) } });
    try {
      assert.equal(adv.store.current().resources.length, 1);
      const codes = adv.store.current().findings.map((f) => f.code);
      assert.ok(codes.length > 0 && codes.every((c) => c === 'IST0101'), codes.join());
      assert.equal(logs.filter((l) => l.includes('IST0101')).length, 1, 'logged once, in one message');
      assert.equal(adv.store.rejections().length, 0);
    } finally {
      await adv.close();
    }
  });

  it('reports etcd as unhealthy while it is down and recovers, then serves writes again', async () => {
    await etcd.kill();
    await until('unhealthy', () => !a.store.health.healthy);
    assert.match(a.store.health.error ?? '', new RegExp(`${etcd.endpoints[0]}.*watch|watch.*${etcd.endpoints[0]}`));
    await assert.rejects(a.store.apply([serviceEntry('offline')], 'offline'), /failed on every endpoint/);
    await etcd.start();
    await until('healthy again', () => a.store.health.healthy && b.store.health.healthy, 8000);
    const res = await a.store.apply([serviceEntry('online')], 'online');
    await until('B to see the write after the restart', () => b.store.current().version === res.version);
  });
});
