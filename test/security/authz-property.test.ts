/**
 * Property test: random policies (validated as any config is) and random requests, judged by
 * the engine and by the reference implementation (authz-reference.ts, written from Istio's and
 * Envoy's sources). They must agree on the decision, the deciding action, policy and rule, the
 * dry-run outcomes and the audit hit; above all the engine must never allow what the reference
 * denies. Seeded: a failure names the seed, the config and the request, and
 * `MESHLET_AUTHZ_SEED=<n> MESHLET_AUTHZ_RUNS=1` replays it (`MESHLET_AUTHZ_RUNS=5000` explores).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromObjects } from '../../src/config/load.ts';
import type { Resource } from '../../src/config/resource.ts';
import { validateDocuments } from '../../src/config/validate/index.ts';
import { IssueList } from '../../src/config/issues.ts';
import { seededRandom } from '../../src/core/clock.ts';
import { compileAuthz } from '../../src/security/authz/engine.ts';
import type { AuthzResult, ExtAuthzCheck } from '../../src/security/authz/types.ts';
import { type RefDecision, type RefRequest, referenceDecide } from './authz-reference.ts';

type Rnd = { next(): number };
const pick = <T>(r: Rnd, xs: readonly T[]): T => xs[Math.floor(r.next() * xs.length)] as T;
const chance = (r: Rnd, p: number) => r.next() < p;
const some = <T>(r: Rnd, xs: readonly T[], max = 3): T[] => [...new Set(Array.from({ length: 1 + Math.floor(r.next() * max) }, () => pick(r, xs)))];

// ---- value pools (chosen to collide with the request pools below) ---------------------------

const PRINCIPALS = ['cluster.local/ns/foo/sa/sleep', 'cluster.local/ns/foo/*', '*/sa/sleep', '*', 'td2/ns/bar/sa/web', 'cluster.local/ns/bar/sa/*', '*sleep', 'other.td/ns/foo/sa/sleep', 'cluster.local/ns/foo/sa/sleep-v2', '*-td/ns/bar/sa/web'];
const REQUEST_PRINCIPALS = ['iss.example/alice', 'iss.example/*', '*/alice', '*', 'https://idp.example.com/bob', 'iss.*', '*ice', 'iss.example', 'https://idp.example.com/*', '*.example/alice', 'i/a/b'];
const NAMESPACES = ['foo', 'bar', 'f*', '*oo', '*', 'fo', 'ba*', 'foobar'];
const SERVICE_ACCOUNTS = ['sleep', 'foo/sleep', 'bar/web', 'web', 'sleep-v2'];
const IPS = ['10.0.0.0/24', '10.0.0.7', '192.168.0.0/16', '2001:db8::/32', '0.0.0.0/0', '1.2.3.4', '10.0.0.0/29', '::/0', '10.0.0.20'];
const TRUST_DOMAINS = ['cluster.local', 'td2', '*.local', 'clus*', '*', 'other.td', 'td*'];
const HOSTS = ['httpbin:8000', 'HTTPBIN*', '*.example.com', '*', 'httpbin', 'api.example.com', '*:8000'];
const PORTS = ['8000', '9000', '8080'];
const METHODS = ['GET', 'POST', 'P*', '*T', '*', 'DELETE'];
const PATHS = ['/headers', '/api/*', '/api*', '*.png', '*', '/admin/x', '/api/{*}/users', '/api/{**}', '/store/{**}/cart', '/{*}', '/a/{*}/', '/Headers', '//a/{*}', '/{**}', '*/users'];
const CONDITIONS: readonly [string, readonly string[], boolean][] = [
  // key, values, allowed with CUSTOM
  ['request.headers[x-foo]', ['foo', 'fo*', '*oo', '*', 'a,b', 'bar'], true],
  ['request.headers[X-Bar]', ['1', '*'], true],
  ['request.headers[host]', ['httpbin:8000', '*', 'httpbin*'], true],
  ['source.ip', IPS, true],
  ['remote.ip', IPS, true],
  ['destination.ip', IPS, true],
  ['destination.port', PORTS, true],
  ['connection.sni', ['*.cluster.local', 'outbound_.8000_._.httpbin.foo.svc.cluster.local', '*', 'never'], true],
  ['source.namespace', NAMESPACES, false],
  ['source.principal', PRINCIPALS, false],
  ['source.serviceAccount', SERVICE_ACCOUNTS, false],
  ['source.trustDomain', TRUST_DOMAINS, true],
  ['request.auth.principal', REQUEST_PRINCIPALS, false],
  ['request.auth.audiences', ['foo', 'bar', 'f*', '*'], false],
  ['request.auth.presenter', ['bar', 'b*', '*'], false],
  ['request.auth.claims[groups]', ['group-1', 'group-*', '*', 'admin'], false],
  ['request.auth.claims[nested][key1]', ['valueA', 'value*', '*'], false],
  ['request.auth.claims[scope]', ['read', 'write', '*'], false],
  ['experimental.envoy.filters.a.b[c]', ['x', '*'], true],
];

