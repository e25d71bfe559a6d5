/**
 * Envoy's histograms for the admin endpoint's `/stats` (`upstream_rq_time`,
 * `downstream_rq_time`): values binned as Envoy bins them (libcircllhist: two significant
 * digits, `hist_insert_intscale(value, 0)`), flushed every 5 s as Envoy's stats flush
 * (`stats_flush_interval`, Istio leaves it at 5 s) into an interval and a cumulative histogram,
 * and read as Envoy reads them: quantiles by `hist_approx_quantile`, Prometheus buckets by
 * `hist_approx_count_below`, the sum by `hist_approx_sum` (bin midpoints).
 *
 * Envoy: source/common/stats/histogram_impl.cc (supportedQuantiles, defaultBuckets, refresh),
 * source/common/stats/thread_local_store.cc (ParentHistogramImpl::merge, quantileSummary),
 * libcircllhist's circllhist.c (int_scale_to_hist_bucket, hist_approx_quantile,
 * hist_approx_count_below, hist_approx_sum).
 *
 * @module
 */

/** Envoy's quantiles (`HistogramStatisticsImpl::supportedQuantiles`). */
export const SUPPORTED_QUANTILES: readonly number[] = Object.freeze([0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1]);

/** Envoy's default buckets (`HistogramSettingsImpl::defaultBuckets`), for `/stats/prometheus`. */
export const DEFAULT_BUCKETS: readonly number[] = Object.freeze([0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000]);

/** Envoy's default `stats_flush_interval`: histograms are merged (and read) at this pace. */
export const FLUSH_INTERVAL_MS = 5000;

/** Bins by key (`exp * 100 + val`, the zero bin -1: ascending keys are ascending values), each a count. */
type Bins = Map<number, number>;

/** libcircllhist's bin (`int_scale_to_hist_bucket(value, 0)`) of `value` truncated to an integer, as Envoy records it: its key. */
function binOf(value: number): number {
  // Envoy records whole milliseconds (duration_cast truncates): under 1 ms is 0, the zero bin.
  let v = Math.floor(value);
  if (!(v > 0)) return -1;
  let exp = 1;
  if (v < 10) {
    v *= 10;
    exp -= 1;
  }
  while (v >= 100) {
    v = Math.floor(v / 10);
    exp++;
  }
  return exp * 100 + v;
}

/** A bin's left edge and width (`hist_bucket_to_double`, `hist_bucket_to_double_bin_width`). */
function edges(key: number): { left: number; width: number } {
  if (key < 0) return { left: 0, width: 0 };
  const exp = Math.floor(key / 100);
  const val = key % 100;
  const p = 10 ** exp;
  return { left: (val / 10) * p, width: p / 10 };
}

function sortedKeys(bins: Bins): number[] {
  return [...bins.keys()].sort((a, b) => a - b);
}

function addInto(target: Bins, source: Bins): void {
  for (const [k, n] of source) target.set(k, (target.get(k) ?? 0) + n);
}

/** What a histogram reads as, from one of its two views (interval or cumulative). */
export interface HistogramStatistics {
  /** At {@link SUPPORTED_QUANTILES}; NaN when nothing was recorded. */
  readonly quantiles: readonly number[];
  /** Samples at or below each of {@link DEFAULT_BUCKETS}' bounds (bins wholly below it). */
  readonly buckets: readonly number[];
  readonly count: number;
  /** The sum of the samples' bin midpoints (Envoy's `sampleSum`). */
  readonly sum: number;
  /** libcircllhist's bins with samples, ascending: left edge, width, count (Envoy's `detailed…Buckets`). */
  readonly bins: readonly HistogramBin[];
}

/** One bin of a histogram: `[lower, lower + width)` held `count` samples (the zero bin: 0, 0). */
export interface HistogramBin {
  readonly lower: number;
  readonly width: number;
  readonly count: number;
}

/** `hist_approx_quantile`, `hist_approx_count_below`, `hist_approx_sum` over `bins`. */
export function statistics(bins: Bins): HistogramStatistics {
  const keys = sortedKeys(bins);
  let total = 0;
  let sum = 0;
  const used: HistogramBin[] = [];
  for (const k of keys) {
    const n = bins.get(k) ?? 0;
    total += n;
    const { left, width } = edges(k);
    sum += (k < 0 ? 0 : left + width / 2) * n;
    if (n > 0) used.push({ lower: left, width, count: n });
  }
  const buckets = DEFAULT_BUCKETS.map((bound) => {
    let below = 0;
    for (const k of keys) {
      const { left, width } = edges(k);
      if (left + width <= bound) below += bins.get(k) ?? 0;
      else break;
    }
    return below;
  });
  return { quantiles: quantiles(keys, bins, total), buckets, count: total, sum, bins: used };
}

function quantiles(keys: readonly number[], bins: Bins, total: number): number[] {
  if (total === 0) return SUPPORTED_QUANTILES.map(() => Number.NaN);
  let i = 0;
  let width = 0;
  let left = 0;
  let lower = 0;
  let upper = 0;
  const track = (idx: number): void => {
    const k = keys[idx] as number;
    ({ left, width } = edges(k));
    lower = upper;
    upper = lower + (bins.get(k) ?? 0);
  };
  // The first bin with samples.
  for (i = 0; i < keys.length; i++) {
    if ((bins.get(keys[i] as number) ?? 0) === 0) continue;
    track(i);
    break;
  }
  return SUPPORTED_QUANTILES.map((q) => {
    const want = total * q;
    while (i < keys.length - 1 && upper < want) track(++i);
    if (lower === want) return left;
    if (upper === want) return left + width;
    if (width === 0) return left;
    return left + ((want - lower) / (upper - lower)) * width;
  });
}

