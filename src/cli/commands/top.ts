/**
 * `meshlet top <admin-url-or-port>`: the busiest requests of a running mesh, from its admin
 * endpoint's `/tap` stream, as `linkerd viz top` shows them — per direction, method, authority
 * and path (or per cluster: `--by cluster`, the `linkerd viz stat` view of the same stream):
 * count, requests a second, success rate and latency p50 / p95 / max. `--once` reads for
 * `--duration` and prints one table (scriptable); otherwise the table is redrawn every second.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { clearInterval, setInterval } from 'node:timers';
import { out, UsageError } from '../args.ts';
import { OUTPUT_HELP, outputFormat, printDocument } from '../output.ts';
import { table } from '../table.ts';
import { adminBase, field, numberField, readTap, succeeded, TAP_HELP, TAP_OPTIONS, TapError, tapQuery } from '../tap-client.ts';

export const topHelp = `Usage: meshlet top <admin-url-or-port> [--once] [--duration <duration>] [options]

The busiest requests of a running mesh, live, as 'linkerd viz top' shows them: one row per
direction (in: received by the workload, out: made by it), method, authority and path (without
the query string), with the count, requests a second, success rate (as Linkerd counts it: a 5xx,
a gRPC status other than OK or no response fails) and latency p50 / p95 / max, busiest first.
Read from the admin endpoint's /tap (createMesh({ admin }); docs/admin.md).
<admin-url-or-port>: http://127.0.0.1:15000, localhost:15000 or 15000.

Options:
      --once                 read for --duration (default 5s), print one table and exit;
                             without it the table is redrawn every second (q or Ctrl-C quits)
      --by <path|cluster>    one row per path (default), or per cluster (success rate, RPS and
                             latency per destination, as 'linkerd viz stat')
${TAP_HELP}
${OUTPUT_HELP} (with --once)
`;

/** Latencies kept per row for its percentiles (the latest ones past this). */
const MAX_SAMPLES = 10_000;
/** Rows kept; requests past this many distinct keys are counted under one `(other)` row. */
const MAX_ROWS = 5_000;
/** Requests started and not yet ended, remembered for their key. */
const MAX_OPEN = 10_000;

interface Row {
  readonly direction: string;
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly cluster: string;
  count: number;
  successes: number;
  samples: number[];
  next: number;
  max: number;
}

/** One row as printed (and as `-o json` gives it). */
export interface TopRow {
  readonly direction: string;
  readonly method?: string;
  readonly authority?: string;
  readonly path?: string;
  readonly cluster?: string;
  readonly count: number;
  readonly rps: number;
  /** Percent. */
  readonly successRate: number;
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly max: number };
}

/** The nearest-rank percentile `p` of `sorted`. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** `850µs`, `12ms`, `1.25s`, as Linkerd's top prints latencies. */
export function formatLatency(ms: number): string {
  if (ms < 1) return `${Math.round(ms * 1000)}µs`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}

/** The stream's requests, aggregated. */
class Top {
  readonly #by: 'path' | 'cluster';
  readonly #rows = new Map<string, Row>();
  /** Requests started and not yet ended: their key, or null for a mirror copy in the per-path view (not the app's request). */
  readonly #open = new Map<number, Omit<Row, 'count' | 'successes' | 'samples' | 'next' | 'max'> | null>();
  dropped = { rateLimited: 0, slowReader: 0 };

  constructor(by: 'path' | 'cluster') {
    this.#by = by;
  }

  record(r: Record<string, unknown>): void {
    const id = numberField(r, 'id');
    if (r.type === 'req' && id !== undefined) {
      if (this.#open.size >= MAX_OPEN) this.#open.delete(this.#open.keys().next().value as number);
      // A mirror copy has the primary's method, authority and path: per path it would count the app's request twice; per cluster it is the mirror's.
      const copy = r.mirror === true && this.#by === 'path';
      this.#open.set(id, copy ? null : { direction: field(r, 'direction'), method: field(r, 'method'), authority: field(r, 'authority'), path: field(r, 'path'), cluster: field(r, 'cluster') || '-' });
    } else if (r.type === 'end' && id !== undefined) {
      const k = this.#open.get(id);
      this.#open.delete(id);
      if (k === undefined || k === null) return;
      this.#add(k, numberField(r, 'status') ?? 0, numberField(r, 'grpcStatus'), numberField(r, 'latencyMs') ?? 0);
    } else if (r.type === 'dropped') {
      this.dropped = { rateLimited: numberField(r, 'rateLimited') ?? 0, slowReader: numberField(r, 'slowReader') ?? 0 };
    }
  }

