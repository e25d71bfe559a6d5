/**
 * meshlet's first demo: real traffic from one workload (`productpage`) through the mesh to
 * local upstreams, under the Istio rules in ./mesh/*.yaml.
 *
 *   npm run demo            (node examples/demo/demo.ts)
 *
 * It starts reviews v1, v2, v3 (v3 answers 503 to every other request) and ratings on
 * 127.0.0.1, generates their ServiceEntries (the ports are dynamic), loads the static rules
 * from ./mesh, and plays five scenes: canary split, header route, fault injection, retries and
 * `mesh.explain()`. Randomness is seeded (`DEMO_SEED`, default 7) so runs repeat.
 */
import { fileURLToPath } from 'node:url';
import { createMesh, FLAGS_HEADER, loadConfig, type Mesh, seededRandom } from '../../src/index.ts';
import { heading, median, ms, pct, table } from './format.ts';
import { serviceEntryFor, startUpstream, type Upstream } from './services.ts';

const MESH_DIR = fileURLToPath(new URL('./mesh/', import.meta.url));
const SEED = Number(process.env['DEMO_SEED'] ?? 7);
const REVIEWS = 'http://reviews:9080/reviews/1';
const RATINGS = 'http://ratings:9080/ratings/1';

/** One call as the caller saw it. */
interface Result {
  readonly status: number;
  /** Which version answered (`x-version`), or `-` when the mesh answered itself. */
  readonly version: string;
  /** Envoy response flags the mesh added (`DI`, `FI`, `URX`, …), or ''. */
  readonly flags: string;
  readonly ms: number;
}

async function call(mesh: Mesh, url: string, headers: Record<string, string> = {}): Promise<Result> {
  const t0 = performance.now();
  const res = await mesh.fetch(url, { headers });
  await res.arrayBuffer();
  return { status: res.status, version: res.headers.get('x-version') ?? '-', flags: res.headers.get(FLAGS_HEADER) ?? '', ms: performance.now() - t0 };
}

async function sequential(n: number, fn: (i: number) => Promise<Result>): Promise<Result[]> {
  const out: Result[] = [];
  for (let i = 0; i < n; i++) out.push(await fn(i));
  return out;
}

function countBy<T>(items: readonly T[], key: (t: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const it of items) m.set(key(it), (m.get(key(it)) ?? 0) + 1);
  return m;
}

/** Host names as the demo prints them: `reviews` for reviews.default.svc.cluster.local. */
function short(text: string): string {
  return text.replaceAll('.default.svc.cluster.local', '');
}

/** The rule that would handle a request, as meshlet compiled it (explain's "matched"), indented by `indent`. */
function ruleFor(mesh: Mesh, url: string, headers: Record<string, string> = {}, indent = '         '): string {
  const [rule = 'no route', extras = ''] = short(mesh.explain({ url, headers }).route ?? '').split(/\n\s+/);
  return [rule, ...extras.split('; ').filter((x) => x !== '')].join(`\n${indent}`);
}

const summary: string[] = [];
let requests = 0;

async function canary(mesh: Mesh): Promise<void> {
  const n = 200;
  console.log(heading(1, 'Canary split: 90% of reviews traffic to v1, 10% to v2', ruleFor(mesh, REVIEWS)));
  const results = await sequential(n, () => call(mesh, REVIEWS));
  requests += n;
  const by = countBy(results, (r) => r.version);
  const rows: (string | number)[][] = [['version', 'requests', 'observed', 'rule']];
  for (const [v, w] of [['v1', '90%'], ['v2', '10%']] as const) rows.push([v, by.get(v) ?? 0, pct(by.get(v) ?? 0, n), w]);
  console.log(`   ${n} requests to ${REVIEWS}, no end-user header:`);
  console.log(table(rows, ['l', 'r', 'r', 'r']));
  summary.push(`1 canary   v1 ${pct(by.get('v1') ?? 0, n)} / v2 ${pct(by.get('v2') ?? 0, n)} of ${n} (rule 90/10)`);
}

