import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalName, canonicalRevision, decodePeerMetadata, encodePeerMetadata, localPeerMetadata, nodeId, PeerMetadataCache } from './peer-metadata.ts';

// Sent by an Istio 1.5 sidecar (bookinfo details-v1), as captured in a public blog post.
const ISTIO_DETAILS_V1 =
  'Ch4KDElOU1RBTkNFX0lQUxIOGgwxNzIuMTYuMC4yMDYK1QEKBkxBQkVMUxLKASrHAQoQCgNhcHASCRoHZGV0YWlscwohChFwb2QtdGVtcGxhdGUtaGFzaBIMGgo3NWQ5NGM0OGY1CiQKGXNlY3VyaXR5LmlzdGlvLmlvL3Rsc01vZGUSBxoFaXN0aW8KLAofc2VydmljZS5pc3Rpby5pby9jYW5vbmljYWwtbmFtZRIJGgdkZXRhaWxzCisKI3NlcnZpY2UuaXN0aW8uaW8vY2Fub25pY2FsLXJldmlzaW9uEgQaAnYxCg8KB3ZlcnNpb24SBBoCdjEKGgoHTUVTSF9JRBIPGg1jbHVzdGVyLmxvY2FsCiUKBE5BTUUSHRobZGV0YWlscy12MS03NWQ5NGM0OGY1LTdibHhtChYKCU5BTUVTUEFDRRIJGgdkZWZhdWx0Ck4KBU9XTkVSEkUaQ2t1YmVybmV0ZXM6Ly9hcGlzL2FwcHMvdjEvbmFtZXNwYWNlcy9kZWZhdWx0L2RlcGxveW1lbnRzL2RldGFpbHMtdjEKJQoPU0VSVklDRV9BQ0NPVU5UEhIaEGJvb2tpbmZvLWRldGFpbHMKHQoNV09SS0xPQURfTkFNRRIMGgpkZXRhaWxzLXYx';

describe('peer metadata (x-envoy-peer-metadata)', () => {
  it('decodes what an Istio sidecar sends', () => {
    assert.deepEqual(decodePeerMetadata(ISTIO_DETAILS_V1), {
      instance: 'details-v1-75d94c48f5-7blxm',
      namespace: 'default',
      workload: 'details-v1',
      cluster: '',
      canonicalName: 'details',
      canonicalRevision: 'v1',
      app: 'details',
      version: 'v1',
    });
  });

  it('writes what it reads, keys sorted (deterministic), and the proxy reads the same fields', () => {
    const me = localPeerMetadata({ workload: 'reviews-v2', namespace: 'shop', labels: { app: 'reviews', version: 'v2', team: 'x' }, cluster: 'Kubernetes' });
    const v = encodePeerMetadata(me);
    assert.deepEqual(decodePeerMetadata(v), { instance: 'reviews-v2', namespace: 'shop', workload: 'reviews-v2', cluster: 'Kubernetes', canonicalName: 'reviews', canonicalRevision: 'v2', app: 'reviews', version: 'v2' });
    assert.equal(encodePeerMetadata(me), v);
    // Field order on the wire: CLUSTER_ID, LABELS, NAME, NAMESPACE, WORKLOAD_NAME.
    const text = Buffer.from(v, 'base64').toString('latin1');
    const order = ['CLUSTER_ID', 'LABELS', 'NAME', 'NAMESPACE', 'WORKLOAD_NAME'].map((k) => text.indexOf(`\n${String.fromCharCode(k.length)}${k}`));
    assert.ok(order.every((p, i) => p >= 0 && (i === 0 || p > (order[i - 1] as number))), `order ${order}`);
  });

  it('round-trips non-ASCII and long values (multi-byte varints)', () => {
    const long = 'x'.repeat(300);
    const v = encodePeerMetadata({ instance: long, namespace: 'ns', workload: 'wörk', cluster: '', canonicalName: 'c', canonicalRevision: 'r', app: '', version: '' });
    const p = decodePeerMetadata(v);
    assert.equal(p?.instance, long);
    assert.equal(p?.workload, 'wörk');
    assert.equal(p?.app, '');
  });

  const bad: [string, string][] = [
    ['empty', ''],
    ['truncated', ISTIO_DETAILS_V1.slice(0, 40)],
    ['not protobuf', Buffer.from('hello world, not a struct at all').toString('base64')],
    ['unsupported wire type', Buffer.from([0x0f, 0x01]).toString('base64')],
  ];
  for (const [name, value] of bad) {
    it(`refuses ${name} input (undefined, as the proxy ignores it)`, () => {
      assert.equal(decodePeerMetadata(value), undefined);
    });
  }

  it('canonical service defaults as Istio (canonical-name ← app.kubernetes.io/name ← app ← workload; revision ← … ← latest)', () => {
    const table: [Record<string, string>, string, string][] = [
      [{ 'service.istio.io/canonical-name': 'a', 'app.kubernetes.io/name': 'b', app: 'c' }, 'a', 'latest'],
      [{ 'app.kubernetes.io/name': 'b', app: 'c', version: 'v9' }, 'b', 'v9'],
      [{ app: 'c', 'app.kubernetes.io/version': '1.2', version: 'v9' }, 'c', '1.2'],
      [{ 'service.istio.io/canonical-revision': 'r1', version: 'v9' }, 'wl', 'r1'],
      [{}, 'wl', 'latest'],
    ];
    for (const [labels, name, rev] of table) {
      assert.equal(canonicalName(labels, 'wl'), name, JSON.stringify(labels));
      assert.equal(canonicalRevision(labels), rev, JSON.stringify(labels));
    }
  });

  it('node id is sidecar~ip~instance.ns~ns.svc.cluster.local', () => {
    const me = localPeerMetadata({ workload: 'w', namespace: 'n', labels: {}, cluster: 'K' });
    assert.equal(nodeId('10.0.0.1', me), 'sidecar~10.0.0.1~w.n~n.svc.cluster.local');
  });

  it('the cache returns each peer\'s decoded value while it evicts old entries', () => {
    const c = new PeerMetadataCache(8);
    for (let i = 0; i < 50; i++) {
      const v = encodePeerMetadata({ instance: `i${i}`, namespace: 'n', workload: `w${i}`, cluster: '', canonicalName: '', canonicalRevision: '', app: '', version: '' });
      assert.equal(c.get(`id${i}`, v)?.workload, `w${i}`);
      assert.equal(c.get(`id${i}`, v)?.workload, `w${i}`);
    }
  });

  it('the last lookup is answered again only for the same id and value (a caller\'s repeated headers)', () => {
    const c = new PeerMetadataCache(8);
    const a = encodePeerMetadata({ instance: 'a', namespace: 'n', workload: 'wa', cluster: '', canonicalName: '', canonicalRevision: '', app: '', version: '' });
    const b = encodePeerMetadata({ instance: 'b', namespace: 'n', workload: 'wb', cluster: '', canonicalName: '', canonicalRevision: '', app: '', version: '' });
    const first = c.get('id-a', a);
    // Equal strings made apart (as each request's header values are): the same decoded object.
    assert.equal(c.get(`id-${'a'}`, Buffer.from(a, 'latin1').toString('latin1')), first);
    assert.equal(c.get('id-a', b)?.workload, 'wb');
    assert.equal(c.get('id-b', b)?.workload, 'wb');
    assert.notEqual(c.get('id-b', b), first);
    assert.equal(c.get('id-a', a), first);
    assert.equal(c.get('id-a', ''), undefined);
    assert.equal(c.get('id-a', a)?.workload, 'wa');
  });
});
