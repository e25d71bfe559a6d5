/**
 * `meshlet tap <admin-url-or-port>`: a running mesh's requests as they happen, from its admin
 * endpoint's `/tap`, one line each as Linkerd's `linkerd viz tap` prints them:
 *
 *     req id=1 proxy=out src=10.0.0.7:41234 dst=10.0.0.11:9080 tls=true :method=GET :authority=reviews:9080 :path=/reviews/1
 *     rsp id=1 proxy=out src=10.0.0.7:41234 dst=10.0.0.11:9080 tls=true :status=200 latency=1180µs
 *     end id=1 proxy=out src=10.0.0.7:41234 dst=10.0.0.11:9080 tls=true :status=200 latency=1234µs response-length=295B flags=-
 *
 * or the records themselves (`-o json`, one JSON object a line). Everything the endpoint sent is
 * printed inert (escape.ts).
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { out, UsageError } from '../args.ts';
import { jsonPrintable } from '../escape.ts';
import { adminBase, field, grpcCodeName, numberField, readTap, TAP_HELP, TAP_OPTIONS, TapError, tapQuery } from '../tap-client.ts';

export const tapHelp = `Usage: meshlet tap <admin-url-or-port> [options]

A running mesh's requests as they happen — the ones it makes (proxy=out) and the ones its
servers receive (proxy=in) — read from its admin endpoint (createMesh({ admin }); docs/admin.md),
one line per request start (req), response head (rsp: its status and the latency to it) and
end, as 'linkerd viz tap' prints them. Paths are shown without
their query string; no header value or body is ever shown.
<admin-url-or-port>: http://127.0.0.1:15000, localhost:15000 or 15000 (kubectl port-forward
pod/<pod> 15000 reaches a pod's). Runs until interrupted, --count or --duration.

Options:
${TAP_HELP}
      --count <n>            stop after n requests ended
  -o, --output json          print the records themselves, one JSON object a line (docs/admin.md)
`;

/** Most requests whose start line was printed and whose end has not come (their src/dst for the rsp and end lines). */
const MAX_OPEN = 10_000;

/** Linkerd's flow part of a line: `proxy=out src=… dst=… tls=true`. */
function flow(r: Record<string, unknown>): string {
  const direction = field(r, 'direction');
  return `proxy=${direction === 'in' ? 'in ' : direction} src=${field(r, 'srcAddress') || '-'} dst=${field(r, 'dstAddress') || '-'} tls=${field(r, 'tls')}`;
}

/** The end line's outcome: `:status=200 grpc-status=OK latency=1234µs response-length=42B flags=-`. */
function outcome(r: Record<string, unknown>): string {
  const parts = [`:status=${field(r, 'status')}`];
  const grpc = numberField(r, 'grpcStatus');
  if (grpc !== undefined) parts.push(`grpc-status=${grpcCodeName(grpc)}`);
  parts.push(`latency=${Math.round((numberField(r, 'latencyMs') ?? 0) * 1000)}µs`);
  const bytes = numberField(r, 'responseBytes');
  if (bytes !== undefined) parts.push(`response-length=${bytes}B`);
  parts.push(`flags=${field(r, 'flags') || '-'}`);
  return parts.join(' ');
}

/** Prints the drops the stream reports (on stderr: stdout stays one line per event). */
function dropped(r: Record<string, unknown>): void {
  const rate = numberField(r, 'rateLimited') ?? 0;
  const slow = numberField(r, 'slowReader') ?? 0;
  process.stderr.write(`meshlet tap: so far ${rate} request(s) not shown over --max-rps, ${slow} event(s) dropped because this reader was slow\n`);
}

/** Runs the command; returns the exit code. */
export async function tapCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...TAP_OPTIONS, count: { type: 'string' }, output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    out(tapHelp);
    return 0;
  }
  const [target, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`meshlet tap: unexpected argument "${extra[0]}"`);
  const base = adminBase('tap', target);
  if (values.output !== undefined && values.output !== 'json') throw new UsageError(`--output: expected json (one record a line), got "${values.output}"`);
  const json = values.output === 'json';
  const count = values.count === undefined ? undefined : Number(values.count);
  if (count !== undefined && !(Number.isInteger(count) && count > 0)) throw new UsageError(`--count: expected a whole number above 0, got "${values.count}"`);
  const { query, durationMs } = tapQuery(values);
  const open = new Map<number, string>();
  let ended = 0;
  let closedReason = '';
  try {
    const how = await readTap(base, query, durationMs, (r) => {
      const type = r.type;
      if (type === 'closed') closedReason = field(r, 'reason');
      if (json) {
        if (type !== 'start') out(jsonPrintable(JSON.stringify(r)));
      } else if (type === 'req') {
        const id = numberField(r, 'id') ?? 0;
        const f = flow(r);
        if (open.size >= MAX_OPEN) open.delete(open.keys().next().value as number);
        open.set(id, f);
        out(`req id=${id} ${f} :method=${field(r, 'method')} :authority=${field(r, 'authority')} :path=${field(r, 'path')}${r.mirror === true ? ' mirror=true' : ''}`);
      } else if (type === 'rsp') {
        const id = numberField(r, 'id') ?? 0;
        let f = open.get(id);
        // The connection that answered named this workload's address (outbound src) only now.
        const src = field(r, 'srcAddress');
        if (f !== undefined && src !== '') {
          f = f.replace(/ src=\S* /, () => ` src=${src} `);
          open.set(id, f);
        }
        out(`rsp id=${id} ${f ?? `proxy=${field(r, 'direction')}`} :status=${field(r, 'status')} latency=${Math.round(numberField(r, 'latencyUs') ?? 0)}µs`);
      } else if (type === 'end') {
        const id = numberField(r, 'id') ?? 0;
        const f = open.get(id) ?? `proxy=${field(r, 'direction')}`;
        open.delete(id);
        out(`end id=${id} ${f} ${outcome(r)}`);
      } else if (type === 'dropped') dropped(r);
      if (type === 'end' && count !== undefined && ++ended >= count) return 'stop';
      return undefined;
    });
    if (how === 'ended') process.stderr.write(`meshlet tap: the stream ended${closedReason === '' ? '' : `: ${closedReason}`}\n`);
  } catch (err) {
    if (!(err instanceof TapError)) throw err;
    process.stderr.write(`meshlet tap: ${err.message}\n`);
    return 1;
  }
  return 0;
}