/** A value of Envoy's `{}` format of a double in the text output: `nan` for NaN. */
export function formatQuantile(v: number): string {
  return Number.isNaN(v) ? 'nan' : String(v);
}

/** C's `%.32g` (Envoy's Prometheus `_sum` and `le`): 32 significant digits, trailing zeros dropped. */
export function format32g(v: number): string {
  return formatG(v, 32);
}

/** C's `%.<precision>g`: exponent form below 1e-4 or at 10^precision and over (after rounding), trailing zeros dropped. */
export function formatG(v: number, precision = 6): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  if (v === 0) return '0';
  const strip = (d: string): string => (d.includes('.') ? d.replace(/0+$/, '').replace(/\.$/, '') : d);
  const [m, e] = v.toExponential(precision - 1).split('e') as [string, string];
  const exp = Number(e);
  if (exp < -4 || exp >= precision) return `${strip(m)}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return strip(v.toPrecision(precision));
}

/**
 * One histogram: values recorded go to the current window; every {@link FLUSH_INTERVAL_MS} from
 * `start` (on the mesh's clock) the window is merged — it becomes the interval histogram and is
 * added to the cumulative one — as Envoy's flush does. Reads show the last merge, as Envoy's
 * admin does (`flush_on_admin` is off): a value shows once the next flush passed.
 */
export class FlushedHistogram {
  readonly #start: number;
  #current: Bins = new Map();
  #interval: Bins = new Map();
  readonly #cumulative: Bins = new Map();
  /** Flushes done so far. */
  #flushes = 0;
  #recorded = false;
  #merged = false;

  constructor(start: number) {
    this.#start = start;
  }

  /** Records `value` (milliseconds, truncated to an integer as Envoy's `recordValue(uint64_t)`) at `now`. */
  record(value: number, now: number): void {
    this.#roll(now);
    const k = binOf(value);
    this.#current.set(k, (this.#current.get(k) ?? 0) + 1);
    this.#recorded = true;
  }

  #roll(now: number): void {
    const due = Math.floor((now - this.#start) / FLUSH_INTERVAL_MS);
    if (due <= this.#flushes) return;
    // ParentHistogramImpl::merge: only once something was recorded; the interval is the last window alone.
    if (this.#merged || this.#recorded) {
      const window = due === this.#flushes + 1 ? this.#current : new Map<number, number>();
      addInto(this.#cumulative, this.#current);
      this.#interval = window;
      this.#merged = true;
    }
    this.#current = new Map();
    this.#flushes = due;
  }

  /** Envoy's `used()`: merged at least once after a value was recorded. */
  used(now: number): boolean {
    this.#roll(now);
    return this.#merged;
  }

  /** The interval and cumulative statistics as of the last flush before `now`. */
  read(now: number): { readonly interval: HistogramStatistics; readonly cumulative: HistogramStatistics; readonly used: boolean } {
    this.#roll(now);
    return { interval: statistics(this.#interval), cumulative: statistics(this.#cumulative), used: this.#merged };
  }
}

/** Envoy's text line value (`ParentHistogramImpl::quantileSummary`): `P0(interval,cumulative) P25(…) …`, or `No recorded values`. */
export function quantileSummary(h: { readonly interval: HistogramStatistics; readonly cumulative: HistogramStatistics; readonly used: boolean }): string {
  if (!h.used) return 'No recorded values';
  return SUPPORTED_QUANTILES.map((q, i) => `P${100 * q}(${formatQuantile(h.interval.quantiles[i] as number)},${formatQuantile(h.cumulative.quantiles[i] as number)})`).join(' ');
}

type Read = { readonly interval: HistogramStatistics; readonly cumulative: HistogramStatistics; readonly used: boolean };

/** `ParentHistogramImpl::bucketSummary` (`?histogram_buckets=cumulative`): `B0.5(interval,cumulative) B1(…) …` over Envoy's default buckets (`{:g}`). */
export function bucketSummary(h: Read): string {
  return h.used ? bucketLine(h.interval.buckets, h.cumulative.buckets) : 'No recorded values';
}

/** `computeDisjointBuckets`: each default bucket's own count (its cumulative count less the previous bucket's). */
export function disjoint(buckets: readonly number[]): number[] {
  return buckets.map((n, i) => n - (i === 0 ? 0 : (buckets[i - 1] as number)));
}

/** `StatsTextRender::addDisjointBuckets` (`?histogram_buckets=disjoint`): the same line of each bucket's own count. */
export function disjointSummary(h: Read): string {
  return h.used ? bucketLine(disjoint(h.interval.buckets), disjoint(h.cumulative.buckets)) : 'No recorded values';
}

function bucketLine(interval: readonly number[], cumulative: readonly number[]): string {
  return DEFAULT_BUCKETS.map((b, i) => `B${formatG(b)}(${interval[i] ?? 0},${cumulative[i] ?? 0})`).join(' ');
}

/** `StatsTextRender` detailed (`?histogram_buckets=detailed`): the bins (`lower,width:count`) of the totals and the interval, then the quantile summary, on indented lines. */
export function detailedText(h: Read): string {
  if (!h.used) return ' No recorded values';
  const list = (bins: readonly HistogramBin[]): string => bins.map((b) => `${formatG(b.lower)},${formatG(b.width)}:${b.count}`).join(', ');
  return `\n  totals=${list(h.cumulative.bins)}\n  intervals=${list(h.interval.bins)}\n  summary=${quantileSummary(h)}`;
}
