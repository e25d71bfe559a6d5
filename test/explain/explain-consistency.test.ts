/**
 * Property check: what `mesh.explain` and `mesh.explainInbound` say must be what the mesh does.
 * Random VirtualServices (matches, subsets, 0/100 % aborts, rewrites, redirects, direct
 * responses) are explained and then called with `mesh.fetch` against real upstreams on
 * 127.0.0.1; random AuthorizationPolicies and a RequestAuthentication (local JWKS) are explained
 * and then sent, as raw HTTP/1.1 (paths normalization changes too), to a real `mesh.createServer`.
 * Seeded and bounded: a failure names the seed, the config and the request;
 * `MESHLET_EXPLAIN_SEED=<n>` replays it.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createMesh, seededRandom } from '../../src/index.ts';
import { normalizePath } from '../../src/core/path-normalization.ts';
import { meshlet } from '../cli/helpers.ts';
import { listen } from '../helpers/frameworks.ts';
import { destinationRule, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

type Rnd = { next(): number };
type Obj = Record<string, unknown>;
const pick = <T>(r: Rnd, xs: readonly T[]): T => xs[Math.floor(r.next() * xs.length)] as T;
const chance = (r: Rnd, p: number) => r.next() < p;
const SEED = Number(process.env.MESHLET_EXPLAIN_SEED ?? 20261205);
const dir = mkdtempSync(join(tmpdir(), 'meshlet-explain-consistency-'));
after(() => rmSync(dir, { recursive: true, force: true }));
/** The config as a file for `meshlet explain` (JSON documents are YAML). */
function configFile(name: string, docs: readonly object[]): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, docs.map((d) => JSON.stringify(d)).join('\n---\n'));
  return file;
}
/** `meshlet explain ... -o json`, parsed. */
function cli(args: readonly string[]): Obj {
  const run = meshlet([...args, '-o', 'json']);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as Obj;
}
const quiet = { warn: () => {}, info: () => {}, debug: () => {}, error: () => {} };

// ---- outbound --------------------------------------------------------------------------------

const URIS: Obj[] = [{ exact: '/a' }, { prefix: '/a' }, { prefix: '/b/' }, { regex: '/a/[0-9]+' }, { exact: '/b/c' }, { prefix: '/' }];
const OUT_PATHS = ['/a', '/a/1', '/a/x', '/b/c', '/b/', '/bc', '/A', '/a?q=1', '/b/c?q=2&r=1', '/x/../a', '/%61', '/a/12'];

function genMatch(r: Rnd): Obj {
  const m: Obj = {};
  if (chance(r, 0.7)) m.uri = pick(r, URIS);
  if (chance(r, 0.3)) m.headers = { 'x-h': pick(r, [{ exact: 'one' }, { prefix: 'o' }, { regex: 't.*' }]) };
  if (chance(r, 0.25)) m.method = pick(r, [{ exact: 'GET' }, { exact: 'POST' }, { prefix: 'P' }, { regex: 'GET|PATCH' }]);
  if (chance(r, 0.2)) m.queryParams = { q: pick(r, [{ exact: '1' }, { exact: '2' }]) };
  return m;
}

function genRule(r: Rnd, i: number, last: boolean): Obj {
  const rule: Obj = {};
  if (!(last && chance(r, 0.5))) rule.match = Array.from({ length: 1 + Math.floor(r.next() * 2) }, () => genMatch(r));
  const kind = r.next();
  if (kind < 0.15) rule.redirect = { uri: `/moved-${i}` };
  else if (kind < 0.3) rule.directResponse = { status: 200, body: { string: `dr-${i}` } };
  else {
    rule.route = [{ destination: { host: 'svc', subset: pick(r, ['v1', 'v2']) } }];
    rule.headers = { request: { set: { 'x-rule': String(i) } } };
    if (chance(r, 0.3)) rule.fault = { abort: { httpStatus: 420 + i, percentage: { value: pick(r, [0, 100]) } } };
    if (chance(r, 0.3)) rule.rewrite = { uri: pick(r, ['/rw', '/rw/']) };
  }
  return rule;
}