async function headerRoute(mesh: Mesh): Promise<void> {
  const n = 40;
  const users = ['jason', 'alice'] as const;
  console.log(heading(2, 'Header route: end-user jason always gets v2, everyone else keeps the split', ruleFor(mesh, REVIEWS, { 'end-user': 'jason' })));
  const results = await sequential(2 * n, (i) => call(mesh, REVIEWS, { 'end-user': users[i % 2] as string }));
  requests += 2 * n;
  const rows: (string | number)[][] = [['end-user', 'requests', 'v1', 'v2', 'v3']];
  const per = new Map<string, Map<string, number>>();
  for (const u of users) {
    const mine = results.filter((_, i) => users[i % 2] === u);
    const by = countBy(mine, (r) => r.version);
    per.set(u, by);
    rows.push([u, mine.length, by.get('v1') ?? 0, by.get('v2') ?? 0, by.get('v3') ?? 0]);
  }
  console.log(`   ${2 * n} requests, jason and alice taking turns:`);
  console.log(table(rows, ['l', 'r', 'r', 'r', 'r']));
  const j = per.get('jason') as Map<string, number>;
  const a = per.get('alice') as Map<string, number>;
  summary.push(`2 header   jason → v2 ${j.get('v2') ?? 0}/${n}; alice → v1 ${a.get('v1') ?? 0}, v2 ${a.get('v2') ?? 0}`);
}

async function faults(mesh: Mesh, ratings: Upstream): Promise<void> {
  const n = 100;
  const wave = 20;
  console.log(heading(3, 'Fault injection on ratings: 100 ms delay for 50%, abort 503 for 20%', ruleFor(mesh, RATINGS)));
  const hitsBefore = ratings.hits;
  const results: Result[] = [];
  for (let i = 0; i < n; i += wave) results.push(...(await Promise.all(Array.from({ length: wave }, () => call(mesh, RATINGS)))));
  requests += n;
  const kinds = [
    ['delayed, then served', (r: Result) => r.flags === 'DI'],
    ['delayed, then aborted', (r: Result) => r.flags === 'DI,FI'],
    ['aborted at once', (r: Result) => r.flags === 'FI'],
    ['untouched', (r: Result) => r.flags === ''],
  ] as const;
  const rows: (string | number)[][] = [['outcome', 'requests', 'status', 'flags', 'median']];
  for (const [label, test] of kinds) {
    const mine = results.filter(test);
    rows.push([label, mine.length, [...new Set(mine.map((r) => r.status))].join(',') || '-', mine[0]?.flags || '-', mine.length ? ms(median(mine.map((r) => r.ms))) : '-']);
  }
  const other = results.filter((r) => !kinds.some(([, test]) => test(r)));
  if (other.length) rows.push(['other', other.length, [...new Set(other.map((r) => r.status))].join(','), [...new Set(other.map((r) => r.flags))].join(' '), '-']);
  const delayed = results.filter((r) => r.flags.split(',').includes('DI'));
  const aborted = results.filter((r) => r.flags.split(',').includes('FI'));
  const notDelayed = results.filter((r) => !r.flags.split(',').includes('DI'));
  console.log(`   ${n} requests to ${RATINGS}, ${wave} at a time:`);
  console.log(table(rows, ['l', 'r', 'r', 'l', 'r']));
  console.log(`   ratings received ${ratings.hits - hitsBefore} of ${n}: an aborted request never leaves the process.`);
  summary.push(
    `3 faults   delayed ${delayed.length}/${n} (DI), aborted ${aborted.length}/${n} (FI, 503); ` +
      `median ${ms(median(delayed.map((r) => r.ms)))} delayed vs ${ms(median(notDelayed.map((r) => r.ms)))} not`,
  );
}

