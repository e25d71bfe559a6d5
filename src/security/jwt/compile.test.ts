import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JWTRule } from '../../config/types/security.ts';
import { compileRule, placedRules, selectRequestAuthentications, timeoutOf } from './compile.ts';
import { InlineJwksSource } from './jwks-source.ts';
import { jwksOf, makeKey, ra, validated } from './fixtures.test.ts';

const JWKS = jwksOf(makeKey('ES256', 'k'));
const rule = (issuer: string, extra: Partial<JWTRule> = {}): JWTRule => ({ issuer, jwks: JWKS, ...extra });

describe('which RequestAuthentications apply to a workload (getConfigsForWorkload, ShouldAttachPolicy)', () => {
  const policies = validated([
    ra('ns-wide', 'foo', { jwtRules: [rule('a')] }, '2024-01-02T00:00:00Z'),
    ra('ns-wide-older', 'foo', { jwtRules: [rule('b')] }, '2024-01-01T00:00:00Z'),
    ra('for-httpbin', 'foo', { selector: { matchLabels: { app: 'httpbin' } }, jwtRules: [rule('c')] }),
    ra('for-httpbin-v2', 'foo', { selector: { matchLabels: { app: 'httpbin', version: 'v2' } }, jwtRules: [rule('d')] }),
    ra('other-ns', 'bar', { jwtRules: [rule('e')] }),
    ra('mesh-wide', 'istio-system', { jwtRules: [rule('f')] }),
    ra('root-selector', 'istio-system', { selector: { matchLabels: { app: 'httpbin' } }, jwtRules: [rule('g')] }),
    ra('gateway', 'foo', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }], jwtRules: [rule('h')] }),
  ]);
  const rows: { name: string; namespace: string; labels: Record<string, string>; root?: string; want: string[] }[] = [
    {
      name: 'httpbin v1 in foo: namespace-wide (oldest first), matching selectors, then the root namespace; not the targetRef policy',
      namespace: 'foo',
      labels: { app: 'httpbin', version: 'v1' },
      want: ['ns-wide-older', 'ns-wide', 'for-httpbin', 'mesh-wide', 'root-selector'],
    },
    { name: 'httpbin v2 in foo also gets its version policy', namespace: 'foo', labels: { app: 'httpbin', version: 'v2' }, want: ['ns-wide-older', 'ns-wide', 'for-httpbin', 'for-httpbin-v2', 'mesh-wide', 'root-selector'] },
    { name: 'another app in foo', namespace: 'foo', labels: { app: 'sleep' }, want: ['ns-wide-older', 'ns-wide', 'mesh-wide'] },
    { name: 'httpbin in bar: the root selector matches across namespaces', namespace: 'bar', labels: { app: 'httpbin' }, want: ['other-ns', 'mesh-wide', 'root-selector'] },
    { name: 'a workload in the root namespace', namespace: 'istio-system', labels: {}, want: ['mesh-wide'] },
    { name: 'another root namespace', namespace: 'foo', labels: { app: 'sleep' }, root: 'bar', want: ['ns-wide-older', 'ns-wide', 'other-ns'] },
    { name: 'a namespace with nothing', namespace: 'empty', labels: { app: 'sleep' }, want: ['mesh-wide'] },
  ];
  for (const r of rows) {
    it(r.name, () => {
      assert.deepEqual(
        selectRequestAuthentications(policies, { namespace: r.namespace, labels: r.labels }, r.root).map((p) => p.metadata.name),
        r.want,
      );
    });
  }
});

describe('compiling rules', () => {
  it('sorts every applying rule by issuer, stable (convertToEnvoyJwtConfig)', () => {
    const policies = validated([
      ra('p1', 'foo', { jwtRules: [rule('zeta'), rule('alpha', { audiences: ['x'] })] }),
      ra('p2', 'foo', { jwtRules: [rule('alpha'), rule('mid')] }),
    ]);
    assert.deepEqual(
      placedRules(policies).map((p) => p.name),
      ['RequestAuthentication foo/p1 jwtRules[1]', 'RequestAuthentication foo/p2 jwtRules[0]', 'RequestAuthentication foo/p2 jwtRules[1]', 'RequestAuthentication foo/p1 jwtRules[0]'],
    );
  });

  it('fills in defaults and lower-cases output headers', () => {
    const [placed] = placedRules(
      validated([ra('p', 'foo', { jwtRules: [rule('iss', { outputPayloadToHeader: 'X-Payload', outputClaimToHeaders: [{ header: 'X-Sub', claim: 'sub' }], spaceDelimitedClaims: ['roles'] })] })]),
    );
    assert.ok(placed);
    const c = compileRule(placed, new InlineJwksSource(JWKS));
    assert.deepEqual(
      { issuer: c.issuer, forward: c.forwardOriginalToken, timeout: c.timeoutMs, outputs: c.outputHeaders, spaces: [...c.spaceDelimitedClaims].sort(), locations: c.locations.length, required: c.required },
      { issuer: 'iss', forward: false, timeout: 5000, outputs: ['x-payload', 'x-sub'], spaces: ['permission', 'roles', 'scope'], locations: 2, required: false },
    );
  });

  it('reads the JWKS fetch timeout', () => {
    assert.deepEqual([timeoutOf({}), timeoutOf({ timeout: '10ms' }), timeoutOf({ timeout: '1.5s' })], [5000, 10, 1500]);
  });
});