type Obj = Record<string, unknown>;

function genSource(r: Rnd, custom: boolean): Obj {
  const s: Obj = {};
  const field = (name: string, pool: readonly string[]) => {
    if (chance(r, 0.3)) s[name] = some(r, pool);
  };
  for (let tries = 0; Object.keys(s).length === 0 && tries < 10; tries++) {
    if (!custom) {
      const sa = chance(r, 0.2);
      if (sa) {
        field('serviceAccounts', SERVICE_ACCOUNTS);
        field('notServiceAccounts', SERVICE_ACCOUNTS);
      } else {
        field('principals', PRINCIPALS);
        field('notPrincipals', PRINCIPALS);
        field('namespaces', NAMESPACES);
        field('notNamespaces', NAMESPACES);
      }
      field('requestPrincipals', REQUEST_PRINCIPALS);
      field('notRequestPrincipals', REQUEST_PRINCIPALS);
    }
    field('ipBlocks', IPS);
    field('notIpBlocks', IPS);
    field('remoteIpBlocks', IPS);
    field('notRemoteIpBlocks', IPS);
    field('trustDomains', TRUST_DOMAINS);
    field('notTrustDomains', TRUST_DOMAINS);
  }
  return s;
}

function genOperation(r: Rnd): Obj {
  const o: Obj = {};
  const field = (name: string, pool: readonly string[]) => {
    if (chance(r, 0.35)) o[name] = some(r, pool);
  };
  while (Object.keys(o).length === 0) {
    field('hosts', HOSTS);
    field('notHosts', HOSTS);
    field('ports', PORTS);
    field('notPorts', PORTS);
    field('methods', METHODS);
    field('notMethods', METHODS);
    field('paths', PATHS);
    field('notPaths', PATHS);
  }
  return o;
}

function genRule(r: Rnd, custom: boolean): Obj {
  const rule: Obj = {};
  if (chance(r, 0.5)) rule.from = Array.from({ length: 1 + Math.floor(r.next() * 2) }, () => ({ source: genSource(r, custom) }));
  if (chance(r, 0.6)) rule.to = Array.from({ length: 1 + Math.floor(r.next() * 2) }, () => ({ operation: genOperation(r) }));
  if (chance(r, 0.4)) {
    const conds = CONDITIONS.filter((c) => !custom || c[2]);
    rule.when = Array.from({ length: 1 + Math.floor(r.next() * 2) }, () => {
      const [key, pool] = pick(r, conds);
      const c: Obj = { key };
      if (chance(r, 0.7)) c.values = some(r, pool);
      if (c.values === undefined || chance(r, 0.3)) c.notValues = some(r, pool);
      return c;
    });
  }
  return rule;
}

