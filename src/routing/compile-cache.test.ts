import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../core/clock.ts';
import { IssueList } from '../config/issues.ts';
import type { RawDocument } from '../config/load.ts';
import type { AnyResource } from '../config/resource.ts';
import { ValidationCache, validateDocuments, validateSteps } from '../config/validate/index.ts';
import { runNow } from '../config/steps.ts';
import { CompileCache } from './compile-cache.ts';
import { compileSnapshot, type Snapshot } from './compile.ts';
import type { Cluster, RouteTarget } from './route-table.ts';

/** A cluster's compiled settings as text (sets as arrays, undefined kept visible). */
const settingsText = (c: Cluster | undefined): string | undefined =>
  c === undefined ? undefined : JSON.stringify(c.settings, (_k, v) => (v instanceof Set ? [...v] : v === undefined ? '(undefined)' : v));

/** Everything a snapshot decides, printed: virtual hosts (names, domains, routes, every target's cluster, endpoints, policy and compiled settings), the clusters with their settings, and the inbound slot. */
function dump(s: Snapshot): string {
  const target = (t: RouteTarget): string =>
    JSON.stringify([t.host, t.port, t.subset, t.weight, t.missing, t.cluster?.name, t.cluster?.endpoints.map((e) => [e.key, e.labels, e.locality, e.weight]), t.cluster?.policy, settingsText(t.cluster), t.cluster?.protocol, t.cluster?.destinationRule?.rules.map((r) => r.ref)]);
  const lines: string[] = [`version ${s.version}`];
  for (const v of s.routes.virtualHosts) {
    lines.push(`vhost ${v.name} ${v.host} ${v.port} ${v.virtualService} ${v.service?.origin} [${v.domains.join(' ')}]`);
    for (const r of v.routes) {
      lines.push(`  ${String(r)}`);
      for (const t of r.targets) lines.push(`    ${target(t)}`);
      for (const m of r.mirrors) lines.push(`    mirror ${m.fraction} ${target(m.target)}`);
    }
  }
  for (const name of [...s.clusters.keys()].sort()) lines.push(`cluster ${String(s.clusters.get(name))} ${settingsText(s.clusters.get(name))}`);
  lines.push(`inbound ${s.inbound.compiled} ${s.inbound.resources.map((r) => r.ref).join(' ')}`);
  const otp = s.sidecar?.outboundTrafficPolicy;
  lines.push(`sidecar ${s.sidecar?.ref} ${otp?.mode} ${otp?.egressProxy === undefined ? '' : target(otp.egressProxy.target as RouteTarget)}`);
  return lines.join('\n');
}

const se = (name: string, host: string, o: Record<string, unknown> = {}) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name, namespace: (o.namespace as string) ?? 'default' },
  spec: { hosts: [host], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '10.0.0.1', labels: { v: '1' } }, { address: '10.0.0.2', labels: { v: '2' } }], ...(o.spec as object) },
});
const dr = (name: string, host: string, subsets = ['v1', 'v2'], extra: object = {}) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'DestinationRule',
  metadata: { name, namespace: 'default' },
  spec: { host, subsets: subsets.map((s) => ({ name: s, labels: { v: s.slice(1) } })), ...extra },
});
const vs = (name: string, host: string, to: string, w = 90, extra: object = {}) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name, namespace: 'default', ...extra },
  spec: {
    hosts: [host],
    http: [
      { match: [{ headers: { u: { exact: 'j' } } }], route: [{ destination: { host: to, subset: 'v2' } }] },
      { route: [{ destination: { host: to, subset: 'v1' }, weight: w }, { destination: { host: to, subset: 'v2' }, weight: 100 - w }], mirror: { host: 'mirror.example' } },
    ],
  },
});

