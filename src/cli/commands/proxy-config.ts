/**
 * `meshlet proxy-config <clusters|endpoints|routes|secret|all> <admin-url>`: what a running mesh
 * holds, read from its admin endpoint (`createMesh({ admin })`), as `istioctl proxy-config`
 * reads a sidecar's — the same tables: clusters, endpoints with their health and outlier check,
 * routes, the workload certificate. Everything the endpoint answers is printed inert (escape.ts).
 *
 * @module
 */
import { setTimeout, clearTimeout } from 'node:timers';
import { parseArgs } from 'node:util';
import { errors, request } from 'undici';
import { out, UsageError } from '../args.ts';
import { DEFAULT_TIMEOUT_MS, durationOption } from '../client.ts';
import { printable } from '../escape.ts';
import { formatHostPort } from '../../core/host-port.ts';
import { OUTPUT_HELP, OUTPUT_OPTION, outputFormat, printDocument } from '../output.ts';
import { table } from '../table.ts';

export const proxyConfigHelp = `Usage: meshlet proxy-config <clusters|endpoints|routes|secret|all> <admin-url> [options]

What a running mesh holds now, read from its admin endpoint (createMesh({ admin: { port: 15000 } });
docs/admin.md), as 'istioctl proxy-config' reads a sidecar's:
  clusters    every cluster: service FQDN, port, subset, direction, type, DestinationRule
  endpoints   every endpoint: STATUS (the registry's health) and OUTLIER CHECK (FAILED while
              outlier detection ejects it), its cluster
  routes      every rule in order: route name (port), virtual host, domains, match, VirtualService
  secret      the workload certificate (serial, validity) and the roots it trusts
  all         the four
<admin-url> is the endpoint's base URL, e.g. http://127.0.0.1:15000 (kubectl port-forward
pod/<pod> 15000 reaches a pod's). Exits 1 when the endpoint cannot be read, 2 on a usage mistake.

Options:
      --cluster <text>       clusters and endpoints: only clusters whose name contains this text
      --timeout <duration>   how long the admin endpoint has to answer, e.g. 5s (default 15s)
${OUTPUT_HELP}
`;

const SECTIONS = ['clusters', 'endpoints', 'routes', 'secret', 'all'] as const;
type Section = (typeof SECTIONS)[number];

/** A failure to read the admin endpoint: printed as it is, exit 1. */
class ReadError extends Error {}

/** The most one answer may hold: a larger one is not a mesh's admin endpoint (or is a hostile one). */
const MAX_ANSWER_BYTES = 128 * 1024 * 1024;

/**
 * GET `path` of the admin endpoint, parsed as JSON. `timeoutMs` bounds the whole answer, body
 * included (an endpoint that trickles bytes cannot hold the command), and the answer is at most
 * {@link MAX_ANSWER_BYTES}: whatever listens at the URL cannot make the command run or grow forever.
 */
async function read(base: string, path: string, timeoutMs: number): Promise<unknown> {
  let text: string;
  let status: number;
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  let answering = false;
  try {
    const res = await request(`${base}${path}`, { headers: { accept: 'application/json' }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: deadline.signal });
    answering = true;
    status = res.statusCode;
    const tooLarge = () => new ReadError(`${base}${path} answered more than ${MAX_ANSWER_BYTES / 1024 / 1024} MiB: not a meshlet admin endpoint?`);
    if (Number(res.headers['content-length'] ?? 0) > MAX_ANSWER_BYTES) {
      res.body.destroy();
      throw tooLarge();
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) {
        res.body.destroy();
        throw tooLarge();
      }
      chunks.push(chunk);
    }
    text = Buffer.concat(chunks).toString('utf8');
  } catch (err) {
    if (err instanceof ReadError) throw err;
    const late = deadline.signal.aborted || err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError;
    if (!late) throw new ReadError(`cannot reach the admin endpoint at ${base}: ${printable((err as Error).message)}`);
    throw new ReadError(answering ? `the admin endpoint at ${base} did not finish answering ${path} within ${timeoutMs / 1000} s (--timeout)` : `the admin endpoint at ${base} accepted the connection but did not answer ${path} within ${timeoutMs / 1000} s (--timeout)`);
  } finally {
    clearTimeout(timer);
  }
  if (status !== 200) throw new ReadError(`${base}${path} answered ${status}: ${printable(text.trim().slice(0, 500))}`);
  try {
    return JSON.parse(text);
  } catch {
    throw new ReadError(`${base}${path} did not answer JSON: is a meshlet admin endpoint listening there (createMesh({ admin }))?`);
  }
}