function genPolicy(r: Rnd, i: number): Obj {
  const action = pick(r, ['ALLOW', 'ALLOW', 'DENY', 'DENY', 'AUDIT', 'CUSTOM'] as const);
  const spec: Obj = { action };
  const ns = pick(r, ['foo', 'foo', 'foo', 'istio-system', 'bar']);
  if (chance(r, 0.5)) spec.selector = { matchLabels: pick(r, [{ app: 'httpbin' }, { app: 'httpbin', version: 'v1' }, { app: 'other' }, { version: 'v2' }]) };
  if (action === 'CUSTOM') spec.provider = { name: pick(r, ['ext', 'ext', 'ext2', 'missing']) };
  const noRules = action === 'ALLOW' || action === 'AUDIT' ? chance(r, 0.1) : false;
  if (!noRules) spec.rules = Array.from({ length: 1 + Math.floor(r.next() * 3) }, () => (chance(r, 0.1) ? {} : genRule(r, action === 'CUSTOM')));
  const metadata: Obj = { name: `p${i}`, namespace: ns };
  if ((action === 'ALLOW' || action === 'DENY') && chance(r, 0.25)) metadata.annotations = { 'istio.io/dry-run': pick(r, ['true', 'false', 'True']) };
  return { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata, spec };
}

/** A random string over `alphabet`, `min`..`max` characters. */
function randomText(r: Rnd, alphabet: string, min: number, max: number): string {
  const n = min + Math.floor(r.next() * (max - min + 1));
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(r.next() * alphabet.length)];
  return s;
}

/** A random path: segments of pchars and a few characters Envoy's templates refuse, maybe a query. */
function randomPath(r: Rnd): string {
  const segs = Array.from({ length: Math.floor(r.next() * 4) }, () => (chance(r, 0.4) ? pick(r, ['api', 'v1', 'users', 'store', 'cart', 'a', 'x', 'headers']) : randomText(r, 'ab.-_~%!$&()+,;:@=* ', 0, 4)));
  return `/${segs.join('/')}${chance(r, 0.2) ? '/' : ''}${chance(r, 0.2) ? `?${randomText(r, 'a=/.&', 0, 5)}` : ''}`;
}

/** A random IP: mostly near the pools' ranges. */
function randomIp(r: Rnd): string {
  const o = () => Math.floor(r.next() * 256);
  return pick(r, [`10.0.0.${o()}`, `192.168.${o()}.${o()}`, `${o()}.${o()}.${o()}.${o()}`, `2001:db8::${o().toString(16)}`, `::ffff:10.0.0.${o()}`]);
}

