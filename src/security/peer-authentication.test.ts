import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AnyResource } from '../config/resource.ts';
import { composePeerAuthentication, type MtlsMode, mtlsModeForPort } from './peer-authentication.ts';

let order = 0;
function pa(namespace: string, name: string, spec: Record<string, unknown>, created?: string): AnyResource {
  return { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name, namespace, ...(created === undefined ? {} : { creationTimestamp: created }) }, spec, order: order++ } as unknown as AnyResource;
}

const W = { namespace: 'foo', labels: { app: 'httpbin', version: 'v1' } };

describe('PeerAuthentication composed as istiod composes it', () => {
  const cases: { name: string; policies: AnyResource[]; mode: MtlsMode; ports?: Record<number, MtlsMode> }[] = [
    { name: 'no policy: PERMISSIVE', policies: [], mode: 'PERMISSIVE' },
    { name: 'mesh STRICT', policies: [pa('istio-system', 'default', { mtls: { mode: 'STRICT' } })], mode: 'STRICT' },
    { name: 'mesh UNSET: PERMISSIVE', policies: [pa('istio-system', 'default', { mtls: {} })], mode: 'PERMISSIVE' },
    { name: 'namespace overrides mesh', policies: [pa('istio-system', 'default', { mtls: { mode: 'STRICT' } }), pa('foo', 'default', { mtls: { mode: 'DISABLE' } })], mode: 'DISABLE' },
    { name: 'namespace UNSET inherits mesh', policies: [pa('istio-system', 'default', { mtls: { mode: 'STRICT' } }), pa('foo', 'default', { mtls: { mode: 'UNSET' } })], mode: 'STRICT' },
    { name: "another namespace's policy does not apply", policies: [pa('bar', 'default', { mtls: { mode: 'STRICT' } })], mode: 'PERMISSIVE' },
    { name: 'workload overrides namespace', policies: [pa('foo', 'default', { mtls: { mode: 'STRICT' } }), pa('foo', 'wl', { selector: { matchLabels: { app: 'httpbin' } }, mtls: { mode: 'PERMISSIVE' } })], mode: 'PERMISSIVE' },
    { name: 'a selector that does not match is ignored', policies: [pa('foo', 'wl', { selector: { matchLabels: { app: 'other' } }, mtls: { mode: 'STRICT' } })], mode: 'PERMISSIVE' },
    { name: 'a selector policy in the root namespace is ignored', policies: [pa('istio-system', 'wl', { selector: { matchLabels: { app: 'httpbin' } }, mtls: { mode: 'STRICT' } })], mode: 'PERMISSIVE' },
    { name: 'an empty selector is namespace-wide', policies: [pa('foo', 'ns', { selector: { matchLabels: {} }, mtls: { mode: 'STRICT' } })], mode: 'STRICT' },
    {
      name: 'oldest namespace policy wins',
      policies: [pa('foo', 'newer', { mtls: { mode: 'DISABLE' } }, '2024-02-01T00:00:00Z'), pa('foo', 'older', { mtls: { mode: 'STRICT' } }, '2024-01-01T00:00:00Z')],
      mode: 'STRICT',
    },
    { name: 'same age: the first loaded wins', policies: [pa('foo', 'a', { mtls: { mode: 'DISABLE' } }), pa('foo', 'b', { mtls: { mode: 'STRICT' } })], mode: 'DISABLE' },
    {
      name: 'oldest workload policy wins',
      policies: [pa('foo', 'w2', { selector: { matchLabels: { version: 'v1' } }, mtls: { mode: 'DISABLE' } }, '2024-03-01T00:00:00Z'), pa('foo', 'w1', { selector: { matchLabels: { app: 'httpbin' } }, mtls: { mode: 'STRICT' } }, '2024-01-01T00:00:00Z')],
      mode: 'STRICT',
    },
    {
      name: 'portLevelMtls: a port UNSET inherits the workload mode (itself inherited)',
      policies: [pa('istio-system', 'default', { mtls: { mode: 'STRICT' } }), pa('foo', 'wl', { selector: { matchLabels: { app: 'httpbin' } }, portLevelMtls: { '8080': { mode: 'DISABLE' }, '9000': {} } })],
      mode: 'STRICT',
      ports: { 8080: 'DISABLE', 9000: 'STRICT', 7000: 'STRICT' },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const e = composePeerAuthentication(c.policies, W, 'istio-system');
      assert.equal(e.mode, c.mode);
      for (const [port, m] of Object.entries(c.ports ?? {})) assert.equal(mtlsModeForPort(e, Number(port)), m, `port ${port}`);
    });
  }

  it('names the policies it composed', () => {
    const e = composePeerAuthentication([pa('istio-system', 'mesh', { mtls: { mode: 'STRICT' } }), pa('foo', 'wl', { selector: { matchLabels: { app: 'httpbin' } }, mtls: { mode: 'PERMISSIVE' } })], W, 'istio-system');
    assert.deepEqual(e.policies, { mesh: 'istio-system/mesh', workload: 'foo/wl' });
  });
});
