import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PeerIdentity } from '../core/context.ts';
import { ManualClock } from '../core/clock.ts';
import { InboundTlsStats, MAX_TRACKED_PEERS } from './tls-stats.ts';

const peer = (sa: string): PeerIdentity => ({ principal: `spiffe://cluster.local/ns/bar/sa/${sa}`, trustDomain: 'cluster.local', namespace: 'bar', serviceAccount: sa, address: '10.0.0.1' });
const counts = (s: InboundTlsStats) => {
  const c = s.counts();
  return { ...c, peers: { ...c.peers } };
};

describe('InboundTlsStats', () => {
  it('counts plaintext and mTLS requests, the latter by principal', () => {
    const s = new InboundTlsStats({ service: 'httpbin', namespace: 'foo', labels: {}, serviceAccount: 'httpbin' });
    s.record(undefined, 'GET', 80, '10.0.0.1');
    s.record(peer('a'), 'GET', 80, '10.0.0.1');
    s.record(peer('a'), 'GET', 80, '10.0.0.1');
    s.record(peer('b'), 'GET', 80, '10.0.0.1');
    // A plaintext peer as the explain tool writes it (principal '').
    s.record({ ...peer('x'), principal: '' }, 'GET', 80, '10.0.0.1');
    const { lastPlaintextAt, ...c } = counts(s);
    assert.deepEqual(c, { plaintext: 2, mtls: 3, peers: { 'spiffe://cluster.local/ns/bar/sa/a': 2, 'spiffe://cluster.local/ns/bar/sa/b': 1 } });
    assert.equal(typeof lastPlaintextAt, 'number');
  });

  it('keeps the most recently seen principals only; a principal seen again is kept', () => {
    const s = new InboundTlsStats({ service: 'httpbin', namespace: 'foo', labels: {}, serviceAccount: 'httpbin' }, 2);
    s.record(peer('a'), 'GET', 80, '');
    s.record(peer('b'), 'GET', 80, '');
    s.record(peer('a'), 'GET', 80, '');
    s.record(peer('c'), 'GET', 80, '');
    assert.deepEqual(counts(s), { plaintext: 0, mtls: 4, peers: { 'spiffe://cluster.local/ns/bar/sa/a': 2, 'spiffe://cluster.local/ns/bar/sa/c': 1 } });
    assert.equal(MAX_TRACKED_PEERS, 100);
  });

  it('says when the last plaintext request came, on the mesh clock (the counts are since the start: a migration shows as this time standing still)', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const s = new InboundTlsStats({ service: 'httpbin', namespace: 'foo', labels: {}, serviceAccount: 'httpbin' }, undefined, () => clock.now());
    s.record(peer('a'), 'GET', 80, '');
    assert.equal('lastPlaintextAt' in s.counts(), false, 'absent before any plaintext request');
    s.record(undefined, 'GET', 80, '10.0.0.9');
    clock.advance(60_000);
    s.record(undefined, 'GET', 80, '10.0.0.9');
    clock.advance(600_000);
    s.record(peer('a'), 'GET', 80, '');
    assert.equal(s.counts().lastPlaintextAt, 1_800_000_060_000);
    assert.equal(s.counts().plaintext, 2);
  });
});