function genRequest(r: Rnd): RefRequest {
  const headers: Record<string, string | string[] | undefined> = Object.create(null);
  if (chance(r, 0.5)) headers['x-foo'] = chance(r, 0.2) ? randomText(r, 'fobar,*', 0, 5) : pick(r, ['foo', 'bar', 'food', '', ['a', 'b'], 'a,b']);
  if (chance(r, 0.2)) headers['x-bar'] = pick(r, ['1', '2']);
  if (chance(r, 0.1)) headers['x-forwarded-for'] = `${randomIp(r)}, ${randomIp(r)}`;
  else if (chance(r, 0.4)) headers['x-forwarded-for'] = pick(r, ['1.2.3.4', '9.9.9.9, 10.0.0.7', 'bad', ' 192.168.1.1 ', '1.2.3.4,', '2001:db8::5, 1.2.3.4', ['8.8.8.8', '1.2.3.4']]);
  if (chance(r, 0.6)) headers['x-ext'] = pick(r, ['allow', 'deny']);
  const claims = chance(r, 0.5)
    ? (() => {
        const c: Record<string, unknown> = { iss: pick(r, ['iss.example', 'https://idp.example.com', 'i/a', 'i']), sub: pick(r, ['alice', 'bob', '', 'b']) };
        if (chance(r, 0.4)) c.groups = pick(r, ['group-1', ['group-1', 'admin'], ['x'], 3]);
        if (chance(r, 0.3)) c.aud = pick(r, ['foo', ['bar', 'foo'], ['baz']]);
        if (chance(r, 0.3)) c.azp = pick(r, ['bar', 'baz']);
        if (chance(r, 0.3)) c.nested = pick(r, [{ key1: ['valueA', 'valueB'] }, { key1: 'valueC' }, 'flat']);
        if (chance(r, 0.3)) c.scope = pick(r, [['read', 'write'], 'read write', ['admin']]);
        return c;
      })()
    : undefined;
  const peer = chance(r, 0.6)
    ? { principal: `spiffe://${pick(r, ['cluster.local/ns/foo/sa/sleep', 'cluster.local/ns/bar/sa/web', 'td2/ns/bar/sa/web', 'other.td/ns/foo/sa/sleep-v2', 'cluster.local/ns/foo/sa/sleep-v2', 'cluster.local/ns/foobar/sa/x', 'new-td/ns/bar/sa/web'])}` }
    : undefined;
  return {
    method: pick(r, ['GET', 'POST', 'PUT', 'DELETE', 'get', 'PATCH']),
    authority: pick(r, ['httpbin:8000', 'HTTPBIN:8000', 'api.example.com', 'httpbin', 'API.Example.com:8000']),
    path: chance(r, 0.25) ? randomPath(r) : pick(r, ['/headers', '/headers?x=1', '/api/v1/users', '/api/v1/x/users', '/api', '/apiv2', '/a/b.png?x', '/admin/x', '/store//cart', '/store/cart', '/store/a/b/cart', '/a/b/', '/x/a b', '/Headers', '/', '/api/v1/users#f', '/a/v*/', '/u/users', '/a/x?y/']),
    headers,
    remoteAddress: chance(r, 0.2) ? randomIp(r) : pick(r, ['10.0.0.7', '::ffff:10.0.0.7', '192.168.1.5', '2001:db8::1', '10.0.0.9']),
    localPort: Number(pick(r, PORTS)),
    localAddress: pick(r, ['10.0.0.20', undefined, '2001:db8::20']),
    sni: pick(r, [undefined, 'outbound_.8000_._.httpbin.foo.svc.cluster.local', 'x.cluster.local']),
    peer,
    requestPrincipal: claims === undefined ? undefined : `${String(claims.iss)}/${String(claims.sub)}`,
    // Now and then a JWT phase that gives only the principal: iss/sub come from splitting it.
    claims: chance(r, 0.1) ? undefined : claims,
  };
}

const idOf = (policy: string, rule: number) => {
  const [ns, name] = policy.split('/');
  return `ns[${ns}]-policy[${name}]-rule[${rule}]`;
};

function engineView(r: AuthzResult) {
  return {
    decision: r.decision,
    action: r.action,
    policy: r.policy,
    rule: r.rule,
    dryRun: r.dryRun.map((d) => ({ action: d.action, result: d.result, id: d.id })),
    audit: r.audit === undefined ? undefined : idOf(r.audit.policy, r.audit.rule),
  };
}

function referenceView(d: RefDecision) {
  return { decision: d.decision, action: d.action, policy: d.policy, rule: d.rule, dryRun: d.dryRun, audit: d.audit };
}

interface Disagreement {
  seed: number;
  engine: unknown;
  reference: unknown;
  config: unknown;
  request: unknown;
  options: unknown;
}

