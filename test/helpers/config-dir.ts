/**
 * How config directories are really written, for watcher tests: a Kubernetes ConfigMap volume
 * updated as kubelet does it, a writer that pauses in the middle of a file, a FIFO; and a
 * config (reviews v1/v2) whose half-written VirtualService answers 404, with a probe that counts
 * wrong answers.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Mesh } from '../../src/index.ts';
import { call } from './upstreams.ts';

/**
 * A ConfigMap volume, written as kubelet's AtomicWriter writes it (kubernetes
 * pkg/volume/util/atomic_writer.go, `Write`): the data lives in a timestamped directory
 * `..<time>`, `..data` is a link to it, and each key is a link `<key> -> ..data/<key>`. An update
 * (5) makes a new timestamped directory, (6) writes the payload into it, (7) makes links for new
 * keys (they point nowhere until the swap), (8) makes a link `..data_tmp` to the new directory,
 * (9) renames it over `..data` (the atomic switch), (10) removes links of keys that are gone and
 * (11) the old timestamped directory.
 */
export function configMapVolume(dir: string): { update(files: Record<string, string>): void } {
  mkdirSync(dir, { recursive: true });
  let n = 0;
  let current: string | undefined;
  let keys = new Set<string>();
  return {
    update(files) {
      const ts = `..2026_12_02_10_00_00.${String(++n).padStart(9, '0')}`;
      mkdirSync(join(dir, ts), { mode: 0o755 });
      for (const [k, text] of Object.entries(files)) writeFileSync(join(dir, ts, k), text);
      for (const k of Object.keys(files)) if (!keys.has(k)) symlinkSync(join('..data', k), join(dir, k));
      symlinkSync(ts, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
      for (const k of keys) if (!(k in files)) rmSync(join(dir, k));
      if (current !== undefined) rmSync(join(dir, current), { recursive: true });
      current = ts;
      keys = new Set(Object.keys(files));
    },
  };
}

/**
 * Writes `file` in place (truncated, then written) in `chunks`, pausing `pauseMs` between them
 * with the file open — a slow writer: `cat > file`, a copy over a slow link, a template tool.
 */
export async function writeSlowly(file: string, chunks: readonly string[], pauseMs: number): Promise<void> {
  const fh = await open(file, 'w');
  try {
    for (let i = 0; i < chunks.length; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, pauseMs));
      await fh.write(chunks[i] as string);
    }
  } finally {
    await fh.close();
  }
}

/** Makes a FIFO (named pipe) at `path` with mkfifo(1). */
export function mkfifo(path: string): void {
  const r = spawnSync('mkfifo', [path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mkfifo ${path} failed: ${r.stderr || r.error}`);
}

/** A ServiceEntry `reviews` with endpoints v1 and v2 on 127.0.0.1 (the given ports) and a DestinationRule with subsets v1, v2. */
export function reviewsServices(v1: number, v2: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: ${v1}}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: ${v2}}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
`;
}

/** The VirtualService `reviews`, in two parts: a first rule for /admin only, then the catch-all to `subset`. Cut after the first, it is valid YAML and valid config that answers 404 NR for every other path. */
export function reviewsVsParts(subset: string): [string, string] {
  return [
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /admin}}]
    route: [{destination: {host: reviews, subset: ${subset}}}]
`,
    `  - route: [{destination: {host: reviews, subset: ${subset}}}]
`,
  ];
}

/** The whole VirtualService of {@link reviewsVsParts}. */
export const reviewsVs = (subset: string): string => reviewsVsParts(subset).join('');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `fn()` holds (every 5 ms, at most `ms`). */
export async function until(fn: () => Promise<boolean> | boolean, what: string, ms = 5000): Promise<void> {
  const t0 = performance.now();
  while (!(await fn())) {
    if (performance.now() - t0 > ms) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(5);
  }
}

/** Sends requests through `mesh` until stopped; every answer that is not 200 from v1 or v2 is kept. */
export function probe(mesh: Mesh): { stop(): Promise<{ requests: number; wrong: string[] }> } {
  let stopped = false;
  let requests = 0;
  const wrong: string[] = [];
  const loop = (async () => {
    while (!stopped) {
      const r = await call(mesh, 'http://reviews:9080/reviews/1');
      requests++;
      if (r.status !== 200 || (r.upstream !== 'v1' && r.upstream !== 'v2')) wrong.push(`${r.status} ${r.flags}`);
      await sleep(2);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { requests, wrong };
    },
  };
}

/**
 * A large config: `services` services of three resources each (a ServiceEntry with two
 * endpoints, a DestinationRule with two subsets, a VirtualService with a header match and a
 * split), as resource objects.
 */
export function largeConfig(services: number, namespace = 'default'): object[] {
  const out: object[] = [];
  for (let i = 0; i < services; i++) {
    const name = `svc-${i}`;
    const metadata = { name, namespace };
    out.push(
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'ServiceEntry',
        metadata,
        spec: {
          hosts: [`${name}.${namespace}.svc.cluster.local`],
          location: 'MESH_INTERNAL',
          resolution: 'STATIC',
          ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
          endpoints: [
            { address: `10.${(i >> 8) & 255}.${i & 255}.1`, labels: { v: '1' } },
            { address: `10.${(i >> 8) & 255}.${i & 255}.2`, labels: { v: '2' } },
          ],
        },
      },
      { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata, spec: { host: name, subsets: [{ name: 'v1', labels: { v: '1' } }, { name: 'v2', labels: { v: '2' } }] } },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata,
        spec: {
          hosts: [name],
          http: [
            { match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: name, subset: 'v2' } }] },
            { route: [{ destination: { host: name, subset: 'v1' }, weight: 90 }, { destination: { host: name, subset: 'v2' }, weight: 10 }] },
          ],
        },
      },
    );
  }
  return out;
}

/** Counts turns of the event loop (setImmediate callbacks) until stopped. */
export function loopTurns(): { stop(): number } {
  let turns = 0;
  let running = true;
  const tick = () => {
    if (!running) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  return {
    stop() {
      running = false;
      return turns;
    },
  };
}

/** This thread's CPU time so far, in ms (`process.threadCpuUsage()`: time the code ran, not time it waited or was not scheduled). */
export function threadCpuMs(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Calls `fn` one call after the other (`pauseMs` apart, so the calls themselves cost little)
 * until stopped, noting this thread's CPU time at each answer; `stop()` says, for the stretch
 * from `start` on, the most CPU time this thread spent between two answers and the CPU time it
 * spent in all. Work done in one piece shows as one gap holding most of the total; work done in
 * slices, as gaps of a slice each. CPU time, not wall time: a loaded machine that deschedules
 * the process changes neither.
 */
export function cpuGaps(fn: () => Promise<unknown>, pauseMs = 5): { start(): void; stop(): Promise<{ longest: number; total: number; answers: number }> } {
  let done = false;
  let from = Number.NaN;
  const marks: number[] = [];
  const loop = (async () => {
    while (!done) {
      await fn();
      if (!Number.isNaN(from)) marks.push(threadCpuMs());
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  })();
  return {
    start() {
      from = threadCpuMs();
    },
    async stop() {
      const to = threadCpuMs();
      done = true;
      await loop;
      const points = [from, ...marks.filter((m) => m < to), to];
      const longest = Math.max(...points.slice(1).map((p, i) => p - (points[i] as number)));
      return { longest, total: to - from, answers: points.length - 2 };
    },
  };
}
