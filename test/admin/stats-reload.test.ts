/**
 * `/stats` across config reloads and the inbound filter order, as Envoy counts:
 * - `<stat_prefix>.http_local_rate_limit.*` goes on counting when a reload keeps the filter
 *   (Envoy keeps a stat by its name; the filter of the new config counts into the same one);
 * - `jwt_authn.allowed` counts the requests the jwt_authn filter let through: not one a local rate
 *   limit placed before it (Istio's task puts it at the front of the chain) refused, and still one
 *   a local rate limit after it refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import { createMesh, type Mesh } from '../../src/index.ts';
import { frameworks, raw } from '../helpers/frameworks.ts';

const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const ALL = { runtime_key: 'k', default_value: { numerator: 100, denominator: 'HUNDRED' } };
const FRONT = { name: 'envoy.filters.network.http_connection_manager' };
const BEFORE_ROUTER = { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } };

/** A local rate limit EnvoyFilter of `max` tokens a minute, at `where` in httpbin's inbound chain. */
function limit(statPrefix: string, max: number, where: object): object {
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata: { name: statPrefix.replaceAll('_', '-'), namespace: 'foo' },
    spec: {
      workloadSelector: { labels: { app: 'httpbin' } },
      configPatches: [
        {
          applyTo: 'HTTP_FILTER',
          match: { context: 'SIDECAR_INBOUND', listener: { filterChain: { filter: where } } },
          patch: {
            operation: 'INSERT_BEFORE',
            value: { name: 'envoy.filters.http.local_ratelimit', typed_config: { '@type': LRL, stat_prefix: statPrefix, token_bucket: { max_tokens: max, tokens_per_fill: max, fill_interval: '60s' }, filter_enabled: ALL, filter_enforced: ALL } },
          },
        },
      ],
    },
  };
}

async function requestAuthentication(): Promise<object> {
  const { publicKey } = await generateKeyPair('RS256');
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] });
  return { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name: 'jwt', namespace: 'foo' }, spec: { selector: { matchLabels: { app: 'httpbin' } }, jwtRules: [{ issuer: 'testing@secure.istio.io', jwks }] } };
}

async function stats(mesh: Mesh, filter: string): Promise<Record<string, number>> {
  const body = await (await fetch(`${mesh.adminUrl}/stats?filter=${encodeURIComponent(filter)}`)).text();
  return Object.fromEntries(
    body
      .trim()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => [l.slice(0, l.lastIndexOf(': ')), Number(l.slice(l.lastIndexOf(': ') + 2))]),
  );
}

describe('/stats across reloads and the inbound filter order', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function served(config: string | object[], run: (mesh: Mesh, get: () => Promise<number>) => Promise<void>): Promise<void> {
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config, watch: false, admin: { port: 0 }, logger: { warn: () => {} } });
    const server = await (frameworks[0] as (typeof frameworks)[number]).start(mesh);
    try {
      await run(mesh, async () => (await raw(server.port, '/get')).statusCode);
    } finally {
      await server.close();
      await mesh.close();
    }
  }

  it('a reload that keeps the local rate limit filter keeps its counters (and its bucket); jwt_authn.allowed does not count what the filter before it refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-stats-reload-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'policy.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [await requestAuthentication(), limit('front_limiter', 2, FRONT)] }));
    await served(dir, async (mesh, get) => {
      const codes = [await get(), await get(), await get()];
      assert.deepEqual(codes, [200, 200, 429]);
      const want = (n: number, limited: number) => ({
        'front_limiter.http_local_rate_limit.enabled': n,
        'front_limiter.http_local_rate_limit.enforced': limited,
        'front_limiter.http_local_rate_limit.ok': 2,
        'front_limiter.http_local_rate_limit.rate_limited': limited,
      });
      assert.deepEqual(await stats(mesh, 'front_limiter'), want(3, 1));
      // Another resource: a new config, the same filter.
      writeFileSync(join(dir, 'more.json'), JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'other', namespace: 'foo' }, spec: { hosts: ['other.example.test'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' } }));
      assert.equal(await mesh.reload(), true);
      assert.equal(await get(), 429, 'the bucket is the one before the reload');
      assert.deepEqual(await stats(mesh, 'front_limiter'), want(4, 2), 'the counters go on');
      // Only the two requests the rate limit let through reached jwt_authn (no token: allowed).
      const s = await stats(mesh, 'jwt_authn');
      assert.equal(Object.entries(s).find(([k]) => k.endsWith('.jwt_authn.allowed'))?.[1], 2, JSON.stringify(s));
    });
  });

  it('jwt_authn.allowed counts a request a local rate limit after jwt_authn refused (it got past jwt_authn)', async () => {
    await served([await requestAuthentication(), limit('late_limiter', 1, BEFORE_ROUTER)], async (mesh, get) => {
      assert.deepEqual([await get(), await get()], [200, 429]);
      const s = await stats(mesh, 'jwt_authn');
      assert.equal(Object.entries(s).find(([k]) => k.endsWith('.jwt_authn.allowed'))?.[1], 2);
    });
  });
});
