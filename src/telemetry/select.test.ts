import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resourcesOf } from '../../test/helpers/authz.ts';
import { selectTelemetry } from './select.ts';

function telemetry(name: string, namespace: string, spec: string, created?: string): string {
  const ts = created === undefined ? '' : `  creationTimestamp: "${created}"\n`;
  const body = spec.trim().split('\n').map((l) => `  ${l}`).join('\n');
  return `---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\n${ts}spec:\n${body}\n`;
}

const TRACING = 'tracing:\n- randomSamplingPercentage: 10';

test('root, then namespace, then matching selectors (oldest first); other namespaces and non-matching selectors are left out', () => {
  const resources = resourcesOf(
    telemetry('mesh', 'istio-system', TRACING) +
      telemetry('root-selector', 'istio-system', `selector:\n  matchLabels: { app: reviews }\n${TRACING}`) +
      telemetry('ns', 'bookinfo', TRACING) +
      telemetry('other-ns', 'foo', TRACING) +
      telemetry('v2', 'bookinfo', `selector:\n  matchLabels: { app: reviews, version: v2 }\n${TRACING}`, '2026-01-02T00:00:00Z') +
      telemetry('reviews', 'bookinfo', `selector:\n  matchLabels: { app: reviews }\n${TRACING}`, '2026-01-01T00:00:00Z') +
      telemetry('ratings', 'bookinfo', `selector:\n  matchLabels: { app: ratings }\n${TRACING}`),
  );
  const v2 = selectTelemetry(resources, { namespace: 'bookinfo', labels: { app: 'reviews', version: 'v2' } }, 'istio-system');
  assert.deepEqual(
    v2.applied.map((a) => `${a.level}:${a.ref}`),
    ['root:istio-system/mesh', 'namespace:bookinfo/ns', 'workload:bookinfo/reviews', 'workload:bookinfo/v2'],
  );
  const v1 = selectTelemetry(resources, { namespace: 'bookinfo', labels: { app: 'reviews', version: 'v1' } }, 'istio-system');
  assert.deepEqual(v1.applied.map((a) => a.ref), ['istio-system/mesh', 'bookinfo/ns', 'bookinfo/reviews']);
  // In the root namespace itself, its selector-less Telemetry applies once, and its selectors apply to its own workloads.
  const inRoot = selectTelemetry(resources, { namespace: 'istio-system', labels: { app: 'reviews' } }, 'istio-system');
  assert.deepEqual(inRoot.applied.map((a) => `${a.level}:${a.ref}`), ['namespace:istio-system/mesh', 'workload:istio-system/root-selector']);
});

test('a second selector-less Telemetry in a namespace is reported, the oldest applies; targetRefs are ignored with a note', () => {
  const resources = resourcesOf(
    telemetry('newer', 'bookinfo', TRACING, '2026-02-01T00:00:00Z') +
      telemetry('older', 'bookinfo', TRACING, '2026-01-01T00:00:00Z') +
      telemetry('gw', 'bookinfo', `targetRefs:\n- { group: gateway.networking.k8s.io, kind: Gateway, name: gw }\n${TRACING}`),
  );
  const s = selectTelemetry(resources, { namespace: 'bookinfo', labels: {} }, 'istio-system');
  assert.deepEqual(s.applied.map((a) => a.ref), ['bookinfo/older']);
  assert.deepEqual(
    s.findings.map((f) => `${f.level} ${f.resource}`),
    ['warning bookinfo/newer', 'info bookinfo/gw'],
  );
  assert.match(s.findings[0]?.message ?? '', /only the oldest, bookinfo\/older, applies/);
});
