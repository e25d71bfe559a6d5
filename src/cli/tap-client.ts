/**
 * What `meshlet tap` and `meshlet top` share: the admin endpoint's address (a URL, `host:port`
 * or a port), the filter flags (the `/tap` query parameters, as Linkerd's `tap` flags), and
 * reading the `/tap` stream — one JSON record a line — until the command has what it wants, the
 * time is up, or the mesh ends the stream.
 *
 * @module
 */
import { clearTimeout, setTimeout } from 'node:timers';
import { errors, request } from 'undici';
import { GRPC_STATUS_NAMES } from '../core/grpc-status.ts';
import { tapQuery as checkTapQuery } from '../mesh-tap-stream.ts';
import { UsageError } from './args.ts';
import { durationOption } from './client.ts';
import { printable } from './escape.ts';

/** The filter flags, and how long / how many. */
export const TAP_OPTIONS = {
  direction: { type: 'string' },
  method: { type: 'string' },
  authority: { type: 'string' },
  path: { type: 'string' },
  route: { type: 'string' },
  cluster: { type: 'string' },
  status: { type: 'string' },
  'max-rps': { type: 'string' },
  duration: { type: 'string' },
} as const;

/** Help lines for {@link TAP_OPTIONS}. */
export const TAP_HELP = `      --direction <in|out>   only requests this workload received (in) or made (out)
      --method <method>      only requests with this method (GET, POST, …)
      --authority <host>     only requests with this :authority (host, or host:port)
      --path <prefix>        only requests whose path starts with this prefix
      --route <name>         only requests that took this route (outbound)
      --cluster <text>       only requests whose cluster name contains this text
      --status <class|code>  only requests that ended with this status (2xx, 5xx, 503; 0: no
                             response); they are then shown when they end
      --max-rps <n>          requests a second to show, at most (default 100, as Linkerd's);
                             the rest are counted as dropped, never queued
      --duration <duration>  stop after this long (e.g. 30s)`;

/** Values of {@link TAP_OPTIONS} as parseArgs gives them. */
export type TapValues = { readonly [K in keyof typeof TAP_OPTIONS]?: string | undefined };

