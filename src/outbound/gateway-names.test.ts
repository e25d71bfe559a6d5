/** The gateway host name cache (istiod's networkGatewayNameCache, network_test.go TestGatewayHostnames) on a ManualClock. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.ts';
import type { DnsAnswer } from './dns-target.ts';
import { GatewayNames, MAX_GATEWAY_TTL_MS, MIN_GATEWAY_TTL_MS } from './gateway-names.ts';

const NAME = 'gw.example.com';

/** A resolver whose answer a test sets; counts and records the questions. */
function fakeDns(first: DnsAnswer | Error) {
  let answer: DnsAnswer | Error = first;
  const asked: [string, number][] = [];
  return {
    asked,
    set(a: DnsAnswer | Error) {
      answer = a;
    },
    resolve: async (name: string, family: 0 | 4 | 6): Promise<DnsAnswer> => {
      asked.push([name, family]);
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
}

/** Lets the resolver's promise settle (its answer is processed in a microtask). */
const turn = () => new Promise<void>((r) => setImmediate(r));

function setup(first: DnsAnswer | Error, refreshMs = 60_000) {
  const clock = new ManualClock();
  const dns = fakeDns(first);
  const warnings: string[] = [];
  const infos: string[] = [];
  const names = new GatewayNames({ resolve: dns.resolve, refreshMs, clock, logger: { warn: (m) => warnings.push(m), info: (m) => infos.push(m) } });
  let changes = 0;
  names.onChange = () => changes++;
  return { clock, dns, names, warnings, infos, changes: () => changes };
}

/** Advances to just before and just after `ms`, saying whether the name was resolved again only after it. */
async function refreshedAt(t: ReturnType<typeof setup>, ms: number): Promise<boolean> {
  const before = t.dns.asked.length;
  t.clock.advance(ms - 1);
  await turn();
  if (t.dns.asked.length !== before) return false;
  t.clock.advance(1);
  await turn();
  return t.dns.asked.length === before + 1;
}

describe('GatewayNames', () => {
  it('resolves A and AAAA (family 0), sorted and unique; a compile waiting for the first answer is not told of a change', async () => {
    const t = setup({ addresses: ['2001:db8::1', '10.0.0.2', '10.0.0.1', '10.0.0.2', 'not-an-ip'], ttlMs: 120_000 });
    assert.deepEqual(t.names.use([NAME]), [NAME]);
    assert.equal(t.names.lookup(NAME), undefined);
    await t.names.settle([NAME]);
    assert.deepEqual(t.dns.asked, [[NAME, 0]]);
    assert.deepEqual(t.names.lookup(NAME), ['10.0.0.1', '10.0.0.2', '2001:db8::1']);
    assert.equal(t.changes(), 0);
    assert.deepEqual(t.names.use([NAME]), []);
    assert.deepEqual(t.names.view(), [{ hostname: NAME, addresses: ['10.0.0.1', '10.0.0.2', '2001:db8::1'], refreshInMs: 120_000, lastError: null }]);
    // Whole milliseconds (the system clock is performance.now(), fractional).
    t.clock.advance(1_000.4);
    assert.equal(t.names.view()[0]?.refreshInMs, 119_000);
  });

  it('keeps an answer for its TTL clamped to [30 s, 1 h]; without a TTL, dnsRefreshRate (clamped too)', async () => {
    for (const [ttlMs, refreshMs, want] of [
      [5_000, 60_000, MIN_GATEWAY_TTL_MS],
      [7_200_000, 60_000, MAX_GATEWAY_TTL_MS],
      [90_000, 60_000, 90_000],
      [undefined, 60_000, 60_000],
      [undefined, 10_000, MIN_GATEWAY_TTL_MS],
      [undefined, 86_400_000, MAX_GATEWAY_TTL_MS],
    ] as const) {
      const t = setup({ addresses: ['10.0.0.1'], ttlMs }, refreshMs);
      t.names.use([NAME]);
      await t.names.settle([NAME]);
      assert.ok(await refreshedAt(t, want), `ttl ${ttlMs}, refresh ${refreshMs}: resolved again after ${want} ms`);
      t.names.close();
    }
  });

  it('a changed answer is announced (once), an unchanged one is not', async () => {
    const t = setup({ addresses: ['10.0.0.1'], ttlMs: 30_000 });
    t.names.use([NAME]);
    await t.names.settle([NAME]);
    t.dns.set({ addresses: ['10.0.0.9'], ttlMs: 30_000 });
    assert.ok(await refreshedAt(t, 30_000));
    assert.equal(t.changes(), 1);
    assert.deepEqual(t.names.lookup(NAME), ['10.0.0.9']);
    assert.match(t.infos.join('\n'), /gw\.example\.com" resolves to 10\.0\.0\.9 \(was 10\.0\.0\.1\)/);
    assert.ok(await refreshedAt(t, 30_000));
    assert.equal(t.changes(), 1);
  });

  it('a failed resolution keeps the previous addresses, is retried after 30 s, and is logged once per change', async () => {
    const t = setup({ addresses: ['10.0.0.1'], ttlMs: 600_000 });
    t.names.use([NAME]);
    await t.names.settle([NAME]);
    t.dns.set(Object.assign(new Error('queryA ESERVFAIL gw.example.com'), { code: 'ESERVFAIL' }));
    assert.ok(await refreshedAt(t, 600_000));
    assert.deepEqual(t.names.lookup(NAME), ['10.0.0.1']);
    assert.equal(t.changes(), 0);
    assert.ok(await refreshedAt(t, MIN_GATEWAY_TTL_MS));
    assert.ok(await refreshedAt(t, MIN_GATEWAY_TTL_MS));
    assert.equal(t.warnings.length, 1, t.warnings.join('\n'));
    assert.match(t.warnings[0] ?? '', /could not resolve east-west gateway host name "gw\.example\.com": queryA ESERVFAIL gw\.example\.com; keeping its last addresses 10\.0\.0\.1 \(retried in 30 s\)/);
    assert.equal(t.names.view()[0]?.lastError, 'queryA ESERVFAIL gw.example.com');
    // Recovered with another answer: announced.
    t.dns.set({ addresses: ['10.0.0.2'], ttlMs: 600_000 });
    assert.ok(await refreshedAt(t, MIN_GATEWAY_TTL_MS));
    assert.deepEqual(t.names.lookup(NAME), ['10.0.0.2']);
    assert.equal(t.changes(), 1);
    assert.equal(t.names.view()[0]?.lastError, null);
  });

  it('no such name (ENOTFOUND) is an answer without addresses, as istiod reads NXDOMAIN: the gateways go, announced and logged', async () => {
    const t = setup({ addresses: ['10.0.0.1'], ttlMs: 30_000 });
    t.names.use([NAME]);
    await t.names.settle([NAME]);
    t.dns.set(Object.assign(new Error('getaddrinfo ENOTFOUND gw.example.com'), { code: 'ENOTFOUND' }));
    assert.ok(await refreshedAt(t, 30_000));
    assert.deepEqual(t.names.lookup(NAME), []);
    assert.equal(t.changes(), 1);
    assert.match(t.warnings.join('\n'), /could not resolve east-west gateway host name "gw\.example\.com": no addresses; it stands for no gateway/);
  });

  it('a name no compile uses any more is forgotten: no more lookups', async () => {
    const t = setup({ addresses: ['10.0.0.1'], ttlMs: 30_000 });
    t.names.use([NAME]);
    await t.names.settle([NAME]);
    t.names.use([]);
    assert.equal(t.names.lookup(NAME), undefined);
    assert.deepEqual(t.names.view(), []);
    const asked = t.dns.asked.length;
    t.clock.advance(MAX_GATEWAY_TTL_MS * 2);
    await turn();
    assert.equal(t.dns.asked.length, asked);
    assert.equal(t.clock.pending, 0);
  });

  it('settle waits at most its bound (on the clock); the late first answer is then announced', async () => {
    const t = setup({ addresses: ['10.0.0.1'] });
    let release: (a: DnsAnswer) => void = () => undefined;
    const names = new GatewayNames({ resolve: () => new Promise<DnsAnswer>((r) => (release = r)), refreshMs: 60_000, clock: t.clock, logger: { warn: (m) => t.warnings.push(m) }, waitMs: 5_000 });
    let changed = 0;
    names.onChange = () => changed++;
    names.use([NAME]);
    let settled = false;
    const waiting = names.settle([NAME]).then(() => (settled = true));
    await turn();
    assert.equal(settled, false);
    t.clock.advance(5_000);
    await waiting;
    assert.match(t.warnings.join('\n'), /gw\.example\.com not resolved within 5000 ms: the config is applied without that gateway for now/);
    assert.equal(names.lookup(NAME), undefined);
    release({ addresses: ['10.0.0.7'] });
    await turn();
    assert.deepEqual(names.lookup(NAME), ['10.0.0.7']);
    assert.equal(changed, 1);
    names.close();
  });

  it('a first resolution that fails leaves the name without addresses (an answer: compiles do not wait for it again)', async () => {
    const t = setup(new Error('connect ECONNREFUSED 127.0.0.1:53'));
    t.names.use([NAME]);
    await t.names.settle([NAME]);
    assert.deepEqual(t.names.lookup(NAME), []);
    assert.deepEqual(t.names.use([NAME]), []);
    assert.match(t.warnings.join('\n'), /ECONNREFUSED 127\.0\.0\.1:53; it stands for no gateway \(retried in 30 s\)/);
  });

  it('close stops every refresh', async () => {
    const t = setup({ addresses: ['10.0.0.1'], ttlMs: 30_000 });
    t.names.use([NAME, 'other.example.com']);
    await t.names.settle([NAME, 'other.example.com']);
    await t.names.close();
    assert.equal(t.clock.pending, 0);
    assert.deepEqual(t.names.use([NAME]), []);
  });
});
