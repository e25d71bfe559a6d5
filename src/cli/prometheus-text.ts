/**
 * The little of the Prometheus text exposition format `meshlet stat` reads: samples with their
 * labels, and `histogram_quantile` as Prometheus computes it (linear interpolation inside the
 * bucket the rank falls in; the highest finite bound when it falls in `+Inf`).
 *
 * @module
 */

/** One sample line: `name{labels} value`. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescapeLabel(v: string): string {
  return v.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** The samples of `text` whose metric name is in `names`; comments and other metrics are skipped. */
export function parseSamples(text: string, names: ReadonlySet<string>): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line.trim());
    if (m === null || !names.has(m[1] as string)) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1] as string] = unescapeLabel(l[2] as string);
    const value = m[3] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[3]);
    if (!Number.isNaN(value)) samples.push({ name: m[1] as string, labels, value });
  }
  return samples;
}

/**
 * Prometheus's `histogram_quantile(q, buckets)` over cumulative bucket counts by upper bound
 * (`le`); undefined when there is no observation.
 */
export function histogramQuantile(q: number, buckets: ReadonlyMap<number, number>): number | undefined {
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  // As Prometheus (promql/quantile.go bucketQuantile): at least one bucket besides +Inf, and
  // counts made monotonic first (ensureMonotonic: a bucket read a moment apart from the next).
  if (sorted.length < 2) return undefined;
  for (let i = 1; i < sorted.length; i++) {
    const prev = (sorted[i - 1] as [number, number])[1];
    const cur = sorted[i] as [number, number];
    if (cur[1] < prev) cur[1] = prev;
  }
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total <= 0 || sorted.at(-1)?.[0] !== Number.POSITIVE_INFINITY) return undefined;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank) {
      if (bound === Number.POSITIVE_INFINITY) return prevBound;
      if (count === prevCount) return bound;
      return prevBound + ((bound - prevBound) * (rank - prevCount)) / (count - prevCount);
    }
    prevBound = bound;
    prevCount = count;
  }
  return prevBound;
}