// What the endpoint answers is read field by field, each coerced to what it should be: another
// server's JSON (another program on the port, another version) gives empty cells, not a crash.
type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : '');
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const strings = (v: unknown): string[] => list(v).map(str);

interface ClusterStatus {
  name: string;
  hosts: Obj[];
  meshlet: Obj;
}

function clusterStatuses(base: string, doc: unknown, filter: string | undefined): ClusterStatus[] {
  const statuses = obj(doc).cluster_statuses;
  if (!Array.isArray(statuses)) throw new ReadError(`${base}/clusters?format=json answered JSON without cluster_statuses: not a meshlet admin endpoint?`);
  return statuses
    .map(obj)
    .filter((c) => typeof c.name === 'string' && (filter === undefined || c.name.includes(filter)))
    .map((c) => ({ name: c.name as string, hosts: list(c.host_statuses).map(obj), meshlet: obj(c.meshlet) }));
}

/** istioctl's columns of a cluster, from its name `outbound|9080|v1|reviews.default.svc.cluster.local`. */
function clusterRows(cs: ClusterStatus[]) {
  return cs.map((c) => {
    const [direction = '', port = '', subset = '', fqdn = ''] = c.name.split('|');
    const named = c.name.split('|').length === 4;
    return {
      name: c.name,
      fqdn: named ? fqdn : c.name,
      port: named ? Number(port) : null,
      subset: named ? subset : '',
      direction: named ? direction.toUpperCase() : '',
      type: str(c.meshlet.type),
      destinationRules: strings(c.meshlet.destination_rules),
    };
  });
}

function stat(h: Obj, name: string): number {
  return num(list(h.stats).map(obj).find((s) => s.name === name)?.value) ?? 0;
}

/** istioctl's endpoint rows (sorted by address, port, cluster), with meshlet's details for -o json. */
function endpointRows(cs: ClusterStatus[]) {
  const rows = cs.flatMap((c) =>
    c.hosts.map((h) => {
      const socket = obj(obj(h.address).socket_address);
      const address = str(socket.address) || 'unknown';
      const port = num(socket.port_value) ?? 0;
      const l = obj(h.locality);
      const health = obj(h.health_status);
      const m = obj(h.meshlet);
      return {
        endpoint: port === 0 ? address : formatHostPort(address, port),
        address,
        port,
        status: str(health.eds_health_status) || 'UNKNOWN',
        outlierCheck: health.failed_outlier_check === true ? 'FAILED' : 'OK',
        cluster: c.name,
        ejectedForMs: num(m.ejected_for_ms) ?? 0,
        ejectionReason: str(m.ejection_reason),
        weight: num(h.weight) ?? 1,
        locality: [str(l.region), str(l.zone), str(l.sub_zone)].filter((p) => p !== '').join('/'),
        labels: obj(m.labels),
        requests: { active: stat(h, 'rq_active'), total: stat(h, 'rq_total'), success: stat(h, 'rq_success'), error: stat(h, 'rq_error'), timeout: stat(h, 'rq_timeout') },
        connections: stat(h, 'cx_active'),
      };
    }),
  );
  return rows.sort((a, b) => (a.address !== b.address ? (a.address < b.address ? -1 : 1) : a.port !== b.port ? a.port - b.port : a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0));
}

