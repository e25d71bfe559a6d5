import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { localityFor } from '../../config/traffic-distribution.ts';
import { resolveLoadBalancer } from './lb-settings.ts';

describe('resolveLoadBalancer with a traffic distribution (istiod GetLocalityLbSetting)', () => {
  it('stands in for a missing localityLbSetting: failoverPriority network, region, zone (same zone) or … subzone, hostname (same node)', () => {
    assert.deepEqual(resolveLoadBalancer(undefined, 'PreferSameZone').locality, { enabled: true, failoverPriority: ['topology.istio.io/network', 'topology.kubernetes.io/region', 'topology.kubernetes.io/zone'] });
    assert.deepEqual(resolveLoadBalancer({ simple: 'ROUND_ROBIN' }, 'PreferSameNode').locality, localityFor('PreferSameNode'));
    assert.deepEqual(localityFor('PreferSameNode').failoverPriority?.slice(3), ['topology.istio.io/subzone', 'kubernetes.io/hostname']);
    assert.equal(resolveLoadBalancer(undefined, 'PreferSameZone').trafficDistribution, 'PreferSameZone');
  });
  it('a DestinationRule localityLbSetting wins (even enabled: false); PASSTHROUGH has no locality', () => {
    const off = resolveLoadBalancer({ localityLbSetting: { enabled: false } }, 'PreferSameZone');
    assert.deepEqual([off.locality, off.trafficDistribution], [{ enabled: false }, undefined]);
    const mine = resolveLoadBalancer({ localityLbSetting: { failoverPriority: ['x'] } }, 'PreferSameZone');
    assert.deepEqual([mine.locality, mine.trafficDistribution], [{ failoverPriority: ['x'] }, undefined]);
    const pt = resolveLoadBalancer({ simple: 'PASSTHROUGH' }, 'PreferSameZone');
    assert.deepEqual([pt.locality, pt.trafficDistribution], [{ enabled: false }, undefined]);
  });
});
