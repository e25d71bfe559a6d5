/**
 * Config compile and route lookup benchmark (issue #2 targets):
 * - validate + compile 1,000 services × 5 routes "in well under a second";
 * - a route lookup on a host with 20 rules "about a microsecond" and allocating nothing.
 * Several interleaved rounds; medians reported. Run with the flags below so allocation
 * can be read off the heap without a scavenge in between:
 *   node --expose-gc --max-semi-space-size=256 bench/config/compile-and-lookup.ts
 */
import { performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { checkDocuments } from '../../src/config/load-config.ts';
import { fromObjects } from '../../src/config/load.ts';
import { compileSnapshot } from '../../src/routing/compile.ts';
import type { RequestHead } from '../../src/routing/request-head.ts';
import { NO_ROUTE, toDraw } from '../../src/routing/route-table.ts';
import { median, writeSection } from '../lib/results.ts';

const gc = (globalThis as { gc?: () => void }).gc;
const ROUNDS = Number(process.env.ROUNDS ?? 7);

function services(n: number, rulesPerService: number): object[] {
  const out: object[] = [];
  for (let i = 0; i < n; i++) {
    const name = `svc-${i}`;
    out.push({
      apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name, namespace: 'default' },
      spec: { hosts: [`${name}.default.svc.cluster.local`], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 8080, name: 'http', protocol: 'HTTP' }],
        endpoints: [{ address: '10.0.0.1', labels: { version: 'v1' } }, { address: '10.0.0.2', labels: { version: 'v2' } }] },
    });
    out.push({
      apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name, namespace: 'default' },
      spec: { host: name, trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5, interval: '10s' } }, subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] },
    });
    out.push({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: 'default' }, spec: { hosts: [name], http: rules(name, rulesPerService) } });
  }
  return out;
}

/** A realistic mix: header, prefix, exact, method, query, one regex, withoutHeaders; catch-all last. */
function rules(host: string, n: number): object[] {
  const out: object[] = [];
  for (let j = 0; j < n - 1; j++) {
    const kind = j % 8;
    const match =
      kind === 0 ? { headers: { 'end-user': { exact: `user-${j}` } } }
      : kind === 1 ? { uri: { prefix: `/api/v${j}/` } }
      : kind === 2 ? { uri: { exact: `/health/${j}` } }
      : kind === 3 ? { method: { exact: 'DELETE' }, uri: { prefix: `/admin/${j}` } }
      : kind === 4 ? { headers: { 'x-canary': { exact: `${j}` } }, uri: { prefix: '/' } }
      : kind === 5 ? { uri: { regex: `/items/${j}/[0-9]+` } }
      : kind === 6 ? { queryParams: { variant: { exact: `${j}` } } }
      : { headers: { 'x-tenant': { prefix: `t${j}-` } }, withoutHeaders: { 'x-debug': { exact: '1' } } };
    out.push({ name: `r${j}`, match: [match], route: [{ destination: { host, subset: 'v2' } }], timeout: '2s', retries: { attempts: 2, retryOn: '5xx,reset' } });
  }
  out.push({ name: 'default', route: [{ destination: { host, subset: 'v1' }, weight: 90 }, { destination: { host, subset: 'v2' }, weight: 10 }] });
  return out;
}

// --- compile: 1,000 services × 5 routes ---
const objects = services(1000, 5);
const validateMs: number[] = [];
const compileMs: number[] = [];
let resourceCount = 0;
for (let r = 0; r < ROUNDS; r++) {
  gc?.();
  const t0 = performance.now();
  const loaded = checkDocuments(fromObjects(objects));
  const t1 = performance.now();
  if (!loaded.ok) throw new Error(loaded.issues.all.slice(0, 5).join('\n'));
  const snap = compileSnapshot(loaded.resources, { service: 'client', namespace: 'default' });
  const t2 = performance.now();
  if (snap.routes.virtualHosts.length < 1000) throw new Error('compile lost virtual hosts');
  resourceCount = loaded.resources.length;
  validateMs.push(t1 - t0);
  compileMs.push(t2 - t1);
}

// --- lookup: one host with 20 rules ---
const small = checkDocuments(fromObjects(services(1, 20)));
const snap = compileSnapshot(small.resources, { service: 'client', namespace: 'default' });
const headers = { 'end-user': 'someone', 'x-tenant': 'acme', accept: 'application/json', 'user-agent': 'bench' };
const requests: [string, RequestHead][] = [
  ['first rule (header exact)', { method: 'GET', scheme: 'http', authority: 'svc-0:8080', path: '/reviews/1', headers: { ...headers, 'end-user': 'user-0' } }],
  ['falls through all 19 rules to the catch-all', { method: 'GET', scheme: 'http', authority: 'svc-0:8080', path: '/reviews/1', headers }],
  ['catch-all, path with query string', { method: 'GET', scheme: 'http', authority: 'svc-0.default.svc.cluster.local:8080', path: '/reviews/1?page=2', headers }],
];
const N = 1_000_000;
const RANDOMS = Int32Array.from({ length: 128 }, (_, i) => toDraw(i / 128));
const rows: string[] = [];
for (const [label, head] of requests) {
  const nsPerOp: number[] = [];
  const bytesPerOp: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < 20_000; i++) snap.routes.route(head, RANDOMS[i & 127] as number); // warm
    gc?.();
    const before = getHeapStatistics().used_heap_size;
    const t0 = performance.now();
    let sink = 0;
    for (let i = 0; i < N; i++) {
      const d = snap.routes.route(head, RANDOMS[i & 127] as number);
      if (d !== undefined && d !== NO_ROUTE) sink += d.route.index;
    }
    const t1 = performance.now();
    const after = getHeapStatistics().used_heap_size;
    if (sink < 0) console.log(sink);
    nsPerOp.push(((t1 - t0) * 1e6) / N);
    bytesPerOp.push(Math.max(0, after - before) / N);
  }
  rows.push(`| ${label} | ${median(nsPerOp).toFixed(0)} ns | ${Math.min(...nsPerOp).toFixed(0)}–${Math.max(...nsPerOp).toFixed(0)} ns | ${median(bytesPerOp).toFixed(2)} |`);
}

const body = `Target: validate + compile 1,000 services × 5 routes in well under a second; route lookup on a host
with 20 rules about 1 µs, allocating nothing. ${ROUNDS} rounds, medians (min–max).

| step (1,000 services × 5 routes = ${resourceCount} resources) | median | min–max |
|---|---|---|
| validate + analyse | ${median(validateMs).toFixed(0)} ms | ${Math.min(...validateMs).toFixed(0)}–${Math.max(...validateMs).toFixed(0)} ms |
| compile snapshot for one workload | ${median(compileMs).toFixed(0)} ms | ${Math.min(...compileMs).toFixed(0)}–${Math.max(...compileMs).toFixed(0)} ms |
| total | ${(median(validateMs) + median(compileMs)).toFixed(0)} ms | |

Route lookup, host with 20 rules (header exact/prefix, uri prefix/exact/regex, method, query, withoutHeaders; weighted catch-all), ${N.toLocaleString('en')} lookups per round:

| request | median per lookup | min–max | heap bytes allocated per lookup${gc === undefined ? ' (run with --expose-gc for this column)' : ''} |
|---|---|---|---|
${rows.join('\n')}
`;
console.log(body);
if (process.env.NO_WRITE === undefined) {
  writeSection('config-compile-lookup', 'Config: compile and route lookup (issue #2)', 'node --expose-gc --max-semi-space-size=256 bench/config/compile-and-lookup.ts', body);
}