/**
 * The domains istioctl shows (`describeRouteDomains`): one domain as it is; of several, those
 * without a port (an IPv6 address in brackets counts), less a name that is a shorter one plus
 * `.svc.cluster.local` or `.svc`.
 */
export function shownDomains(domains: readonly string[]): string[] {
  if (domains.length <= 1) return [...domains];
  const noPort = domains.filter((d) => !d.includes(':') || (d.split(':').length - 1 > 2 && d.endsWith(']')));
  const all = new Set(noPort);
  const longer = (d: string, suffix: string) => d.endsWith(suffix) && all.has(d.slice(0, -suffix.length));
  return noPort.filter((d) => !longer(d, '.svc.cluster.local') && !longer(d, '.svc'));
}

/** istioctl's DOMAINS cell of {@link shownDomains}: the first two, then `+ N more...`. */
export function describeDomains(shown: readonly string[]): string {
  return shown.length <= 2 ? shown.join(', ') : `${shown.slice(0, 2).join(', ')} + ${shown.length - 2} more...`;
}

/** istioctl's route rows: the route config (port), the virtual host, its domains, each rule's match and VirtualService. */
function routeRows(base: string, dump: unknown) {
  const vhosts = obj(dump).virtualHosts;
  if (!Array.isArray(vhosts)) throw new ReadError(`${base}/config_dump answered JSON without virtualHosts: not a meshlet admin endpoint?`);
  return vhosts.map(obj).flatMap((vh) => {
    const shown = shownDomains(strings(vh.domains));
    const given = list(vh.routes).map(obj);
    const routes: Obj[] = given.length === 0 ? [{}] : given;
    const port = num(vh.port);
    return routes.map((r) => {
      const match = strings(r.match);
      return {
        name: port === null ? '' : String(port),
        virtualHost: str(vh.name),
        domains: shown,
        match: match.length === 0 ? ['/*'] : match,
        virtualService: vsName(typeof r.virtualService === 'string' ? r.virtualService : null),
        route: str(r.name),
      };
    });
  });
}

/** `VirtualService default/ratings` → `ratings.default`, as istioctl names it. */
function vsName(ref: string | null): string | null {
  const m = ref === null ? null : /^VirtualService ([^/]+)\/(.+)$/.exec(ref);
  return m === null ? ref : `${m[2]}.${m[1]}`;
}

/** istioctl's secret rows: the leaf (`default`, Cert Chain) and each root (`ROOTCA`, CA). */
function secretRows(base: string, doc: unknown) {
  const certificates = obj(doc).certificates;
  if (!Array.isArray(certificates)) throw new ReadError(`${base}/certs answered JSON without certificates: not a meshlet admin endpoint?`);
  const now = Date.now();
  const row = (name: string, type: string, c: Obj) => {
    const validFrom = str(c.valid_from);
    const expiration = str(c.expiration_time);
    const from = Date.parse(validFrom);
    const to = Date.parse(expiration);
    return {
      name,
      type,
      status: 'ACTIVE',
      validCert: from <= now && now < to,
      serialNumber: str(c.serial_number),
      notAfter: expiration,
      notBefore: validFrom,
      spiffeId: strings(list(c.subject_alt_names).map((s) => obj(s).uri)).find((u) => u.startsWith('spiffe://')) ?? null,
    };
  };
  return certificates.map(obj).flatMap((c) => [...list(c.cert_chain).slice(0, 1).map((x) => row('default', 'Cert Chain', obj(x))), ...list(c.ca_cert).map((x) => row('ROOTCA', 'CA', obj(x)))]);
}

const seconds = (iso: string) => iso.replace(/\.\d+Z$/, 'Z');