/** The admin endpoint's base URL from `<admin-url-or-port>`: `15000`, `localhost:15000`, `http://127.0.0.1:15000`. */
export function adminBase(command: string, arg: string | undefined): string {
  if (arg === undefined) throw new UsageError(`meshlet ${command}: give the admin endpoint: its URL (http://127.0.0.1:15000) or port (15000)`);
  let base = arg.replace(/\/+$/, '');
  if (/^\d+$/.test(base)) base = `http://127.0.0.1:${base}`;
  else if (!/^https?:\/\//.test(base)) base = `http://${base}`;
  const port = /:(\d+)$/.exec(base)?.[1];
  if (!/^https?:\/\/[^/?#\s@]+$/.test(base) || (port !== undefined && Number(port) > 65535) || /^\d+$/.test(arg) && (Number(arg) < 1 || Number(arg) > 65535)) {
    throw new UsageError(`meshlet ${command}: "${printable(arg)}" is not an admin endpoint (http://host:port, host:port or a port)`);
  }
  return base;
}

/** The `/tap` query of the flags, checked by the endpoint's own rules, so a mistake is a usage error (exit 2). */
export function tapQuery(values: TapValues): { query: string; durationMs: number | undefined } {
  const q = new URLSearchParams();
  for (const k of ['direction', 'method', 'authority', 'path', 'route', 'cluster', 'status'] as const) {
    const v = values[k];
    if (v !== undefined && v !== '') q.set(k, v);
  }
  if (values['max-rps'] !== undefined) q.set('max_rps', values['max-rps']);
  const checked = checkTapQuery(q);
  if ('error' in checked) throw new UsageError(`--${checked.param.replace('_', '-')}: ${printable(checked.problem)}`);
  const s = q.toString();
  return { query: s === '' ? '' : `?${s}`, durationMs: durationOption('--duration', values.duration) };
}

/** A failure to read the tap: printed as it is, exit 1. */
export class TapError extends Error {}

/** Longest record line accepted (a record is well under 1 KiB; a longer line is not a meshlet tap). */
const MAX_LINE = 64 * 1024;

/**
 * Reads `base`/tap`query` and hands each record to `onRecord` until it returns `'stop'`, the
 * stream ends (resolves `'ended'`), or `durationMs` passes (`'time'`). Throws {@link TapError}
 * when the endpoint cannot be reached or does not answer a tap.
 */
export async function readTap(base: string, query: string, durationMs: number | undefined, onRecord: (r: Record<string, unknown>) => 'stop' | undefined, stop?: AbortSignal): Promise<'ended' | 'stopped' | 'time'> {
  const ac = new AbortController();
  let stopped = false;
  const onStop = () => {
    stopped = true;
    ac.abort();
  };
  if (stop?.aborted === true) return 'stopped';
  stop?.addEventListener('abort', onStop, { once: true });
  let timedOut = false;
  const timer =
    durationMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          ac.abort();
        }, durationMs);
  try {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${base}/tap${query}`, { headers: { accept: 'application/x-ndjson' }, signal: ac.signal, headersTimeout: 15_000, bodyTimeout: 0 });
    } catch (err) {
      if (timedOut) return 'time';
      if (stopped) return 'stopped';
      const why = err instanceof errors.HeadersTimeoutError ? 'it did not answer within 15 s' : printable((err as Error).message);
      throw new TapError(`cannot reach the admin endpoint at ${base}: ${why}`);
    }
    if (res.statusCode !== 200) {
      const text = (await res.body.text().catch(() => '')).trim().slice(0, 500);
      throw new TapError(`${base}/tap answered ${res.statusCode}: ${printable(text)}${res.statusCode === 404 ? ' (a meshlet older than /tap?)' : ''}`);
    }
    let pending = '';
    let first = true;
    // A character's bytes may come in two chunks: decoded as a stream, not chunk by chunk.
    const utf8 = new TextDecoder();
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        pending += utf8.decode(chunk, { stream: true });
        let nl = pending.indexOf('\n');
        while (nl >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          nl = pending.indexOf('\n');
          if (line.trim() === '') continue;
          let r: unknown;
          try {
            r = JSON.parse(line);
          } catch {
            r = undefined;
          }
          if (r === null || typeof r !== 'object' || Array.isArray(r) || (first && (r as { type?: unknown }).type !== 'start')) {
            throw new TapError(`${base}/tap did not answer a meshlet tap stream: is a meshlet admin endpoint listening there (createMesh({ admin }))?`);
          }
          first = false;
          if (onRecord(r as Record<string, unknown>) === 'stop') {
            stopped = true;
            ac.abort();
            return 'stopped';
          }
        }
        if (pending.length > MAX_LINE) throw new TapError(`${base}/tap sent a line longer than ${MAX_LINE / 1024} KiB: not a meshlet tap stream`);
      }
    } catch (err) {
      if (err instanceof TapError) throw err;
      if (timedOut) return 'time';
      if (stopped) return 'stopped';
      throw new TapError(`the tap stream from ${base} broke off: ${printable((err as Error).message)}`);
    }
    return 'ended';
  } finally {
    stop?.removeEventListener('abort', onStop);
    if (timer !== undefined) clearTimeout(timer);
    if (!ac.signal.aborted) ac.abort();
  }
}

/** A record's field as text ('' when absent or not a scalar), made inert for the terminal. */
export function field(r: Record<string, unknown>, k: string): string {
  const v = r[k];
  return typeof v === 'string' ? printable(v) : typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';
}

/** A record's field as a number, or undefined. */
export function numberField(r: Record<string, unknown>, k: string): number | undefined {
  const v = r[k];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** `OK`, `Unavailable`, `DeadlineExceeded`, … or `Code(n)`: Go's `codes.Code` names, as Linkerd's tap prints them, from meshlet's one table. */
export function grpcCodeName(n: number): string {
  const name = GRPC_STATUS_NAMES[n];
  if (name === undefined) return `Code(${n})`;
  if (name === 'OK') return name;
  // Go spells it Canceled.
  if (name === 'CANCELLED') return 'Canceled';
  return name.toLowerCase().replace(/(?:^|_)([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Whether a request succeeded, as Linkerd's proxy classifies it (and `meshlet stat`): a 5xx, no
 * response at all, or a gRPC status other than OK fails.
 */
export function succeeded(status: number, grpcStatus: number | undefined): boolean {
  if (status === 0 || status >= 500) return false;
  return grpcStatus === undefined || grpcStatus === 0;
}
