/**
 * What a control-plane replica on etcd does after every change to the stored config: check the
 * whole key → value set again (src/control-plane-server/etcd/config-check.ts). At 1k / 10k / 20k
 * resources (test/helpers/config-dir.ts's largeConfig: a ServiceEntry, a DestinationRule and a
 * VirtualService per service), for the first check of a replica and then for one-value changes, two ways in the same
 * run, taken in turns:
 *
 *   cached  the store's way: one StoredSetCache across the checks (unchanged values reuse their
 *           parsed document, validation and registry results)
 *   fresh   a new cache per check (every value parsed and validated again: what each check cost
 *           before the cache, in CPU; the old code also ran it in one block)
 *
 * Figures per check: CPU ms (process), and the longest the event loop was held (a setImmediate
 * ticker's longest gap), medians over the changes.
 *
 *   node_modules/.bin/node bench/control-plane/etcd-check.ts [--sizes 1000,10000,20000] [--changes 7] [--write]
 *
 * No etcd is needed: the check is the replica's whole work on a change (the watch only feeds it).
 */
import { parseArgs } from 'node:util';
import { checkStoredSet, StoredSetCache } from '../../src/control-plane-server/etcd/config-check.ts';
import { largeConfig } from '../../test/helpers/config-dir.ts';
import { median, writeSection } from '../lib/results.ts';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,10000,20000' },
    changes: { type: 'string', default: '7' },
    write: { type: 'boolean', default: false },
  },
});
const ROOT = '/meshlet/config/';
const OPTIONS = { root: ROOT, analysis: 'advisory' as const, defaultNamespace: 'default' };

type Stored = { kind: string; metadata: { name: string; namespace: string }; spec: { http?: { route: { weight?: number }[] }[] } };

/** Stores resources under their keys, as the store does. */
function put(set: Map<string, string>, resources: readonly object[]): void {
  for (const r of resources as Stored[]) set.set(`${ROOT}${r.kind}/${r.metadata.namespace}/${r.metadata.name}`, JSON.stringify(r));
}

/** Service `i`'s VirtualService with its split changed to `split`/`100 - split`: a one-value change. */
function changeSplit(set: Map<string, string>, i: number, split: number): void {
  const key = `${ROOT}VirtualService/bench/svc-${i}`;
  const vs = JSON.parse(set.get(key) as string) as Stored;
  const route = vs.spec.http?.[1]?.route ?? [];
  if (route[0] !== undefined) route[0].weight = split;
  if (route[1] !== undefined) route[1].weight = 100 - split;
  set.set(key, JSON.stringify(vs));
}

/** One check: CPU ms and the event loop's longest gap while it ran. */
async function measure(set: ReadonlyMap<string, string>, cache: StoredSetCache): Promise<{ cpu: number; block: number }> {
  let last = performance.now();
  let block = 0;
  let on = true;
  const tick = () => {
    const now = performance.now();
    block = Math.max(block, now - last);
    last = now;
    if (on) setImmediate(tick);
  };
  setImmediate(tick);
  const c0 = process.cpuUsage();
  const checked = await checkStoredSet(set, OPTIONS, cache);
  const c = process.cpuUsage(c0);
  on = false;
  block = Math.max(block, performance.now() - last);
  if (!checked.ok) throw new Error('the bench set did not check');
  return { cpu: (c.user + c.system) / 1000, block };
}

const f0 = (n: number) => n.toFixed(0);
const rows: string[] = [];
for (const size of args.sizes.split(',').map(Number)) {
  const services = Math.ceil(size / 3);
  const set = new Map<string, string>();
  put(set, largeConfig(services, 'bench'));
  const cache = new StoredSetCache();
  const first = await measure(set, cache);
  const cached: { cpu: number; block: number }[] = [];
  const fresh: { cpu: number; block: number }[] = [];
  const n = Number(args.changes);
  for (let k = 1; k <= n; k++) {
    changeSplit(set, (k * 97) % services, 50 + k);
    // Taken in turns (cached first on odd changes), both on the same set.
    const order = k % 2 === 1 ? ['cached', 'fresh'] : ['fresh', 'cached'];
    for (const way of order) {
      if (way === 'cached') cached.push(await measure(set, cache));
      else fresh.push(await measure(set, new StoredSetCache()));
    }
  }
  const med = (xs: { cpu: number; block: number }[], f: 'cpu' | 'block') => median(xs.map((x) => x[f]));
  const row = `| ${size} | ${f0(first.cpu)} / ${f0(first.block)} | ${f0(med(cached, 'cpu'))} / ${f0(med(cached, 'block'))} | ${f0(med(fresh, 'cpu'))} / ${f0(med(fresh, 'block'))} |`;
  console.log(row);
  rows.push(row);
}
const body = [
  `Median of ${args.changes} one-value changes per size, the two ways in turns in one process. CPU ms / longest event-loop block ms per check.`,
  '',
  '| resources | first check of a replica | one-value change, cached (the store) | one-value change, fresh cache each time |',
  '|---:|---:|---:|---:|',
  ...rows,
  '',
  "Before the cache and the slices, every replica ran the fresh column's CPU in one block per change.",
].join('\n');
console.log(`\n${body}`);
if (args.write) writeSection('etcd-check', 'Control plane on etcd: the check of the stored set after a change', 'node_modules/.bin/node bench/control-plane/etcd-check.ts --write', body);