interface Seen {
  status: number;
  body: string;
  upstream: string | undefined;
  rule: string | undefined;
  path: string | undefined;
}

describe('mesh.explain agrees with mesh.fetch', () => {
  let v1: Upstream;
  let v2: Upstream;
  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2');
  });
  after(async () => {
    await v1.close();
    await v2.close();
  });

  it('on the route, subset, fault, rewrite, redirect and direct response', async () => {
    const r = seededRandom(SEED);
    for (let c = 0; c < 40; c++) {
      const n = 1 + Math.floor(r.next() * 4);
      const http = Array.from({ length: n }, (_, i) => genRule(r, i, i === n - 1));
      const config = [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [
          { port: v1.port, labels: { version: 'v1' } },
          { port: v2.port, labels: { version: 'v2' } },
        ]),
        destinationRule('svc', 'svc.default.svc.cluster.local', { subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }),
        virtualService('svc', ['svc'], http),
      ];
      const mesh = await createMesh({ service: 'client', config, logger: quiet });
      try {
        for (let q = 0; q < 25; q++) {
          const path = pick(r, OUT_PATHS);
          const method = pick(r, ['GET', 'POST', 'PATCH', 'DELETE', 'get', 'post']);
          const headers: Record<string, string> = chance(r, 0.5) ? { [pick(r, ['x-h', 'X-H'])]: pick(r, ['one', 'two', 'other', 'One']) } : {};
          const url = `http://svc${path}`;
          const what = `seed ${SEED} config ${c} request ${q}: ${method} ${url} ${JSON.stringify(headers)}\nVirtualService http: ${JSON.stringify(http)}`;
          const e = mesh.explain({ url, method, headers });
          if (q === 0 && c % 8 === 0) {
            const j = cli(['explain', configFile(`out-${c}`, config), '--service', 'client', '-X', method, ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url]);
            const route = j.route as Obj | null;
            const dests = (j.destinations as Obj[]).map((d) => `${d.host}:${d.port}${d.subset === null ? '' : ` subset ${d.subset}`}`);
            assert.deepEqual(
              { outcome: j.outcome, skipped: (j.skipped as unknown[]).length, index: route === null ? undefined : route.index, faulted: route?.fault != null, dests },
              { outcome: e.outcome, skipped: e.skipped.length, index: e.route === undefined ? undefined : e.skipped.length, faulted: e.fault !== undefined, dests: e.targets.map((t) => t.destination) },
              `CLI: ${what}`,
            );
          }
          v1.seen.length = 0;
          v2.seen.length = 0;
          const res = await mesh.fetch(url, { method, headers, redirect: 'manual' });
          const body = await res.text();
          const hit = v1.seen[0] ?? v2.seen[0];
          const seen: Seen = { status: res.status, body, upstream: v1.seen.length > 0 ? 'v1' : v2.seen.length > 0 ? 'v2' : undefined, rule: hit?.headers['x-rule'] as string | undefined, path: hit?.url };
          const idx = e.skipped.length;
          const rule = http[idx];
          const expect: Seen = { status: 0, body: '', upstream: undefined, rule: undefined, path: undefined };
          if (e.outcome === 'no-route') expect.status = 404;
          else if (e.outcome === 'redirect') expect.status = 301;
          else if (e.outcome === 'direct-response') Object.assign(expect, { status: 200, body: `dr-${idx}` });
          else {
            assert.equal(e.outcome, 'routed', what);
            const abort = /abort (\d+) @100%/.exec(e.fault ?? '');
            if (abort) expect.status = Number(abort[1]);
            else {
              const target = e.targets[0]?.destination ?? '';
              const rw = (rule?.rewrite as { uri: string } | undefined)?.uri;
              const u = new URL(url);
              Object.assign(expect, { status: 200, body: / subset v1$/.test(target) ? 'v1' : 'v2', upstream: / subset v1$/.test(target) ? 'v1' : 'v2', rule: String(idx) });
              // A full-path rewrite (uri on a rule whose match is not a prefix, or no match) replaces the path; prefix matches replace the prefix.
              // The mesh normalizes a call's path before routing it (pathNormalization, BASE by default), as the sidecar does.
              expect.path = rw === undefined ? normalizePath(`${u.pathname}${u.search}`, 'BASE') : (seen.path ?? '');
            }
          }
          if (expect.status !== 200 || expect.body.startsWith('dr-')) {
            // A local reply: compare only its status and (direct responses) body.
            assert.deepEqual({ status: seen.status, body: expect.body === '' ? '' : seen.body, upstream: seen.upstream }, { status: expect.status, body: expect.body, upstream: undefined }, `${what}\nexplain: ${e}`);
          } else {
            assert.deepEqual(seen, expect, `${what}\nexplain: ${e}`);
          }
        }
      } finally {
        await mesh.close();
      }
    }
  });
});

