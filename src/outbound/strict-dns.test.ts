import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { ManualClock, seededRandom } from '../core/clock.ts';
import { compileSnapshot } from '../routing/compile.ts';
import { ClusterState } from './cluster-state.ts';
import { type DnsAnswer, DnsTarget } from './dns-target.ts';

const settle = () => new Promise((r) => setImmediate(r));

function dnsCluster(endpoints: string) {
  const { resources, errors } = validateYaml(
    doc('networking.istio.io/v1', 'ServiceEntry', 'db', `hosts: [db.example.test]\nlocation: MESH_EXTERNAL\nresolution: DNS\nports: [{ number: 80, name: http, protocol: HTTP }]\n${endpoints}`),
  );
  assert.deepEqual(errors, []);
  const c = compileSnapshot(resources, { service: 'client' }).clusters.get('outbound|80||db.example.test');
  assert.ok(c);
  return c;
}

describe('DnsTarget', () => {
  it('retries a failing name after the refresh rate, doubling up to ten times it, and keeps the last answer', async () => {
    const clock = new ManualClock();
    const times: number[] = [];
    let fail = false;
    const resolve = async (): Promise<DnsAnswer> => {
      times.push(clock.now());
      if (fail) throw new Error('SERVFAIL');
      return { addresses: ['10.0.0.1'] };
    };
    const changes: boolean[] = [];
    const t = new DnsTarget('db.example.test', { resolve, refreshMs: 1_000, family: 4 }, clock, (first) => changes.push(first));
    await settle();
    assert.deepEqual(t.addresses, ['10.0.0.1']);
    fail = true;
    for (let i = 0; i < 30; i++) {
      clock.advance(1_000);
      await settle();
    }
    // 1 s (refresh), then failures back off 1, 2, 4, 8, 10, 10 s…
    assert.deepEqual(times.slice(0, 6), [0, 1_000, 2_000, 4_000, 8_000, 16_000]);
    assert.equal(times[6], 26_000);
    assert.deepEqual(t.addresses, ['10.0.0.1'], 'the last good answer is kept');
    assert.deepEqual(changes, [true], 'failures after a good answer change nothing');
    assert.match(String(t), /db\.example\.test → 10\.0\.0\.1 \(last resolution failed: SERVFAIL\)/);
    t.close();
  });
});

describe('ClusterState of a STRICT_DNS cluster', () => {
  it('a host per address, with the name as its hostname; calls wait for the first answer, and one given up is forgotten', async () => {
    const clock = new ManualClock();
    let answer: (a: DnsAnswer) => void = () => undefined;
    const resolve = () => new Promise<DnsAnswer>((r) => (answer = r));
    const cs = new ClusterState(dnsCluster('endpoints: [{ address: db-1.example.test, labels: { v: one } }, { address: 10.9.9.9 }]'), {
      clock,
      random: seededRandom(1),
      locality: '',
      labels: {},
      onOutlierEvent: () => undefined,
      dns: { resolve, refreshMs: 60_000, family: 4 },
    });
    assert.equal(cs.dnsPending, true);
    assert.deepEqual(cs.hostSet.hosts.map((h) => h.key), ['10.9.9.9:80']);
    let went = 0;
    const kept = () => went++;
    const given = () => went++;
    assert.equal(cs.waitForDns(kept), true);
    assert.equal(cs.waitForDns(given), true);
    cs.stopWaitingForDns(given);
    answer({ addresses: ['10.0.0.1', '10.0.0.2', '10.0.0.1', 'not-an-ip'] });
    await settle();
    assert.equal(went, 1, 'only the call still waiting goes');
    assert.equal(cs.dnsPending, false);
    assert.equal(cs.waitForDns(kept), false);
    const hosts = cs.hostSet.hosts.map((h) => [h.key, h.endpoint.hostname, h.endpoint.labels.v]);
    assert.deepEqual(hosts, [
      ['10.0.0.1:80', 'db-1.example.test', 'one'],
      ['10.0.0.2:80', 'db-1.example.test', 'one'],
      ['10.9.9.9:80', undefined, undefined],
    ]);
    assert.equal(cs.hostSet.hosts[0]?.warmingSince, Number.NEGATIVE_INFINITY, "the first answer's hosts are not slow-started");
    assert.match(String(cs), /DNS db-1\.example\.test → 10\.0\.0\.1, 10\.0\.0\.2$/);
    await cs.close();
  });
});
