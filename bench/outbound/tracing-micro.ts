/**
 * The tracer's own work per outbound call, without the network: a `MeshTracing` (with the
 * benchmarks' OpenTelemetry SDK registered) gets the messages one call makes — `call:start`,
 * `attempt:start`, `attempt:end`, `call:end`, published as src/core/exchange.ts and
 * src/outbound/upstream.ts publish them (each gated by `hasSubscribers`; the attempt's clock reads
 * too) — with no-op subscribers on `call:end` and `attempt:start` standing in for Istio's metrics.
 * One tracer at a time is subscribed (made for its slice, closed after), so each variant pays for
 * its own handlers only. Slices of N calls rotate through the variants, in reverse order every
 * other round; CPU per call is `process.cpuUsage` over the slice; each pair is the median over
 * rounds of the paired difference (with the 10th and 90th percentiles).
 *
 *   node bench/outbound/tracing-micro.ts (env MODES=none,off,0,1 ROUNDS=30 N=20000 BASE=<tree> TREES=base,new)
 *
 * Modes: `none` no tracer subscribed (the messages the stand-ins need only), `off` tracing
 * disabled (`tracing.enabled: false`: x-request-id only), a number: spans sampled at that
 * percentage, calls made outside any request; `<number>in`: the same, the calls made while
 * serving an unsampled request (its span context active). With BASE (a tree such as `git worktree add /tmp/base main` with node_modules
 * linked), each mode runs with both trees' tracer (`base:<mode>`, `new:<mode>`) in the same
 * process; swap the load order with TREES=new,base to see the order's own bias (tens of ns).
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { context, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { startBenchTelemetry } from '../lib/otel.ts';

const here = resolve(import.meta.dirname, '../..');
const roots: Record<string, string> = { new: here, ...(process.env.BASE === undefined ? {} : { base: process.env.BASE }) };
const trees = (process.env.TREES ?? (process.env.BASE === undefined ? 'new' : 'base,new')).split(',');
const modes = (process.env.MODES ?? 'none,off,0,1').split(',');
const ROUNDS = Number(process.env.ROUNDS ?? 30);
const N = Number(process.env.N ?? 20_000);

const telemetry = await startBenchTelemetry();
const cs = channel('meshlet:call:start');
const ce = channel('meshlet:call:end');
const as = channel('meshlet:attempt:start');
const ae = channel('meshlet:attempt:end');
ce.subscribe(() => {});
as.subscribe(() => {});
const workload = { service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, serviceAccount: 'default' };
const authority = 'upstream.default.svc.cluster.local:80';
const cluster = 'outbound|80|v1|upstream.default.svc.cluster.local';

/** One call's messages, as the kernel publishes them. */
function calls(n: number, normalizeHeaders: (h: unknown) => Record<string, unknown>): void {
  for (let i = 0; i < n; i++) {
    const headers = normalizeHeaders(undefined);
    const call = { id: i, responseTap: undefined, tapState: undefined };
    if (cs.hasSubscribers) cs.publish({ workload, call, protocol: 'http', method: 'GET', authority, path: '/x', headers });
    let sentAt = -1;
    if (as.hasSubscribers || ae.hasSubscribers) {
      sentAt = performance.now();
      if (as.hasSubscribers) as.publish({ workload, call, attempt: 1, cluster, endpoint: '127.0.0.1:80' });
    }
    if (sentAt !== -1 && ae.hasSubscribers) ae.publish({ workload, call, attempt: 1, cluster, endpoint: '127.0.0.1:80', status: 200, grpcStatus: -1, failure: undefined, durationMs: performance.now() - sentAt });
    if (ce.hasSubscribers) {
      ce.publish({ workload, call, protocol: 'http', method: 'GET', authority, path: '/x', route: 'upstream.default', cluster, destinationService: 'upstream.default.svc.cluster.local', endpoint: '127.0.0.1:80', destination: undefined, status: 200, grpcStatus: -1, flags: '', attempts: 1, requestBytes: 0, responseBytes: 100, durationMs: 1, error: undefined });
    }
  }
}

const variants: { name: string; run: (n: number) => number }[] = [];
for (const t of trees) {
  const at = (p: string) => pathToFileURL(resolve(roots[t] as string, p)).href;
  const { MeshTracing } = (await import(at('src/telemetry/tracing/tracer.ts'))) as typeof import('../../src/telemetry/tracing/tracer.ts');
  const { normalizeHeaders } = (await import(at('src/core/headers.ts'))) as { normalizeHeaders: (h: unknown) => Record<string, unknown> };
  for (const m of modes) {
    if (m === 'none' && t !== trees[0]) continue;
    const options = m === 'off' ? { enabled: false } : { samplingPercentage: Number.parseFloat(m) };
    // `<n>in`: the calls are made while serving a request (an unsampled span context active, as inbound:start makes it).
    const inside = m.endsWith('in') ? trace.setSpanContext(ROOT_CONTEXT, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 0 }) : undefined;
    const run = (n: number) => {
      const tracer = m === 'none' ? undefined : new MeshTracing({ workload, random: { next: Math.random }, rootNamespace: 'istio-system', sourceIp: '127.0.0.1', locality: '', trustDomain: 'cluster.local', options, warn: () => {} }, []);
      const c0 = process.cpuUsage();
      if (inside === undefined) calls(n, normalizeHeaders);
      else context.with(inside, () => calls(n, normalizeHeaders));
      const c = process.cpuUsage(c0);
      tracer?.close();
      return ((c.user + c.system) * 1000) / n;
    };
    variants.push({ name: m === 'none' ? 'none' : `${t}:${m}`, run });
  }
}

for (const v of variants) for (let k = 0; k < 5; k++) v.run(N);
const ns: Record<string, number[]> = Object.fromEntries(variants.map((v) => [v.name, []]));
for (let r = 0; r < ROUNDS; r++) for (const v of r % 2 === 1 ? [...variants].reverse() : variants) ns[v.name]?.push(v.run(N));
await telemetry.shutdown();

const sorted = (x: readonly number[]) => [...x].sort((a, b) => a - b);
const median = (x: readonly number[]) => {
  const s = sorted(x);
  return ((s[(s.length - 1) >> 1] as number) + (s[s.length >> 1] as number)) / 2;
};
const pct = (x: readonly number[], p: number) => sorted(x)[Math.floor(p * (x.length - 1))] as number;
console.log(`tracer CPU ns per call, median of ${ROUNDS} rounds of ${N} calls`);
for (const v of variants) console.log(`${v.name.padEnd(10)} ${median(ns[v.name] as number[]).toFixed(0).padStart(7)}`);
console.log('pair (paired per round)   median   [p10 .. p90]');
const pairs: [string, string][] = [];
for (const m of modes) {
  if (m === 'none') continue;
  if (ns[`base:${m}`] !== undefined) pairs.push([`new:${m}`, `base:${m}`]);
  if (ns.none !== undefined) pairs.push([`${trees[0]}:${m}`, 'none']);
}
for (const [a, b] of pairs) {
  const d = (ns[a] as number[]).map((v, i) => v - (ns[b] as number[])[i]!);
  console.log(`${`${a} - ${b}`.padEnd(25)} ${median(d).toFixed(0).padStart(6)}   [${pct(d, 0.1).toFixed(0)} .. ${pct(d, 0.9).toFixed(0)}]`);
}
process.exit(0);
