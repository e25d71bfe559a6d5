/**
 * `meshlet proxy-config <clusters|endpoints|routes|secret|all> <admin-url>`: what a running mesh
 * holds, read from its admin endpoint (`createMesh({ admin })`), as `istioctl proxy-config`
 * reads a sidecar's — the same tables: clusters, endpoints with their health and outlier check,
 * routes, the workload certificate. Everything the endpoint answers is printed inert (escape.ts).
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { errors, request } from 'undici';
import { out, UsageError } from '../args.ts';
import { DEFAULT_TIMEOUT_MS, durationOption } from '../client.ts';
import { printable } from '../escape.ts';
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

/** GET `path` of the admin endpoint, parsed as JSON. */
async function read(base: string, path: string, timeoutMs: number): Promise<unknown> {
  let text: string;
  let status: number;
  try {
    const res = await request(`${base}${path}`, { headers: { accept: 'application/json' }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    const silent = err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError;
    throw new ReadError(silent ? `the admin endpoint at ${base} accepted the connection but did not answer ${path} within ${timeoutMs / 1000} s (--timeout)` : `cannot reach the admin endpoint at ${base}: ${printable((err as Error).message)}`);
  }
  if (status !== 200) throw new ReadError(`${base}${path} answered ${status}: ${printable(text.trim().slice(0, 500))}`);
  try {
    return JSON.parse(text);
  } catch {
    throw new ReadError(`${base}${path} did not answer JSON: is a meshlet admin endpoint listening there (createMesh({ admin }))?`);
  }
}

interface HostStatus {
  address?: { socket_address?: { address?: string; port_value?: number } };
  health_status?: { eds_health_status?: string; failed_outlier_check?: boolean };
  weight?: number;
  locality?: { region?: string; zone?: string; sub_zone?: string };
  stats?: { name: string; value: number }[];
  meshlet?: { ejected_for_ms?: number; ejection_reason?: string; labels?: Record<string, string> };
}
interface ClusterStatus {
  name: string;
  host_statuses?: HostStatus[];
  meshlet?: { host?: string | null; port?: number | null; subset?: string | null; type?: string; destination_rules?: string[] };
}

function clusterStatuses(doc: unknown, filter: string | undefined): ClusterStatus[] {
  const list = (doc as { cluster_statuses?: unknown } | null)?.cluster_statuses;
  if (!Array.isArray(list)) throw new ReadError('/clusters?format=json has no cluster_statuses: not a meshlet admin endpoint?');
  return (list as ClusterStatus[]).filter((c) => typeof c?.name === 'string' && (filter === undefined || c.name.includes(filter)));
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
      type: c.meshlet?.type ?? '',
      destinationRules: c.meshlet?.destination_rules ?? [],
    };
  });
}

function stat(h: HostStatus, name: string): number {
  return h.stats?.find((s) => s.name === name)?.value ?? 0;
}

/** istioctl's endpoint rows (sorted by address, port, cluster), with meshlet's details for -o json. */
function endpointRows(cs: ClusterStatus[]) {
  const rows = cs.flatMap((c) =>
    (c.host_statuses ?? []).map((h) => {
      const address = h.address?.socket_address?.address ?? 'unknown';
      const port = h.address?.socket_address?.port_value ?? 0;
      const l = h.locality ?? {};
      return {
        endpoint: port === 0 ? address : `${address.includes(':') ? `[${address}]` : address}:${port}`,
        address,
        port,
        status: h.health_status?.eds_health_status ?? 'UNKNOWN',
        outlierCheck: h.health_status?.failed_outlier_check === true ? 'FAILED' : 'OK',
        cluster: c.name,
        ejectedForMs: h.meshlet?.ejected_for_ms ?? 0,
        ejectionReason: h.meshlet?.ejection_reason ?? '',
        weight: h.weight ?? 1,
        locality: [l.region, l.zone, l.sub_zone].filter((p) => p !== undefined && p !== '').join('/'),
        labels: h.meshlet?.labels ?? {},
        requests: { active: stat(h, 'rq_active'), total: stat(h, 'rq_total'), success: stat(h, 'rq_success'), error: stat(h, 'rq_error'), timeout: stat(h, 'rq_timeout') },
        connections: stat(h, 'cx_active'),
      };
    }),
  );
  return rows.sort((a, b) => (a.address !== b.address ? (a.address < b.address ? -1 : 1) : a.port !== b.port ? a.port - b.port : a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0));
}

