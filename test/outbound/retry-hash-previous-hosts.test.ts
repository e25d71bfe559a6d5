/**
 * Retries under consistent hashing and `retryIgnorePreviousHosts`, as istiod configures Envoy
 * (pilot/pkg/networking/core/route/retry/retry.go `ConvertPolicy`): with a hash policy the
 * default previous-hosts predicate is left out, so a retry goes back to the key's endpoint; an
 * explicit `retryIgnorePreviousHosts: true` adds it, and Envoy then reselects with the attempt
 * number — the ring's next point (ring_hash_lb.cc `Ring::chooseHost`), Maglev's hash mutated
 * (maglev_lb.cc `MaglevTable::chooseHost`). meshlet used to ignore the explicit `true` under
 * consistent hashing, so every retry of a key whose endpoint failed hit that endpoint again.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createMesh, type LoadBalancerSettings, ManualClock, type Mesh, seededRandom } from '../../src/index.ts';
import { createPicker, HostSet, HostState } from '../../src/internals.ts';
import { hash32 } from '../../src/routing/balancer/hash.ts';
import { call, destinationRule, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const SVC = 'svc.example.internal';

function meshFor(ups: readonly Upstream[], retries: object, lb: LoadBalancerSettings): Promise<Mesh> {
  return createMesh({
    service: 'client',
    random: seededRandom(5),
    config: [
      serviceEntry('svc', SVC, 80, ups.map((u) => ({ port: u.port }))),
      virtualService('svc', [SVC], [{ route: [{ destination: { host: SVC } }], retries }]),
      destinationRule('svc', SVC, { trafficPolicy: { loadBalancer: lb } }),
    ],
  });
}

/** meshlet's own picker over these endpoints: a key the failing one owns, whose first reselection away from it lands elsewhere. */
function keyOwnedBy(ups: readonly Upstream[], bad: Upstream, lb: LoadBalancerSettings): string {
  const hosts = ups.map((u) => new HostState({ address: u.host, port: u.port, labels: {}, locality: '', weight: 1, origin: 'test', serviceAccount: 'default', namespace: 'default', workloadName: '', key: `${u.host}:${u.port}` }));
  const picker = createPicker(new HostSet(hosts), lb, { random: seededRandom(1), clock: new ManualClock(), locality: '', labels: {}, outlierDetection: false });
  const badHost = hosts[ups.indexOf(bad)] as HostState;
  for (let i = 0; i < 10_000; i++) {
    const key = `user-${i}`;
    const h = hash32(key);
    if (picker.pick({ hash: h, avoid: undefined }) === badHost && picker.pick({ hash: h, avoid: [badHost] }) !== badHost) return key;
  }
  throw new Error('no key found');
}

