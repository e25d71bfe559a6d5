/**
 * A local rate limit filter inserted where Istio's rate-limit task puts it (`INSERT_BEFORE` the
 * HTTP connection manager: the front of the chain) runs in Envoy before `jwt_authn`, on the
 * request as it arrived: a descriptor keyed on the `authorization` header sees the token, and a
 * header a JWT rule copies claims into is not there yet. One inserted before the router runs after
 * `jwt_authn`: the token is gone (`forwardOriginalToken: false`) and the claim header is there.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createMesh, type Mesh } from '../../src/index.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { frameworks, raw } from '../helpers/frameworks.ts';

const ISSUER = 'testing@secure.istio.io';
const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const ALL = { runtime_key: 'k', default_value: { numerator: 100, denominator: 'HUNDRED' } };

/** A filter with a roomy default bucket and a bucket of 2 per distinct value of `header` (a wildcard descriptor). */
function perHeaderLimit(name: string, header: string, match: object): object {
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata: { name, namespace: 'foo' },
    spec: {
      workloadSelector: { labels: { app: 'httpbin' } },
      configPatches: [
        {
          applyTo: 'HTTP_FILTER',
          match: { context: 'SIDECAR_INBOUND', listener: { filterChain: { filter: match } } },
          patch: {
            operation: 'INSERT_BEFORE',
            value: {
              name: 'envoy.filters.http.local_ratelimit',
              typed_config: {
                '@type': LRL,
                stat_prefix: name,
                token_bucket: { max_tokens: 100, tokens_per_fill: 100, fill_interval: '60s' },
                filter_enabled: ALL,
                filter_enforced: ALL,
                rate_limits: [{ actions: [{ request_headers: { header_name: header, descriptor_key: 'who' } }] }],
                descriptors: [{ entries: [{ key: 'who' }], token_bucket: { max_tokens: 2, tokens_per_fill: 2, fill_interval: '60s' } }],
              },
            },
          },
        },
      ],
    },
  };
}

const FRONT = { name: 'envoy.filters.network.http_connection_manager' };
const BEFORE_ROUTER = { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } };

describe('local rate limit descriptors before and after jwt_authn', () => {
  let jwks = '';
  let alice = '';
  let bob = '';
  before(async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] });
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const sign = (sub: string) => new SignJWT({ iss: ISSUER, sub, exp }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey);
    alice = await sign('alice');
    bob = await sign('bob');
  });

  const requestAuthentication = () => ({
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: { name: 'jwt', namespace: 'foo' },
    spec: { selector: { matchLabels: { app: 'httpbin' } }, jwtRules: [{ issuer: ISSUER, jwks, outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }] }] },
  });

  let mesh: Mesh | undefined;
  after(async () => {
    await mesh?.close();
  });

  async function statuses(config: object[], tokens: string[]): Promise<number[]> {
    // The JWT phase reads the time as the system clock's origin plus this clock: tokens are checked against now.
    mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config, clock: new ManualClock(0), logger: { warn: () => {} } });
    const server = await (frameworks[0] as (typeof frameworks)[number]).start(mesh);
    try {
      const out: number[] = [];
      for (const t of tokens) out.push((await raw(server.port, '/get', { headers: { authorization: `Bearer ${t}` } })).statusCode);
      return out;
    } finally {
      await server.close();
      await mesh.close();
      mesh = undefined;
    }
  }

  it('at the front of the chain (Istio’s task), a descriptor on the authorization header limits each token: the token is still there', async () => {
    const got = await statuses([requestAuthentication(), perHeaderLimit('per-token', 'authorization', FRONT)], [alice, alice, alice, bob, bob, bob]);
    assert.deepEqual(got, [200, 200, 429, 200, 200, 429]);
  });

  it('mesh.explainInbound names the descriptors each filter builds, from the request as it arrived or as jwt_authn left it', async () => {
    const config = [requestAuthentication(), perHeaderLimit('front', 'authorization', FRONT), perHeaderLimit('late', 'x-sub', BEFORE_ROUTER)];
    mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config, clock: new ManualClock(0), logger: { warn: () => {} } });
    const e = await mesh.explainInbound({ method: 'GET', url: '/get', token: alice });
    assert.deepEqual(
      e.rateLimits?.map((r) => r.descriptors),
      [[[`who=Bearer ${alice}`]], [['who=alice']]],
    );
    await mesh.close();
    mesh = undefined;
  });

  it('at the front of the chain, a header the JWT rule copies a claim into is not there yet: only the default bucket', async () => {
    const got = await statuses([requestAuthentication(), perHeaderLimit('per-sub', 'x-sub', FRONT)], [alice, alice, alice]);
    assert.deepEqual(got, [200, 200, 200]);
  });

  it('at the front of the chain, a filter after one in shadow mode sees the headers that one added', async () => {
    // Each INSERT_BEFORE without a sub-filter goes in front: EnvoyFilter "b" (shadow mode, 1 token)
    // runs before "a", whose descriptor reads the header "b" adds when out of tokens.
    const shadow = perHeaderLimit('b', 'x-unused', FRONT) as { spec: { configPatches: { patch: { value: { typed_config: Record<string, unknown> } } }[] } };
    const tc = (shadow.spec.configPatches[0] as (typeof shadow.spec.configPatches)[number]).patch.value.typed_config;
    tc.token_bucket = { max_tokens: 1, tokens_per_fill: 1, fill_interval: '60s' };
    tc.filter_enforced = { runtime_key: 'k', default_value: { numerator: 0, denominator: 'HUNDRED' } };
    tc.request_headers_to_add_when_not_enforced = [{ header: { key: 'x-over', value: 'yes' } }];
    const got = await statuses([requestAuthentication(), perHeaderLimit('a', 'x-over', FRONT), shadow], [alice, alice, alice, alice]);
    // 1: "b" has its token, no x-over; 2 and 3: x-over: yes takes "a"'s 2 tokens for that value; 4: refused.
    assert.deepEqual(got, [200, 200, 200, 429]);
  });

  it('before the router (after jwt_authn), the claim header is there and the token is gone', async () => {
    assert.deepEqual(await statuses([requestAuthentication(), perHeaderLimit('per-sub', 'x-sub', BEFORE_ROUTER)], [alice, alice, alice, bob]), [200, 200, 429, 200]);
    assert.deepEqual(await statuses([requestAuthentication(), perHeaderLimit('per-token', 'authorization', BEFORE_ROUTER)], [alice, alice, alice]), [200, 200, 200]);
  });
});