interface DumpRoute {
  name?: string;
  virtualService?: string | null;
  match?: string[];
}
interface DumpVhost {
  name?: string;
  port?: number | null;
  domains?: string[];
  routes?: DumpRoute[];
}

/** istioctl's route rows: the route config (port), the virtual host, its domains, each rule's match and VirtualService. */
function routeRows(dump: unknown) {
  const vhosts = (dump as { virtualHosts?: unknown } | null)?.virtualHosts;
  if (!Array.isArray(vhosts)) throw new ReadError('/config_dump has no virtualHosts: not a meshlet admin endpoint?');
  return (vhosts as DumpVhost[]).flatMap((vh) => {
    const domains = vh.domains ?? [];
    const short = domains.filter((d) => !d.includes('.') || d.split('.').length <= 2);
    const shown = short.length > 0 ? short : domains.slice(0, 1);
    const routes: DumpRoute[] = vh.routes === undefined || vh.routes.length === 0 ? [{ name: '', virtualService: null, match: [] }] : vh.routes;
    return routes.map((r) => ({
      name: vh.port === null || vh.port === undefined ? '' : String(vh.port),
      virtualHost: vh.name ?? '',
      domains: shown,
      match: (r.match ?? []).length === 0 ? ['/*'] : (r.match as string[]),
      virtualService: vsName(r.virtualService ?? null),
      route: r.name ?? '',
    }));
  });
}

/** `VirtualService default/ratings` → `ratings.default`, as istioctl names it. */
function vsName(ref: string | null): string | null {
  const m = ref === null ? null : /^VirtualService ([^/]+)\/(.+)$/.exec(ref);
  return m === null ? ref : `${m[2]}.${m[1]}`;
}

interface CertDetails {
  serial_number?: string;
  valid_from?: string;
  expiration_time?: string;
  subject_alt_names?: { uri?: string }[];
}

/** istioctl's secret rows: the leaf (`default`, Cert Chain) and each root (`ROOTCA`, CA). */
function secretRows(doc: unknown) {
  const list = (doc as { certificates?: unknown } | null)?.certificates;
  if (!Array.isArray(list)) throw new ReadError('/certs has no certificates: not a meshlet admin endpoint?');
  const now = Date.now();
  const row = (name: string, type: string, c: CertDetails) => {
    const from = Date.parse(c.valid_from ?? '');
    const to = Date.parse(c.expiration_time ?? '');
    return {
      name,
      type,
      status: 'ACTIVE',
      validCert: from <= now && now < to,
      serialNumber: c.serial_number ?? '',
      notAfter: c.expiration_time ?? '',
      notBefore: c.valid_from ?? '',
      spiffeId: c.subject_alt_names?.find((s) => s.uri?.startsWith('spiffe://'))?.uri ?? null,
    };
  };
  return (list as { cert_chain?: CertDetails[]; ca_cert?: CertDetails[] }[]).flatMap((c) => [
    ...(c.cert_chain ?? []).slice(0, 1).map((x) => row('default', 'Cert Chain', x)),
    ...(c.ca_cert ?? []).map((x) => row('ROOTCA', 'CA', x)),
  ]);
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
      const domains = (d: string[]) => (d.length <= 2 ? d.join(', ') : `${d.slice(0, 2).join(', ')} + ${d.length - 2} more...`);
      out(table(['NAME', 'VHOST NAME', 'DOMAINS', 'MATCH', 'VIRTUAL SERVICE'], rows.map((r) => [cell(r.name), cell(r.virtualHost), cell(domains(r.domains)), cell(r.match.join(' | ')), cell(r.virtualService ?? '')])));
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
    const clusters = sections.includes('clusters') || sections.includes('endpoints') ? clusterStatuses(await read(base, '/clusters?format=json', timeoutMs), values.cluster) : [];
    if (sections.includes('clusters')) data.clusters = clusterRows(clusters);
    if (sections.includes('endpoints')) data.endpoints = endpointRows(clusters);
    if (sections.includes('routes')) data.routes = routeRows(await read(base, '/config_dump', timeoutMs));
    if (sections.includes('secret')) data.secrets = secretRows(await read(base, '/certs', timeoutMs));
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