test('a compile with a CompileCache gives exactly what a fresh compile gives, through 400 random changes, and reuses what did not change', () => {
  const random = seededRandom(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random.next() * xs.length)] as T;
  const hosts = Array.from({ length: 12 }, (_, i) => `s${i}`);
  let variant = 0;
  // The config as documents by key; a change replaces one document object (as a reload with the parse cache does).
  const docs = new Map<string, RawDocument>();
  const put = (key: string, value: object) => docs.set(key, { value, source: { file: `${key}.yaml` } });
  for (const h of hosts) {
    put(`se/${h}`, se(h, `${h}.default.svc.cluster.local`));
    put(`dr/${h}`, dr(h, h));
    put(`vs/${h}`, vs(h, h, pick(hosts)));
  }
  put('se/mirror', se('mirror', 'mirror.example', { spec: { location: 'MESH_EXTERNAL' } }));
  const changes: [string, () => void][] = [
    ['reweigh a route', () => put(`vs/${pick(hosts)}`, vs('x', pick(hosts), pick(hosts), Math.floor(random.next() * 100)))],
    ['point a route elsewhere', () => { const h = pick(hosts); put(`vs/${h}`, vs(h, h, pick([...hosts, 'nowhere']))); }],
    ['drop a DestinationRule', () => docs.delete(`dr/${pick(hosts)}`)],
    ['add a DestinationRule with a policy', () => { const h = pick(hosts); put(`dr/${h}`, dr(h, h, pick([['v1'], ['v1', 'v2']]), { trafficPolicy: { connectionPool: { http: { http1MaxPendingRequests: Math.ceil(random.next() * 9) } } } })); }],
    ['a DestinationRule with every cluster setting, port-level and subset overrides', () => {
      const h = pick(hosts);
      // The service is there and routed to, so its clusters carry these settings.
      put(`se/${h}`, se(h, `${h}.default.svc.cluster.local`));
      put(`vs/${h}`, vs(h, h, h));
      const lb = [{ simple: 'ROUND_ROBIN' }, { consistentHash: { httpCookie: { name: 'sid', ttl: `${Math.ceil(random.next() * 99)}s` } } }, { consistentHash: { useSourceIp: true, maglev: { tableSize: 65537 } } }, { localityLbSetting: { failover: [{ from: 'r1', to: 'r2' }] } }][variant++ % 4];
      const od = { consecutive5xxErrors: Math.floor(random.next() * 4), interval: `${Math.ceil(random.next() * 9)}s` };
      const tls = { mode: pick(['SIMPLE', 'DISABLE']), sni: `${h}.example` };
      put(`dr/${h}`, {
        ...dr(h, h, ['v1', 'v2']),
        spec: {
          host: h,
          trafficPolicy: { loadBalancer: lb, outlierDetection: od, tls, retryBudget: pick([undefined, { percent: 10 }]), connectionPool: { tcp: { maxConnections: Math.ceil(random.next() * 9) }, http: { h2UpgradePolicy: pick(['UPGRADE', 'DEFAULT']) } }, portLevelSettings: pick([[], [], [{ port: { number: 80 }, loadBalancer: { simple: 'RANDOM' } }]]) },
          subsets: [
            { name: 'v1', labels: { v: '1' }, ...pick([{}, { trafficPolicy: { outlierDetection: { consecutiveGatewayErrors: 3 } } }]) },
            { name: 'v2', labels: { v: '2' } },
          ],
        },
      });
    }],
    ['an AuthorizationPolicy comes or goes (the inbound slot)', () => {
      if (docs.has('ap/x')) docs.delete('ap/x');
      else put('ap/x', { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'x', namespace: 'default' }, spec: { action: 'DENY', rules: [{}] } });
    }],
    ['change endpoints', () => { const h = pick(hosts); put(`se/${h}`, se(h, `${h}.default.svc.cluster.local`, { spec: { endpoints: [{ address: `10.0.0.${Math.ceil(random.next() * 9)}`, labels: { v: pick(['1', '2']) } }] } })); }],
    ['drop a ServiceEntry', () => docs.delete(`se/${pick(hosts)}`)],
    ['add back a ServiceEntry', () => { const h = pick(hosts); put(`se/${h}`, se(h, `${h}.default.svc.cluster.local`)); }],
    ['hide a service', () => { const h = pick(hosts); put(`se/${h}`, se(h, `${h}.default.svc.cluster.local`, { spec: { exportTo: ['other'] } })); }],
    ['a wildcard ServiceEntry', () => put('se/wild', se('wild', pick(['*.default.svc.cluster.local', '*.example', '*.nothing'])))],
    ['an ExternalName alias', () => put(`svc/alias`, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'alias', namespace: 'default' }, spec: { type: 'ExternalName', externalName: `${pick(hosts)}.default.svc.cluster.local` } })],
    ['an older VirtualService for the same host', () => { const h = pick(hosts); put(`vs/old-${h}`, vs(`old-${h}`, h, pick(hosts), 50, { creationTimestamp: '2020-01-01T00:00:00Z' })); }],
    ['a VirtualService for a host with no service', () => put('vs/ghost', vs('ghost', pick(['ghost.example', `${pick(hosts)}.default.svc.cluster.local`]), pick(hosts)))],
    ['a Kubernetes Service selecting WorkloadEntries', () => put('svc/kube', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube', namespace: 'default' }, spec: { selector: { app: 'kube' }, ports: [{ port: 80, name: 'http', targetPort: pick([8080, 9090]) }] } })],
    ['a ServiceEntry selecting WorkloadEntries', () => put('se/selecting', se('selecting', 'selecting.example', { spec: { endpoints: undefined, workloadSelector: { labels: { app: pick(['kube', 'other']) } } } }))],
    ['a WorkloadEntry changes', () => {
      const n = Math.floor(random.next() * 3);
      put(`we/${n}`, { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: `we-${n}`, namespace: 'default' }, spec: { address: `10.1.0.${Math.ceil(random.next() * 3)}`, labels: { app: pick(['kube', 'other']), v: pick(['1', '2']) } } });
    }],
    ['a WorkloadEntry goes', () => docs.delete(`we/${Math.floor(random.next() * 3)}`)],
    ['a Sidecar comes, changes or goes (egress scoping)', () => {
      if (docs.has('sc/x') && random.next() < 0.7) {
        docs.delete('sc/x');
        return;
      }
      const egressHosts = [pick(['./*', `./${pick(hosts)}.default.svc.cluster.local`, '*/*.example', 'other/*']), pick(['*/mirror.example', `~./${pick(hosts)}.default.svc.cluster.local`, './kube.default.svc.cluster.local'])];
      const egress = pick([[{ hosts: egressHosts }], [{ port: { number: 80, protocol: 'HTTP', name: 'http' }, hosts: egressHosts }, { hosts: ['./*'] }], [{ port: { number: 8080, protocol: 'HTTP', name: 'http' }, hosts: egressHosts }, { hosts: egressHosts }]]);
      const outboundTrafficPolicy = pick([undefined, { mode: 'REGISTRY_ONLY' }, { mode: 'ALLOW_ANY', egressProxy: { host: pick(['mirror.example', `${pick(hosts)}.default.svc.cluster.local`]), port: { number: 80 } } }]);
      put('sc/x', { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'x', namespace: 'default' }, spec: { egress, ...(outboundTrafficPolicy === undefined ? {} : { outboundTrafficPolicy }) } });
    }],
    ['a VirtualService to the selected services', () => put('vs/to-kube', vs('to-kube', pick(hosts), pick(['kube', 'selecting.example'])))],
    ['insert a resource first (every position moves)', () => {
      const entries = [...docs];
      docs.clear();
      docs.set(`se/first-${Math.floor(random.next() * 1e6)}`, { value: se('first', 'first.example'), source: { file: 'first.yaml' } });
      for (const [k, d] of entries) if (!k.startsWith('se/first-')) docs.set(k, d);
    }],
  ];
  const validation = new ValidationCache();
  const cache = new CompileCache();
  const workload = { service: 'client', namespace: 'default', labels: { v: '1' } };
  const validated = (): AnyResource[] => runNow(validateSteps([...docs.values()], {}, new IssueList(), validation)).resources;
  let prior = compileSnapshot(validated(), workload, { cache });
  let reused = 0;
  let vhostsSeen = 0;
  // The settings the random DestinationRules declare do reach clusters (the comparison is not vacuous).
  const seen = new Set<string>();
  for (let i = 0; i < 400; i++) {
    const [what, change] = pick(changes);
    change();
    const resources = validated();
    const incremental = compileSnapshot(resources, workload, { cache });
    const fresh = compileSnapshot(validateDocuments([...docs.values()]).resources, workload);
    assert.equal(dump(incremental), dump(fresh), `change ${i} (${what}): the incremental compile differs from a fresh one`);
    for (const c of incremental.clusters.values()) {
      const st = c.settings;
      seen.add(st.loadBalancer.kind);
      if (st.tls !== undefined) seen.add('tls');
      if (st.outlierDetection !== undefined) seen.add('outlier');
      if (st.h2) seen.add('h2');
      if (st.retryBudget.percent !== undefined) seen.add('budget');
      if (st.loadBalancer.locality !== undefined) seen.add('locality');
    }
    if (incremental.inbound.resources.length > 0) seen.add('inbound');
    if (incremental.sidecar !== undefined) seen.add('sidecar');
    const before = new Set(prior.routes.virtualHosts);
    reused += incremental.routes.virtualHosts.filter((v) => before.has(v)).length;
    vhostsSeen += incremental.routes.virtualHosts.length;
    prior = incremental;
  }
  assert.ok(reused / vhostsSeen > 0.5, `virtual hosts reused: ${reused} of ${vhostsSeen}`);
  assert.deepEqual([...seen].sort(), ['LEAST_REQUEST', 'MAGLEV', 'RANDOM', 'RING_HASH', 'ROUND_ROBIN', 'budget', 'h2', 'inbound', 'locality', 'outlier', 'sidecar', 'tls']);
});

test('a CompileCache is for one workload: compiling for another one makes everything anew, and right', () => {
  const docs = [se('a', 'a.default.svc.cluster.local'), dr('a', 'a', ['v1'], { workloadSelector: { matchLabels: { v: '2' } } }), vs('a', 'a', 'a')].map((value, i) => ({ value, source: { file: `${i}.yaml` } }));
  const validation = new ValidationCache();
  const cache = new CompileCache();
  const resources = runNow(validateSteps(docs, {}, new IssueList(), validation)).resources;
  for (const labels of [{ v: '1' }, { v: '2' }, { v: '1' }]) {
    const workload = { service: 'client', namespace: 'default', labels };
    assert.equal(dump(compileSnapshot(resources, workload, { cache })), dump(compileSnapshot(resources, workload)), JSON.stringify(labels));
  }
});