// ---- inbound ---------------------------------------------------------------------------------

const ISSUER = 'testing@secure.istio.io';
const IN_PATHS = ['/admin', '/admin/', '//admin', '/a/../admin', '/%61dmin', '/ADMIN', '/public/x', '/admin%2Fx', '/public/../admin', '/public/x?q=1', '/admin;x', '/./admin', '/public%2F..%2Fadmin', '/%2e%2e/admin', '/public/%2E%2E/admin', '/admin#/../public/x', '/public/x#/../../admin', '/public/x?q=1#/../../admin', '/public\\..\\admin', '/admin/.', '/admin?x=/public', '/admin#x', '/public/x%00', '/%2Fadmin', '/public/x/..'];
const POLICY_PATHS = ['/admin', '/admin/*', '/public/*', '*', '/ADMIN', '/admin*', '*/x'];
const HOSTS = ['httpbin.foo:8000', 'other.example'];
const SENT_HOSTS = [...HOSTS, 'HTTPBIN.foo:8000', 'httpbin.foo', 'other.example:80', 'httpbin.foo:8000.'];

function genPolicy(r: Rnd, i: number): Obj {
  const op: Obj = {};
  if (chance(r, 0.6)) op.paths = [pick(r, POLICY_PATHS)];
  if (chance(r, 0.2)) op.notPaths = [pick(r, POLICY_PATHS)];
  if (chance(r, 0.3)) op.methods = [pick(r, ['GET', 'POST'])];
  if (chance(r, 0.2)) op.hosts = [pick(r, HOSTS)];
  const rule: Obj = {};
  if (Object.keys(op).length > 0) rule.to = [{ operation: op }];
  if (chance(r, 0.3)) rule.from = [{ source: { requestPrincipals: [pick(r, [`${ISSUER}/alice`, '*'])] } }];
  if (chance(r, 0.25)) rule.when = [{ key: 'request.headers[x-h]', values: [pick(r, ['one', 'o*'])] }];
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: `p${i}`, namespace: 'foo' },
    spec: { selector: { matchLabels: { app: 'httpbin' } }, action: pick(r, ['ALLOW', 'DENY']), rules: [rule] },
  };
}

/** A local rate limit with a bucket no run empties. */
const rateLimit = {
  apiVersion: 'networking.istio.io/v1alpha3',
  kind: 'EnvoyFilter',
  metadata: { name: 'rl', namespace: 'foo' },
  spec: {
    workloadSelector: { labels: { app: 'httpbin' } },
    configPatches: [
      {
        applyTo: 'HTTP_FILTER',
        match: { context: 'SIDECAR_INBOUND' },
        patch: {
          operation: 'INSERT_BEFORE',
          value: {
            name: 'envoy.filters.http.local_ratelimit',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
              stat_prefix: 'http_local_rate_limiter',
              token_bucket: { max_tokens: 100000, tokens_per_fill: 100000, fill_interval: '60s' },
              filter_enabled: { runtime_key: 'e', default_value: { numerator: 100, denominator: 'HUNDRED' } },
              filter_enforced: { runtime_key: 'f', default_value: { numerator: 100, denominator: 'HUNDRED' } },
            },
          },
        },
      },
    ],
  },
};