function printTables(sections: readonly Exclude<Section, 'all'>[], data: Record<string, unknown[]>): void {
  const cell = (v: string) => printable(v);
  let first = true;
  for (const s of sections) {
    if (!first) out();
    first = false;
    if (s === 'clusters') {
      const rows = data.clusters as ReturnType<typeof clusterRows>;
      out(table(['SERVICE FQDN', 'PORT', 'SUBSET', 'DIRECTION', 'TYPE', 'DESTINATION RULE'], rows.map((r) => [cell(r.fqdn), r.port === null ? '-' : String(r.port), cell(r.subset === '' ? '-' : r.subset), cell(r.direction === '' ? '-' : r.direction), cell(r.type), cell(r.destinationRules.join(', '))])));
    } else if (s === 'endpoints') {
      const rows = data.endpoints as ReturnType<typeof endpointRows>;
      out(table(['ENDPOINT', 'STATUS', 'OUTLIER CHECK', 'CLUSTER'], rows.map((r) => [cell(r.endpoint), cell(r.status), r.outlierCheck, cell(r.cluster)])));
    } else if (s === 'routes') {
      const rows = data.routes as ReturnType<typeof routeRows>;
      out(table(['NAME', 'VHOST NAME', 'DOMAINS', 'MATCH', 'VIRTUAL SERVICE'], rows.map((r) => [cell(r.name), cell(r.virtualHost), cell(describeDomains(r.domains)), cell(r.match.join(' | ')), cell(r.virtualService ?? '')])));
    } else {
      const rows = data.secrets as ReturnType<typeof secretRows>;
      if (rows.length === 0) out('no workload certificate: the mesh has no identity (createMesh identity option), or it is not issued yet');
      else out(table(['RESOURCE NAME', 'TYPE', 'STATUS', 'VALID CERT', 'SERIAL NUMBER', 'NOT AFTER', 'NOT BEFORE'], rows.map((r) => [r.name, r.type, r.status, String(r.validCert), cell(r.serialNumber), cell(seconds(r.notAfter)), cell(seconds(r.notBefore))])));
    }
  }
}

/** Runs the command; returns the exit code. */
export async function proxyConfigCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { cluster: { type: 'string' }, timeout: { type: 'string' }, ...OUTPUT_OPTION, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    out(proxyConfigHelp);
    return 0;
  }
  const format = outputFormat(values.output);
  const [what, url, ...extra] = positionals;
  if (what === undefined || !(SECTIONS as readonly string[]).includes(what)) throw new UsageError(`meshlet proxy-config: name what to show: ${SECTIONS.join(', ')}${what === undefined ? '' : `, not "${what}"`}`);
  if (url === undefined) throw new UsageError('meshlet proxy-config: give the admin endpoint URL, e.g. http://127.0.0.1:15000');
  if (extra.length > 0) throw new UsageError(`meshlet proxy-config: unexpected argument "${extra[0]}"`);
  const base = url.replace(/\/+$/, '');
  if (!/^https?:\/\/[^/?#\s]+$/.test(base)) throw new UsageError(`meshlet proxy-config: "${url}" is not an admin endpoint URL (http://host:port)`);
  const timeoutMs = durationOption('--timeout', values.timeout) ?? DEFAULT_TIMEOUT_MS;
  const sections: Exclude<Section, 'all'>[] = what === 'all' ? ['clusters', 'endpoints', 'routes', 'secret'] : [what as Exclude<Section, 'all'>];
  const data: Record<string, unknown[]> = {};
  try {
    const clusters = sections.includes('clusters') || sections.includes('endpoints') ? clusterStatuses(base, await read(base, '/clusters?format=json', timeoutMs), values.cluster) : [];
    if (sections.includes('clusters')) data.clusters = clusterRows(clusters);
    if (sections.includes('endpoints')) data.endpoints = endpointRows(clusters);
    if (sections.includes('routes')) data.routes = routeRows(base, await read(base, '/config_dump', timeoutMs));
    if (sections.includes('secret')) data.secrets = secretRows(base, await read(base, '/certs', timeoutMs));
  } catch (err) {
    if (!(err instanceof ReadError)) throw err;
    process.stderr.write(`meshlet proxy-config: ${err.message}\n`);
    return 1;
  }
  if (format !== undefined) {
    printDocument(format, { adminUrl: base, ...data });
    return 0;
  }
  printTables(sections, data);
  return 0;
}