  #add(k: Omit<Row, 'count' | 'successes' | 'samples' | 'next' | 'max'>, status: number, grpc: number | undefined, latency: number): void {
    let key = this.#by === 'cluster' ? `${k.direction} ${k.cluster}` : JSON.stringify([k.direction, k.method, k.authority, k.path]);
    let row = this.#rows.get(key);
    if (row === undefined) {
      if (this.#rows.size >= MAX_ROWS) {
        key = '(other)';
        k = { direction: '-', method: '-', authority: '-', path: '(other)', cluster: '(other)' };
        row = this.#rows.get(key);
      }
      if (row === undefined) {
        row = { ...k, count: 0, successes: 0, samples: [], next: 0, max: 0 };
        this.#rows.set(key, row);
      }
    }
    row.count++;
    if (succeeded(status, grpc)) row.successes++;
    if (row.samples.length < MAX_SAMPLES) row.samples.push(latency);
    else row.samples[row.next++ % MAX_SAMPLES] = latency;
    if (latency > row.max) row.max = latency;
  }

  /** The rows, busiest first; `seconds`: how long the stream was read (for requests a second). */
  rows(seconds: number): TopRow[] {
    return [...this.#rows.values()]
      .sort((a, b) => b.count - a.count || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
      .map((r) => {
        const sorted = [...r.samples].sort((a, b) => a - b);
        const where = this.#by === 'cluster' ? { cluster: r.cluster } : { method: r.method, authority: r.authority, path: r.path };
        return {
          direction: r.direction,
          ...where,
          count: r.count,
          rps: seconds > 0 ? Math.round((r.count / seconds) * 100) / 100 : 0,
          successRate: Math.round((r.successes / r.count) * 10000) / 100,
          latencyMs: { p50: percentile(sorted, 50), p95: percentile(sorted, 95), max: r.max },
        };
      });
  }

  text(seconds: number): string {
    const rows = this.rows(seconds);
    const head = this.#by === 'cluster' ? ['PROXY', 'CLUSTER'] : ['PROXY', 'METHOD', 'AUTHORITY', 'PATH'];
    const cells = rows.map((r) => [
      ...(this.#by === 'cluster' ? [r.direction, r.cluster ?? ''] : [r.direction, r.method ?? '', r.authority ?? '', r.path ?? '']),
      String(r.count),
      r.rps.toFixed(1),
      `${r.successRate.toFixed(2)}%`,
      formatLatency(r.latencyMs.p50),
      formatLatency(r.latencyMs.p95),
      formatLatency(r.latencyMs.max),
    ]);
    const d = this.dropped;
    const note = d.rateLimited + d.slowReader > 0 ? `\n(not counted: ${d.rateLimited} request(s) over --max-rps, ${d.slowReader} event(s) missed by a slow reader)` : '';
    return rows.length === 0 ? `no requests seen in ${seconds.toFixed(1)}s${note}` : `${table([...head, 'COUNT', 'RPS', 'SUCCESS', 'P50', 'P95', 'MAX'], cells)}${note}`;
  }
}

/** Runs the command; returns the exit code. */
export async function topCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...TAP_OPTIONS, once: { type: 'boolean' }, by: { type: 'string' }, output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    out(topHelp);
    return 0;
  }
  const [target, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`meshlet top: unexpected argument "${extra[0]}"`);
  const base = adminBase('top', target);
  const format = outputFormat(values.output);
  const once = values.once === true;
  if (format !== undefined && !once) throw new UsageError('meshlet top: -o needs --once (one table, then exit)');
  const by = values.by ?? 'path';
  if (by !== 'path' && by !== 'cluster') throw new UsageError(`--by: expected path or cluster, got "${by}"`);
  const t = tapQuery({ ...values, duration: values.duration ?? (once ? '5s' : undefined) });
  const top = new Top(by);
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  const tty = process.stdout.isTTY === true;
  // At a terminal, q (or Ctrl-C) quits with the last table, as linkerd viz top.
  const quit = new AbortController();
  const keys = !once && tty && process.stdin.isTTY === true;
  const onKey = (k: Buffer) => {
    if (k.includes(0x71) || k.includes(0x03)) quit.abort();
  };
  if (keys) {
    process.stdin.setRawMode(true);
    process.stdin.on('data', onKey).resume();
  }
  // Interactive: the table redrawn every second (a terminal is cleared first; a pipe gets one table after another).
  const redraw = once ? undefined : setInterval(() => out(`${tty ? '\x1b[H\x1b[2J' : ''}meshlet top ${base} (${keys ? 'q' : 'Ctrl-C'} to quit)\n\n${top.text(seconds())}\n`), 1000);
  let how: Awaited<ReturnType<typeof readTap>>;
  try {
    how = await readTap(base, t.query, t.durationMs, (r) => {
      top.record(r);
      return undefined;
    }, quit.signal);
  } catch (err) {
    if (!(err instanceof TapError)) throw err;
    process.stderr.write(`meshlet top: ${err.message}\n`);
    return 1;
  } finally {
    if (redraw !== undefined) clearInterval(redraw);
    if (keys) {
      process.stdin.off('data', onKey).setRawMode(false);
      process.stdin.pause();
    }
  }
  const s = seconds();
  if (how === 'ended') process.stderr.write('meshlet top: the stream ended (the mesh is closing)\n');
  if (format !== undefined) printDocument(format, { adminUrl: base, seconds: Math.round(s * 10) / 10, by, dropped: top.dropped, rows: top.rows(s) });
  else out(top.text(s));
  return 0;
}