function send(port: number, method: string, path: string, headers: Record<string, string | string[]>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('mesh.explainInbound agrees with mesh.createServer', () => {
  it('on the status, the refusing step and the request principal', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const other = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    const sign = (key: Parameters<SignJWT["sign"]>[0]) => new SignJWT({ iss: ISSUER, sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(key);
    const tokens = { none: undefined, valid: await sign(privateKey), invalid: await sign(other.privateKey) } as const;
    const r = seededRandom(SEED + 1);
    const base = [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'httpbin', namespace: 'foo' }, spec: { selector: { app: 'httpbin' }, ports: [{ name: 'http', port: 8000, targetPort: 8080 }] } },
      { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'foo' }, spec: { mtls: { mode: 'PERMISSIVE' } } },
      { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name: 'jwt', namespace: 'foo' }, spec: { selector: { matchLabels: { app: 'httpbin' } }, jwtRules: [{ issuer: ISSUER, jwks: JSON.stringify({ keys: [jwk] }) }] } },
    ];
    for (let c = 0; c < 30; c++) {
      const policies = Array.from({ length: Math.floor(r.next() * 4) }, (_, i) => genPolicy(r, i));
      const config = [...base, ...policies, ...(chance(r, 0.4) ? [rateLimit] : [])];
      const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config, logger: quiet });
      let principal: unknown = 'unset';
      const server = mesh.createServer((req, res) => {
        principal = (req as { meshlet?: { requestPrincipal?: string } }).meshlet?.requestPrincipal;
        res.end('app');
      });
      const port = await listen(server);
      try {
        for (let q = 0; q < 25; q++) {
          const path = pick(r, IN_PATHS);
          const method = pick(r, ['GET', 'POST']);
          const tokenKind = pick(r, ['none', 'valid', 'invalid'] as const);
          const headers: Record<string, string | string[]> = { host: pick(r, SENT_HOSTS) };
          if (chance(r, 0.4)) headers['x-h'] = pick(r, ['one', 'two', ['one', 'two'], ['two', 'one'], 'one, two', '']);
          const token = tokens[tokenKind];
          if (token !== undefined) headers.authorization = `Bearer ${token}`;
          const what = `seed ${SEED + 1} config ${c} request ${q}: ${method} ${path} token ${tokenKind} ${JSON.stringify({ ...headers, authorization: undefined })}\npolicies: ${JSON.stringify(policies.map((p) => p.spec))}`;
          const e = await mesh.explainInbound(chance(r, 0.5) || !HOSTS.includes(headers.host as string) ? { url: path, method, headers, port: 8080 } : { url: `http://${headers.host}${path}`, method, headers });
          if (q === 0 && c % 6 === 0) {
            const j = cli(['explain', configFile(`in-${c}`, config), '--service', 'httpbin', '-n', 'foo', '-l', 'app=httpbin', '--inbound', '--port', '8080', '-X', method, ...Object.entries(headers).flatMap(([k, v]) => [v].flat().flatMap((x) => ['-H', `${k}: ${x}`])), path]);
            assert.deepEqual({ status: j.status, refusedBy: j.refusedBy, requestPrincipal: j.requestPrincipal }, { status: e.status, refusedBy: e.refusedBy ?? null, requestPrincipal: e.requestPrincipal ?? null }, `CLI: ${what}`);
          }
          principal = 'unset';
          const got = await send(port, method, path, headers);
          const reached = got.status === 200 && got.body === 'app';
          assert.deepEqual(
            { status: got.status, reached, principal: reached ? principal : undefined },
            { status: e.status, reached: e.refusedBy === undefined, principal: e.refusedBy === undefined ? e.requestPrincipal : undefined },
            `${what}\nexplain: ${e}`,
          );
        }
      } finally {
        await new Promise((res) => server.close(res));
        await mesh.close();
      }
    }
  });
});
