/**
 * Shared helpers for the balancer tests. Not a test file: the runner loads only `*.test.ts`; the
 * build (tsconfig.build.json) and the package (package.json `files`) leave it out; and coverage
 * excludes it explicitly, like the rest of the test code (a `--test-coverage-exclude` for
 * `fixtures.ts` files in `npm run test:unit`).
 *
 * @module
 */
import assert from 'node:assert/strict';
import type { Endpoint } from '../../config/registry.ts';
import { ManualClock, seededRandom } from '../../core/clock.ts';
import { formatHostPort } from '../../core/host-port.ts';
import { HostSet, HostState } from './host.ts';
import type { Picker, PickerContext, PickRequest } from './picker.ts';

/** Options for {@link ep}. */
export interface EpOptions {
  readonly port?: number;
  readonly weight?: number;
  readonly locality?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/** An endpoint at `address` (port 80 unless given). */
export function ep(address: string, o: EpOptions = {}): Endpoint {
  const port = o.port ?? 80;
  return {
    address,
    port,
    labels: o.labels ?? {},
    locality: o.locality ?? '',
    weight: o.weight ?? 1,
    origin: 'test',
    serviceAccount: 'default',
    namespace: 'default',
    workloadName: '',
    key: formatHostPort(address, port),
  };
}

/** A HostSet of endpoints. */
export function hostSet(endpoints: readonly Endpoint[]): HostSet {
  return new HostSet(endpoints.map((e) => new HostState(e)));
}

/** A HostSet of `n` weight-1 hosts 10.0.0.1… */
export function uniformSet(n: number, o: EpOptions = {}): HostSet {
  return hostSet(Array.from({ length: n }, (_, i) => ep(`10.0.0.${i + 1}`, o)));
}

/** A picker context with a seeded Random and a ManualClock at 0. */
export function context(seed = 1, o: Partial<Omit<PickerContext, 'random' | 'clock'>> = {}): PickerContext & { clock: ManualClock } {
  return {
    random: seededRandom(seed),
    clock: new ManualClock(0),
    locality: o.locality ?? '',
    labels: o.labels ?? {},
    outlierDetection: o.outlierDetection ?? false,
    panicThreshold: o.panicThreshold ?? 0,
  };
}

/** A request without a hash key and nothing to avoid. */
export const NO_KEY: PickRequest = Object.freeze({ hash: -1, avoid: undefined });

/** Picks `n` times and counts picks per host key (`undefined` counted as "none"). */
export function tally(picker: Picker, n: number, req: PickRequest = NO_KEY): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const k = picker.pick(req)?.key ?? 'none';
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

/**
 * Asserts that `count` of `total` trials is within 5 standard deviations of a binomial
 * share `p` (a seeded run either passes or fails every time; 5σ keeps the bound honest
 * rather than loose).
 */
export function assertShare(count: number, total: number, p: number, what: string): void {
  const sd = Math.sqrt(total * p * (1 - p));
  const lo = total * p - 5 * sd - 1;
  const hi = total * p + 5 * sd + 1;
  assert.ok(count >= lo && count <= hi, `${what}: ${count}/${total} = ${(count / total).toFixed(4)}, expected ${p.toFixed(4)} (±5σ: ${Math.ceil(lo)}..${Math.floor(hi)})`);
}

/** The host key `10.0.0.i:80`. */
export function key(i: number, port = 80): string {
  return `10.0.0.${i}:${port}`;
}