async function run(seed: number, requests: number, out: Disagreement[], stats: { configs: number; invalid: number; evaluations: number; allowed: number; custom: number }): Promise<void> {
  const r = seededRandom(seed);
  let objects: Obj[] = [];
  let resources: Resource[] = [];
  for (let tries = 0; ; tries++) {
    objects = Array.from({ length: 1 + Math.floor(r.next() * 4) }, (_, i) => genPolicy(r, i));
    const issues = new IssueList();
    resources = validateDocuments(fromObjects(objects), {}, issues).resources;
    if (!issues.hasErrors) break;
    stats.invalid++;
    if (tries > 50) throw new Error(`seed ${seed}: no valid config in 50 tries: ${issues.ofLevel('error').map(String).join('\n')}`);
  }
  stats.configs++;
  const workload = { namespace: 'foo', labels: pick<Record<string, string>>(r, [{ app: 'httpbin', version: 'v1' }, { app: 'httpbin' }, { app: 'other', version: 'v2' }]) };
  const td = pick<{ trustDomain?: string; aliases?: string[] }>(r, [{}, { trustDomain: 'td2', aliases: ['cluster.local'] }, { trustDomain: 'new-td', aliases: ['old-td', 'td2'] }, { trustDomain: 'other.td' }]);
  const numTrustedProxies = pick(r, [undefined, undefined, 0, 1, 2]);
  const multipleCustomProviders = chance(r, 0.5);
  const ask = (req: { headers: Readonly<Record<string, unknown>> }) => req.headers['x-ext'] === 'allow';
  const provider: ExtAuthzCheck = async (req) => (ask(req) ? { allowed: true } : { allowed: false, status: 403, headers: {}, body: 'no' });
  const engine = compileAuthz(resources, workload, {
    ...(td.trustDomain === undefined ? {} : { trustDomain: td.trustDomain }),
    ...(td.aliases === undefined ? {} : { trustDomainAliases: td.aliases }),
    ...(numTrustedProxies === undefined ? {} : { numTrustedProxies }),
    providers: { ext: provider, ext2: provider },
    multipleCustomProviders,
  });
  const refOpts = {
    ...td,
    ...(numTrustedProxies === undefined ? {} : { numTrustedProxies }),
    providers: ['ext', 'ext2'],
    multipleCustomProviders,
    ask: (_p: string, req: RefRequest) => ask(req),
  };
  for (let i = 0; i < requests; i++) {
    const req = genRequest(r);
    const er = engine.evaluate(req);
    if (er instanceof Promise) stats.custom++;
    const e = engineView(await er);
    const ref = referenceView(referenceDecide(resources, workload, req, refOpts));
    stats.evaluations++;
    if (e.decision === 'allow') stats.allowed++;
    try {
      assert.deepEqual(e, ref);
    } catch {
      out.push({ seed, engine: e, reference: ref, config: objects, request: req, options: { workload, td, numTrustedProxies, multipleCustomProviders } });
    }
  }
}

describe('property: the engine agrees with the reference implementation', () => {
  it('random policies and requests, seeded', async (t) => {
    const first = Number(process.env.MESHLET_AUTHZ_SEED ?? 1);
    const runs = Number(process.env.MESHLET_AUTHZ_RUNS ?? 300);
    const out: Disagreement[] = [];
    const stats = { configs: 0, invalid: 0, evaluations: 0, allowed: 0, custom: 0 };
    for (let seed = first; seed < first + runs; seed++) await run(seed, 40, out, stats);
    t.diagnostic(`seeds ${first}..${first + runs - 1}: ${stats.configs} configs (${stats.invalid} invalid ones regenerated), ${stats.evaluations} evaluations, ${stats.allowed} allowed, ${stats.custom} asked a CUSTOM provider`);
    // The generator must exercise both outcomes and the asynchronous path, or the test proves little.
    assert.ok(stats.allowed > stats.evaluations * 0.2 && stats.allowed < stats.evaluations * 0.9, `allow share ${stats.allowed}/${stats.evaluations}`);
    assert.ok(stats.custom > 0, 'some requests went to a CUSTOM provider');
    const looser = out.filter((d) => (d.engine as { decision: string }).decision === 'allow' && (d.reference as { decision: string }).decision === 'deny');
    const show = (d: Disagreement) => JSON.stringify(d, null, 1);
    assert.equal(looser.length, 0, `the engine allowed what the reference denies (${looser.length}); first:\n${looser.slice(0, 2).map(show).join('\n')}`);
    assert.equal(out.length, 0, `${out.length} disagreements in ${stats.evaluations} evaluations; first:\n${out.slice(0, 2).map(show).join('\n')}`);
  });
});
