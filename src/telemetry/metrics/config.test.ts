import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TelemetryMetrics } from '../../config/types/telemetry.ts';
import { mergeMetrics, metricsConfigFor } from './config.ts';

const isProm = (p: string): boolean => p === 'prometheus';
const summary = (metrics: TelemetryMetrics[], defaults = ['prometheus']) => {
  const c = mergeMetrics(metrics, defaults, isProm);
  const mode = (m: typeof c.client) => ({ disabled: m.disabled, overrides: Object.fromEntries([...m.overrides].map(([k, v]) => [k, { disabled: v.disabled, tags: v.tags.map((t) => (t.remove ? `-${t.name}` : `${t.name}=${t.value}`)) }])) });
  return { enabled: c.enabled, client: mode(c.client), server: mode(c.server) };
};

describe('Telemetry metrics merge (istiod mergeMetrics)', () => {
  it('no Telemetry: on, no overrides', () => {
    assert.deepEqual(summary([]), { enabled: true, client: { disabled: false, overrides: {} }, server: { disabled: false, overrides: {} } });
  });

  it('ALL_METRICS disabled for a mode turns that mode off; a later override for the mode turns it back on', () => {
    const root: TelemetryMetrics = { overrides: [{ match: { metric: 'ALL_METRICS', mode: 'CLIENT' }, disabled: true }] };
    assert.equal(summary([root]).client.disabled, true);
    assert.equal(summary([root]).server.disabled, false);
    const ns: TelemetryMetrics = { overrides: [{ match: { metric: 'REQUEST_COUNT', mode: 'CLIENT' }, tagOverrides: { x: { value: 'request.host' } } }] };
    const s = summary([root, ns]);
    assert.equal(s.client.disabled, false);
    assert.deepEqual(s.client.overrides['REQUEST_COUNT'], { disabled: false, tags: ['x=request.host'] });
  });

  it('an unset match means ALL_METRICS in both modes; later entries win per metric and per tag', () => {
    const s = summary([
      { overrides: [{ tagOverrides: { a: { value: '"1"' }, b: { operation: 'REMOVE' } } }] },
      { overrides: [{ match: { metric: 'REQUEST_DURATION' }, disabled: true, tagOverrides: { a: { operation: 'REMOVE' } } }] },
      { overrides: [{ match: { metric: 'REQUEST_DURATION', mode: 'SERVER' }, disabled: false }] },
    ]);
    assert.deepEqual(s.client.overrides['REQUEST_COUNT'], { disabled: false, tags: ['a="1"', '-b'] });
    assert.deepEqual(s.client.overrides['REQUEST_DURATION'], { disabled: true, tags: ['-a', '-b'] });
    assert.deepEqual(s.server.overrides['REQUEST_DURATION'], { disabled: false, tags: ['-a', '-b'] });
    // Every IstioMetric got the ALL_METRICS override, TCP and gRPC ones included (as istiod flattens it).
    assert.equal(Object.keys(s.server.overrides).length, 10);
  });

  it('disabled ALL_METRICS without a mode turns both modes off', () => {
    const s = summary([{ overrides: [{ match: { metric: 'ALL_METRICS' }, disabled: true }] }]);
    assert.equal(s.client.disabled, true);
    assert.equal(s.server.disabled, true);
  });

  it('providers: a later entry naming another provider takes metrics away from prometheus', () => {
    assert.equal(summary([{ providers: [{ name: 'stackdriver' }] }]).enabled, false);
    assert.equal(summary([{ providers: [{ name: 'stackdriver' }] }, { providers: [{ name: 'prometheus' }] }]).enabled, true);
    // An entry without providers inherits its parent's: overrides for another provider are not ours.
    const s = summary([{ providers: [{ name: 'other' }], overrides: [{ disabled: true }] }, { providers: [{ name: 'prometheus' }] }]);
    assert.equal(s.client.disabled, false);
    // No default provider and none named: nothing is emitted.
    assert.equal(summary([{ overrides: [{ match: { metric: 'REQUEST_COUNT' }, disabled: true }] }], []).enabled, false);
  });

  it('customMetric overrides are kept under their name and do not count as ALL_METRICS', () => {
    const s = summary([{ overrides: [{ match: { customMetric: 'my_metric' }, disabled: true }] }]);
    assert.equal(s.client.disabled, false);
    assert.deepEqual(s.client.overrides['my_metric'], { disabled: true, tags: [] });
  });

  it('metricsConfigFor: root → namespace → workload order from the resources', () => {
    const tel = (ns: string, name: string, spec: object, ts: string) => ({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name, namespace: ns, creationTimestamp: ts }, spec });
    const resources = [
      tel('shop', 'wl', { selector: { matchLabels: { app: 'reviews' } }, metrics: [{ overrides: [{ match: { metric: 'REQUEST_COUNT' }, disabled: false }] }] }, '2026-01-03T00:00:00Z'),
      tel('istio-system', 'mesh', { metrics: [{ overrides: [{ match: { metric: 'REQUEST_COUNT' }, disabled: true }] }] }, '2026-01-01T00:00:00Z'),
      tel('shop', 'ns', { metrics: [{ overrides: [{ match: { metric: 'REQUEST_SIZE' }, disabled: true }] }] }, '2026-01-02T00:00:00Z'),
    ];
    const c = metricsConfigFor(resources as never, { namespace: 'shop', labels: { app: 'reviews' } }, 'istio-system');
    assert.equal(c.client.overrides.get('REQUEST_COUNT')?.disabled, false);
    assert.equal(c.client.overrides.get('REQUEST_SIZE')?.disabled, true);
    const c2 = metricsConfigFor(resources as never, { namespace: 'shop', labels: { app: 'other' } }, 'istio-system');
    assert.equal(c2.client.overrides.get('REQUEST_COUNT')?.disabled, true);
  });
});