async function retries(mesh: Mesh, v3: Upstream): Promise<void> {
  const n = 50;
  const variants = [
    ['v3-no-retries', 'http://reviews:9080/v3/no-retries/reviews/1'],
    ['v3-with-retries', 'http://reviews:9080/v3/reviews/1'],
  ] as const;
  console.log(heading(4, 'Retries: reviews v3 answers 503 to every other request', 'the same destination twice, without and with `retries: {attempts: 2, retryOn: 5xx}`:'));
  const rows: (string | number)[][] = [['rule', 'requests', '200', '503', 'v3 hits', 'flags', 'median']];
  const facts: string[] = [];
  let retriedHits = 0; // v3 hits under the retry rule (the last variant)
  for (const [rule, url] of variants) {
    console.log(`   ${ruleFor(mesh, url, {}, '     ')}`);
    const before = v3.hits;
    const results = await sequential(n, () => call(mesh, url));
    requests += n;
    const ok = results.filter((r) => r.status === 200).length;
    const failed = results.filter((r) => r.status === 503).length;
    const flags = [...new Set(results.map((r) => r.flags).filter((f) => f !== ''))].join(' ') || '-';
    const hits = v3.hits - before;
    retriedHits = hits;
    rows.push([rule, n, ok, failed, hits, flags, ms(median(results.map((r) => r.ms)))]);
    facts.push(`${rule === 'v3-no-retries' ? 'without' : 'with'}: ${n - ok}/${n} failed, v3 saw ${hits} hits`);
  }
  console.log(table(rows, ['l', 'r', 'r', 'r', 'r', 'l', 'r']));
  console.log('   Istio\'s default policy (no `retries` block) has not retried 503 since 1.24. The retry rule');
  console.log(`   hides the failures at the cost of extra attempts (${(retriedHits / n).toFixed(1)} per request) and their backoff.`);
  summary.push(`4 retries  ${facts.join('; ')}`);
}

function explainOne(mesh: Mesh): void {
  const req = { url: REVIEWS, method: 'GET', headers: { 'end-user': 'alice' } };
  console.log(`\n5. mesh.explain(): how the mesh would handle GET ${req.url} (end-user: alice), without sending it`);
  const e = mesh.explain(req);
  console.log(short(String(e)).replace(/^/gm, '   '));
  const shares = e.targets.map((t) => `${t.destination.replace(/^.* subset /, '')} ${t.sharePercent}%`).join(' / ');
  summary.push(`5 explain  ${e.outcome} by rule ${e.route?.split(':')[0]} after skipping ${e.skipped.length}: ${shares}`);
}

async function main(): Promise<void> {
  const started = performance.now();
  const v1 = await startUpstream('reviews', 'v1');
  const v2 = await startUpstream('reviews', 'v2');
  const v3 = await startUpstream('reviews', 'v3', (hit) => hit % 2 === 1);
  const ratings = await startUpstream('ratings', 'v1');
  const upstreams = [v1, v2, v3, ratings];
  let mesh: Mesh | undefined;
  let ejections = 0;
  try {
    // The static rules come from files; the ServiceEntries are generated (ports are dynamic).
    // The files are checked alone without the analyzers (their hosts live in the generated
    // entries), then createMesh validates and analyses the whole set.
    const files = await loadConfig(MESH_DIR, { analysis: 'off' });
    if (!files.ok) throw new Error(`invalid config in ${MESH_DIR}:\n${files.issues.all.map(String).join('\n')}`);
    const config = [
      serviceEntryFor('reviews', [v1, v2, v3]),
      serviceEntryFor('ratings', [ratings]),
      ...files.resources.map(({ apiVersion, kind, metadata, spec }) => ({ apiVersion, kind, metadata, spec })),
    ];
    mesh = await createMesh({ service: 'productpage', labels: { app: 'productpage', version: 'v1' }, config, random: seededRandom(SEED) });
    mesh.on('ejected', () => ejections++);

    console.log('meshlet demo: productpage calls reviews and ratings through an in-process mesh');
    console.log(`   config: ${files.resources.map((r) => r.ref).join(', ')} (examples/demo/mesh)`);
    console.log('           + generated ServiceEntries (host names below are short for <name>.default.svc.cluster.local):');
    console.log(table(upstreams.map((u) => [`${u.service} ${u.version}`, `127.0.0.1:${u.port}`, u === v3 ? '(503 on every other request)' : '']), ['l', 'l', 'l'], '             '));

    await canary(mesh);
    await headerRoute(mesh);
    await faults(mesh, ratings);
    await retries(mesh, v3);
    explainOne(mesh);
  } finally {
    await mesh?.close();
    await Promise.all(upstreams.map((u) => u.close()));
  }
  const hits = upstreams.map((u) => `${u.service} ${u.version} ${u.hits}`).join(', ');
  console.log(`\nSummary (seed ${SEED}, ${requests} requests in ${((performance.now() - started) / 1000).toFixed(1)} s, ${ejections} outlier ejections)`);
  for (const line of summary) console.log(`   ${line}`);
  console.log(`   upstream hits: ${hits}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