describe('retries with consistent hashing', () => {
  const ups: Upstream[] = [];
  after(async () => {
    await Promise.all(ups.map((u) => u.close()));
  });

  for (const [name, lb] of [
    ['ring hash', { consistentHash: { httpHeaderName: 'x-user' } }],
    ['maglev', { consistentHash: { httpHeaderName: 'x-user', maglev: { tableSize: 65537 } } }],
  ] as const) {
    test(`${name}: retryIgnorePreviousHosts: true moves the retry off the key's failing endpoint; unset, the retry returns to it (Istio leaves the predicate out)`, async () => {
      const bad = await startUpstream(`bad-${name}`, (_q, res) => {
        res.statusCode = 503;
        res.end('down');
      });
      const good = await startUpstream(`good-${name}`);
      ups.push(bad, good);
      const key = keyOwnedBy([bad, good], bad, lb);

      const avoiding = await meshFor([bad, good], { attempts: 2, retryOn: '5xx', retryIgnorePreviousHosts: true }, lb);
      try {
        const r = await call(avoiding, `http://${SVC}/`, { headers: { 'x-user': key } });
        assert.equal(r.status, 200);
        assert.equal(r.upstream, good.name);
        assert.equal(bad.hits, 1, 'the first attempt went to the key’s endpoint, the retry elsewhere');
      } finally {
        await avoiding.close();
      }

      const sticky = await meshFor([bad, good], { attempts: 2, retryOn: '5xx' }, lb);
      try {
        const r = await call(sticky, `http://${SVC}/`, { headers: { 'x-user': key } });
        assert.equal(r.status, 503);
        assert.equal(bad.hits, 1 + 3, 'every attempt went to the key’s endpoint');
        assert.equal(good.hits, 1);
      } finally {
        await sticky.close();
      }
    });
  }

  test("a rule with more than one destination keeps avoiding the key's failing endpoint: istiod makes weighted clusters of it and converts its policy without the hash policy (route.go: consistentHash only for a single destination)", async () => {
    const lb = { consistentHash: { httpHeaderName: 'x-user' } } as const;
    const bad = await startUpstream('bad-weighted', (_q, res) => {
      res.statusCode = 503;
      res.end('down');
    });
    const good = await startUpstream('good-weighted');
    ups.push(bad, good);
    const key = keyOwnedBy([bad, good], bad, lb);
    const retries = { attempts: 2, retryOn: '5xx' };
    const config = [
      serviceEntry('svc', SVC, 80, [bad, good].map((u) => ({ port: u.port, labels: { version: 'v1' } }))),
      destinationRule('svc', SVC, { trafficPolicy: { loadBalancer: lb }, subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }),
    ];
    // v2 takes nothing yet (a canary at 0 %, no endpoint: analysis off): the rule is still a weighted one.
    const split = [{ destination: { host: SVC, subset: 'v1' }, weight: 100 }, { destination: { host: SVC, subset: 'v2' }, weight: 0 }];
    const weighted = await createMesh({ service: 'client', random: seededRandom(5), analysis: 'off', config: [...config, virtualService('svc', [SVC], [{ route: split, retries }])] });
    try {
      const r = await call(weighted, `http://${SVC}/`, { headers: { 'x-user': key } });
      assert.equal(r.status, 200);
      assert.equal(r.upstream, good.name);
      assert.equal(bad.hits, 1, 'the first attempt went to the key’s endpoint, the retry elsewhere');
    } finally {
      await weighted.close();
    }
    // The same rule with its one destination: the hash policy leaves the predicate out.
    const single = await createMesh({ service: 'client', random: seededRandom(5), analysis: 'off', config: [...config, virtualService('svc', [SVC], [{ route: [{ destination: { host: SVC, subset: 'v1' } }], retries }])] });
    try {
      const r = await call(single, `http://${SVC}/`, { headers: { 'x-user': key } });
      assert.equal(r.status, 503);
      assert.equal(bad.hits, 1 + 3, 'every attempt of the single-destination rule went to the key’s endpoint');
    } finally {
      await single.close();
    }
  });

  test("a service without a VirtualService keeps avoiding the key's failing endpoint: istiod converts its default route's policy without the hash policy (BuildDefaultHTTPOutboundRoute); a rule without retries does not", async () => {
    const lb = { consistentHash: { httpHeaderName: 'x-user' } } as const;
    const bad = await startUpstream('bad-default', (_q, res) => {
      res.statusCode = 503;
      res.end('down');
    });
    const good = await startUpstream('good-default');
    ups.push(bad, good);
    const key = keyOwnedBy([bad, good], bad, lb);
    const config = [serviceEntry('svc', SVC, 80, [bad, good].map((u) => ({ port: u.port }))), destinationRule('svc', SVC, { trafficPolicy: { loadBalancer: lb } })];
    // The mesh's default retries 5xx (Istio's own retries no status), retryIgnorePreviousHosts unset.
    const defaultHttpRetryPolicy = { attempts: 2, retryOn: '5xx' };
    const noRule = await createMesh({ service: 'client', random: seededRandom(5), config, defaultHttpRetryPolicy });
    try {
      const r = await call(noRule, `http://${SVC}/`, { headers: { 'x-user': key } });
      assert.equal(r.status, 200);
      assert.equal(r.upstream, good.name);
      assert.equal(bad.hits, 1);
    } finally {
      await noRule.close();
    }
    const rule = await createMesh({ service: 'client', random: seededRandom(5), config: [...config, virtualService('svc', [SVC], [{ route: [{ destination: { host: SVC } }] }])], defaultHttpRetryPolicy });
    try {
      const r = await call(rule, `http://${SVC}/`, { headers: { 'x-user': key } });
      assert.equal(r.status, 503);
      assert.equal(bad.hits, 1 + 3, 'every attempt of the rule went to the key’s endpoint');
    } finally {
      await rule.close();
    }
  });
});
