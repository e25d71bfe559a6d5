/**
 * `meshlet status`'s workload rows say which instance each is and how long ago it took the
 * config: three `reviews` rows (v1, v2, v3) read the same without their labels, and "is my change
 * live, since when?" needs the ACK time, as `istioctl proxy-status` prints `SYNCED (2m)`
 * (`istioctl/pkg/writer/pilot/status.go` formatStatus: the status and the time since it was updated).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { instanceLabels, state } from '../../src/cli/commands/status.ts';
import type { WorkloadStatus } from '../../src/control-plane/protocol.ts';

const NOW = Date.parse('2026-12-06T12:00:00.000Z');
const base: WorkloadStatus = {
  connection: 'cp-a-1',
  service: 'reviews',
  namespace: 'default',
  labels: { version: 'v2', app: 'reviews' },
  peer: '10.0.0.7:5000',
  connectedAt: '2026-12-06T11:00:00.000Z',
  sent: { config: 'c2', endpoints: 'e1' },
  acked: { config: { version: 'c2', at: '2026-12-06T11:59:48.000Z' }, endpoints: { version: 'e1', at: '2026-12-06T11:00:01.000Z' } },
};

test('SYNCED and NACKED say how long ago the config was ACKed or NACKed', () => {
  assert.equal(state(base, 'c2', NOW), 'SYNCED (12s)');
  assert.equal(state({ ...base, acked: { ...base.acked, config: { version: 'c2', at: '2026-12-06T09:00:00.000Z' } } }, 'c2', NOW), 'SYNCED (3h)');
  assert.equal(state({ ...base, nacked: { kind: 'config', version: 'c3', at: '2026-12-06T11:57:00.000Z', reasons: ['x'] } }, 'c3', NOW), 'NACKED config c3 (3m)');
  assert.equal(state(base, 'c3', NOW), 'STALE', 'not at the served version yet');
  assert.equal(state({ ...base, disconnectedAt: '2026-12-06T11:59:00.000Z' }, 'c2', NOW), 'DISCONNECTED 2026-12-06T11:59:00.000Z');
});

test('the labels that tell instances apart, without app (the service)', () => {
  assert.equal(instanceLabels(base), 'version=v2');
  assert.equal(instanceLabels({ ...base, labels: { app: 'reviews' } }), '-');
  assert.equal(instanceLabels({ ...base, labels: { app: 'other', version: 'v1', track: 'canary' } }), 'version=v1,app=other,track=canary');
  // A value that would read as two labels is quoted; prefixed keys go last; a long list is cut.
  assert.equal(instanceLabels({ ...base, labels: { app: 'reviews', team: 'a,b=c', version: 'v3' } }), 'version=v3,team="a,b=c"');
  const many = instanceLabels({ ...base, labels: { app: 'reviews', 'security.istio.io/tlsMode': 'istio', 'pod-template-hash': '5d4f8c9b7', version: 'v2', tier: 'backend' } });
  assert.equal(many.length, 40);
  assert.ok(many.startsWith('version=v2,pod-template-hash=5d4f8c9b7,tier=backend'.slice(0, 39)) && many.endsWith('…'), many);
});
