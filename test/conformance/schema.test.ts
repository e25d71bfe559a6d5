import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crdFields, unknownFields } from './schema.ts';

describe('conformance: every field of Istio\'s CRD schema is known to meshlet', () => {
  it('reads the field list of the nine kinds meshlet validates', () => {
    const kinds = new Set(crdFields().map((f) => f.kind));
    assert.deepEqual([...kinds].sort(), ['AuthorizationPolicy', 'DestinationRule', 'EnvoyFilter', 'PeerAuthentication', 'RequestAuthentication', 'ServiceEntry', 'Sidecar', 'Telemetry', 'VirtualService', 'WorkloadEntry']);
  });

  it('finds no field meshlet calls unknown (newer API fields such as presence, budgetInterval, backendUtilization, sourceSubnet; the mirror_percent and jwks_uri spellings)', () => {
    assert.deepEqual(unknownFields(), []);
  });

  it('would notice a field meshlet does not know', () => {
    assert.equal(unknownFields([{ kind: 'VirtualService', path: 'spec.http.[].notAnIstioField', type: 'string' }]).length, 1);
    // In an EnvoyFilter too, top level and inside a (local rate limit) patch.
    assert.equal(unknownFields([{ kind: 'EnvoyFilter', path: 'spec.notAnIstioField', type: 'string' }]).length, 1);
    assert.equal(unknownFields([{ kind: 'EnvoyFilter', path: 'spec.configPatches.[].match.listener.notAnIstioField', type: 'string' }]).length, 1);
  });
});
