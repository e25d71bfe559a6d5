import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { trafficDistributionOf } from './traffic-distribution.ts';

const svc = (spec: Record<string, unknown>, annotations?: Record<string, string>) => ({ kind: 'Service', metadata: annotations === undefined ? {} : { annotations }, spec });
const se = (annotations?: Record<string, string>) => ({ kind: 'ServiceEntry', metadata: annotations === undefined ? {} : { annotations }, spec: { trafficDistribution: 'PreferClose' } });
const A = 'networking.istio.io/traffic-distribution';

describe('trafficDistributionOf (istiod GetTrafficDistribution)', () => {
  const rows: [string, ReturnType<typeof svc> | ReturnType<typeof se>, string | undefined][] = [
    ['spec PreferClose', svc({ trafficDistribution: 'PreferClose' }), 'PreferSameZone'],
    ['spec PreferSameZone', svc({ trafficDistribution: 'PreferSameZone' }), 'PreferSameZone'],
    ['spec PreferSameNode', svc({ trafficDistribution: 'PreferSameNode' }), 'PreferSameNode'],
    ['spec is case-sensitive (Kubernetes values)', svc({ trafficDistribution: 'preferclose' }), undefined],
    ['an unknown spec value falls back to the annotation', svc({ trafficDistribution: 'Nearby' }, { [A]: 'PreferSameNode' }), 'PreferSameNode'],
    ['the spec wins over the annotation', svc({ trafficDistribution: 'PreferClose' }, { [A]: 'PreferSameNode' }), 'PreferSameZone'],
    ['the annotation in any case', svc({}, { [A]: 'PREFERCLOSE' }), 'PreferSameZone'],
    ['an unknown annotation value', svc({}, { [A]: 'nearby' }), undefined],
    ['none', svc({}), undefined],
    ['a ServiceEntry reads the annotation only', se(), undefined],
    ['a ServiceEntry annotation', se({ [A]: 'PreferSameZone' }), 'PreferSameZone'],
  ];
  for (const [name, r, want] of rows) it(name, () => assert.equal(trafficDistributionOf(r), want));
});
