/**
 * A small Prometheus registry for the control plane's `/metrics`: counters, gauges (set, or read
 * at scrape time) and histograms, written in the text exposition format 0.0.4 — `# HELP` and
 * `# TYPE` once per family, label values escaped (`\\`, `"`, newline), help text escaped
 * (`\\`, newline), histograms as cumulative `_bucket{le=…}` series ending in `+Inf`, then `_sum`
 * and `_count`. No dependency: the control plane does not carry an OpenTelemetry SDK.
 *
 * Label sets are bounded by the callers (event kinds, resource kinds, ACK/NACK), never by
 * workloads or addresses.
 *
 * @module
 */

/** The content type of the text format. */
export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Label values by label name. */
export type Labels = Readonly<Record<string, string>>;

/** A label value in the text format: backslash, double quote and line feed escaped. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Help text in the text format: backslash and line feed escaped. */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A sample value: integers as they are, `+Inf`, `-Inf`, `NaN`. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

function labelText(names: readonly string[], values: readonly string[], extra?: string): string {
  const parts = names.map((n, i) => `${n}="${escapeLabelValue(values[i] ?? '')}"`);
  if (extra !== undefined) parts.push(extra);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** One family of series. */
abstract class Family {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: 'counter' | 'gauge' | 'histogram';

  constructor(name: string, help: string, labelNames: readonly string[]) {
    if (!METRIC_NAME.test(name)) throw new Error(`metric name ${JSON.stringify(name)} is not a Prometheus name`);
    for (const l of labelNames) if (!LABEL_NAME.test(l) || l.startsWith('__') || l === 'le') throw new Error(`${name}: label name ${JSON.stringify(l)} is not allowed`);
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  /** The label values of `labels` in `labelNames` order; every name must be given, no other. */
  protected values(labels: Labels): string[] {
    const keys = Object.keys(labels);
    if (keys.length !== this.labelNames.length || !keys.every((k) => this.labelNames.includes(k))) {
      throw new Error(`${this.name}: labels ${JSON.stringify(keys)} are not ${JSON.stringify(this.labelNames)}`);
    }
    return this.labelNames.map((n) => labels[n] as string);
  }

  /** The family's sample lines. */
  abstract samples(): string[];

  /** HELP, TYPE and the samples. */
  write(): string {
    return `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n${this.samples().join('')}`;
  }
}

/** A family of values by label set. */
abstract class Valued extends Family {
  readonly #series = new Map<string, { values: string[]; value: number }>();

  protected entry(labels: Labels): { values: string[]; value: number } {
    const values = this.values(labels);
    const key = values.join('\u0000');
    let e = this.#series.get(key);
    if (e === undefined) {
      e = { values, value: 0 };
      this.#series.set(key, e);
    }
    return e;
  }

  /** The value of a series (0 when it was never touched). */
  get(labels: Labels = {}): number {
    return this.entry(labels).value;
  }

  samples(): string[] {
    return [...this.#series.values()].map((e) => `${this.name}${labelText(this.labelNames, e.values)} ${formatValue(e.value)}\n`);
  }
}

/** A monotonic counter. */
export class Counter extends Valued {
  readonly type = 'counter';

  /** Adds `n` (≥ 0) to the series of `labels`. */
  inc(labels: Labels = {}, n = 1): void {
    if (!(n >= 0)) throw new Error(`${this.name}: a counter only goes up (got ${n})`);
    this.entry(labels).value += n;
  }
}

/** A gauge: set by the code, or read at scrape time when it has a collector. */
export class Gauge extends Valued {
  readonly type = 'gauge';
  #collect: (() => Iterable<readonly [Labels, number]>) | undefined;

  set(labels: Labels, v: number): void {
    this.entry(labels).value = v;
  }

  /** Reads the series when scraped instead (every label set the function returns, nothing else). */
  collect(fn: () => Iterable<readonly [Labels, number]>): this {
    this.#collect = fn;
    return this;
  }

  override samples(): string[] {
    const fn = this.#collect;
    if (fn === undefined) return super.samples();
    const out: string[] = [];
    for (const [labels, v] of fn()) out.push(`${this.name}${labelText(this.labelNames, this.values(labels))} ${formatValue(v)}\n`);
    return out;
  }
}

/** A histogram with fixed upper bounds (in the unit of its name, seconds for `_seconds`). */
export class Histogram extends Family {
  readonly type = 'histogram';
  readonly buckets: readonly number[];
  readonly #series = new Map<string, { values: string[]; counts: number[]; sum: number; count: number }>();

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames);
    if (buckets.length === 0 || buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= (buckets[i - 1] as number)))) {
      throw new Error(`${name}: buckets must be finite and increasing`);
    }
    this.buckets = buckets;
  }

  observe(labels: Labels, v: number): void {
    const values = this.values(labels);
    const key = values.join('\u0000');
    let e = this.#series.get(key);
    if (e === undefined) {
      e = { values, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, e);
    }
    for (let i = 0; i < this.buckets.length; i++) if (v <= (this.buckets[i] as number)) e.counts[i] = (e.counts[i] as number) + 1;
    e.sum += v;
    e.count++;
  }

  /** Observations so far of a series. */
  count(labels: Labels = {}): number {
    return this.#series.get(this.values(labels).join('\u0000'))?.count ?? 0;
  }

  samples(): string[] {
    const out: string[] = [];
    for (const e of this.#series.values()) {
      for (let i = 0; i < this.buckets.length; i++) out.push(`${this.name}_bucket${labelText(this.labelNames, e.values, `le="${formatValue(this.buckets[i] as number)}"`)} ${e.counts[i]}\n`);
      out.push(`${this.name}_bucket${labelText(this.labelNames, e.values, 'le="+Inf"')} ${e.count}\n`);
      out.push(`${this.name}_sum${labelText(this.labelNames, e.values)} ${formatValue(e.sum)}\n`);
      out.push(`${this.name}_count${labelText(this.labelNames, e.values)} ${e.count}\n`);
    }
    return out;
  }
}

/** The families of one process, written in registration order. */
export class MetricsRegistry {
  readonly #families = new Map<string, Family>();

  #add<T extends Family>(f: T): T {
    if (this.#families.has(f.name)) throw new Error(`metric ${f.name} is registered twice`);
    this.#families.set(f.name, f);
    return f;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#add(new Gauge(name, help, labelNames));
  }

  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    return this.#add(new Histogram(name, help, labelNames, buckets));
  }

  /** The text exposition of every family. */
  expose(): string {
    return [...this.#families.values()].map((f) => f.write()).join('');
  }
}
