/**
 * What a circuit breaker costs per call: opossum's `fire()` (the named dependency) against
 * meshlet's per-endpoint outlier detection (`OutlierDetector.record`, the state machine the
 * data plane runs on every response). Interleaved rounds, medians.
 *
 * Run: node --expose-gc bench/policies/breaker-cost.ts
 */
import CircuitBreaker from 'opossum';
import { systemClock } from '../../src/core/clock.ts';
import { OutlierDetector, resolveOutlierSettings } from '../../src/policies/outlier.ts';
import { median, writeSection } from '../lib/results.ts';

const N = 200_000;
const ROUNDS = 7;

async function baseline(): Promise<number> {
  const fn = async () => 1;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / N;
}

async function opossum(timeout: number | false): Promise<number> {
  const br = new CircuitBreaker(async () => 1, { timeout, errorThresholdPercentage: 50, resetTimeout: 30_000 });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await br.fire();
  const ns = Number(process.hrtime.bigint() - t0) / N;
  br.shutdown();
  return ns;
}

async function outlier(): Promise<number> {
  const host = { key: '10.0.0.1:80', ejected: false, ejectedUntil: 0, ejectReason: '', warmingSince: Number.NEGATIVE_INFINITY };
  const od = new OutlierDetector(resolveOutlierSettings({ consecutive5xxErrors: 5 }), systemClock, () => undefined);
  od.setHosts([host]);
  const fn = async () => 200;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) od.record(host, await fn(), undefined);
  const ns = Number(process.hrtime.bigint() - t0) / N;
  od.close();
  return ns;
}

const rows: Record<string, number[]> = { base: [], opossumDefault: [], opossumNoTimeout: [], outlier: [] };
for (let r = 0; r < ROUNDS; r++) {
  rows.base?.push(await baseline());
  rows.opossumDefault?.push(await opossum(10_000));
  rows.opossumNoTimeout?.push(await opossum(false));
  rows.outlier?.push(await outlier());
}
const b = median(rows.base ?? []);
const line = (name: string, xs: number[]) => `| ${name} | ${median(xs).toFixed(0)} | +${(median(xs) - b).toFixed(0)} |`;
const table = [
  '| per call | ns (median of 7) | added over `await fn()` |',
  '|---|---|---|',
  line('`await fn()`', rows.base ?? []),
  line('opossum 10 `fire()`, default 10 s timeout (a timer per call)', rows.opossumDefault ?? []),
  line('opossum 10 `fire()`, `timeout: false`', rows.opossumNoTimeout ?? []),
  line('meshlet `OutlierDetector.record` (per-endpoint consecutive-error state machine)', rows.outlier ?? []),
].join('\n');
console.log(table);
writeSection(
  'breaker-cost',
  'Circuit breaker cost per call: opossum vs meshlet outlier detection',
  'node_modules/.bin/node --expose-gc bench/policies/breaker-cost.ts',
  `${table}\n\nopossum wraps a promise-returning function and, by default, arms a timer per call; meshlet's\ndata plane does not await a function per request (it observes the response in the handler), and\nits per-endpoint state machine is what runs per response. opossum's model (one breaker around an\nasync function, fallback, half-open trial) is used where it fits: calls to the control plane (#4).`,
);
