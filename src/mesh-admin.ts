/**
 * A mesh's admin endpoint (`createMesh({ admin })`): a small read-only HTTP server on loopback,
 * modelled on the admin port of Envoy in an Istio sidecar — `/clusters`, `/config_dump`,
 * `/certs`, `/server_info`, `/ready`, `/stats` — plus `/explain`, what `mesh.explain` says of a request.
 * Nothing it serves changes the mesh, and no private key is ever in an answer. Answers are
 * built per request from what the mesh holds (`mesh-admin-views.ts`).
 *
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { setTimeout } from 'node:timers';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { InvalidArgumentError, isMeshletError } from './core/errors.ts';
import { formatHostPort } from './core/host-port.ts';
import type { Mesh } from './mesh.ts';
import { isLoopback } from './control-plane/probe-hosts.ts';
import type { AdminHandle, AdminSettings } from './mesh-admin-options.ts';
import { certs, clustersJson, clustersText, configDump, serverInfo } from './mesh-admin-views.ts';
import { startMeshStats, statsAnswer } from './mesh-admin-stats.ts';
import { MeshTap } from './mesh-tap.ts';
import { tapQuery } from './mesh-tap-stream.ts';
import type { MeshLogger, MeshOptions } from './mesh-options.ts';

/** The paths served, with what each gives (the index at `/` and `/help`). */
const PATHS: Readonly<Record<string, string>> = {
  '/certs': 'the workload certificate chain and trust bundle: SPIFFE ID, serial, validity (public parts only)',
  '/clusters': "every cluster's endpoints: health, outlier ejections, requests, connections (?format=json: Envoy's JSON)",
  '/config_dump': 'the config in effect: resources, virtual hosts and routes, clusters, the Sidecar that applies, inbound phases',
  '/explain': 'how a call would be handled: ?url=<url>&method=<method>&header=<name:value> (repeatable; &format=text for the text)',
  '/help': 'this list',
  '/ready': 'LIVE (200) while the mesh serves, DRAINING (503) once it is closing',
  '/server_info': 'version, state, uptime, the workload and the config in use',
  '/stats': "Envoy's statistics, one `name: value` a line, then histograms: cluster.<cluster>;.upstream_rq_*, outlier_detection.*, circuit_breakers.*, http.inbound_0.0.0.0_<port>;.*, server.* (?filter=<regex>, ?usedonly, ?format=json)",
  '/stats/prometheus': 'the same in Prometheus text format (envoy_cluster_upstream_rq_pending_overflow{cluster_name=…})',
  '/tap': 'live requests of this process, in and out, one JSON object a line as they happen (?direction, method, authority, path, route, cluster, status, max_rps; meshlet tap)',
};

/** Longest request target accepted (a long `/explain` URL with headers); longer is 414. */
const MAX_TARGET = 8192;

/**
 * Starts `mesh`'s admin endpoint on `settings`' address and hands it to the mesh (closed by
 * `mesh.close()`). When it cannot listen, the mesh is closed and this rejects with the reason.
 */
export async function startMeshAdmin(mesh: Mesh, settings: AdminSettings, o: MeshOptions, logger: MeshLogger): Promise<void> {
  let state = 'LIVE';
  const startedAt = mesh.outbound.clock.now();
  // Counted from now on, for /stats (nothing is subscribed without the admin endpoint).
  const stats = startMeshStats(mesh);
  // /tap: subscribed only while a client is connected.
  const tap = new MeshTap({ mesh, trustDomain: o.trustDomain ?? 'cluster.local', sourceIp: o.sourceIp });
  const server = createServer((req, res) => {
    try {
      serve(req, res);
    } catch (e) {
      reply(res, 500, 'text/plain; charset=utf-8', `admin: failed to answer ${req.url ?? ''}: ${(e as Error).message}\n`);
    }
  });
  // A slow or idle client holds nothing for long (kubelet, curl and istioctl-like tools ask and go).
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 64;

  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      reply(res, 405, 'text/plain; charset=utf-8', `admin: ${String(req.method)} is not allowed: the admin endpoint is read-only (GET)\n`);
      return;
    }
    const target = req.url ?? '/';
    if (target.length > MAX_TARGET) {
      reply(res, 414, 'text/plain; charset=utf-8', `admin: the request target is longer than ${MAX_TARGET} characters\n`);
      return;
    }
    // On loopback, only loopback names: a web page's script reaching it through DNS rebinding (a name of its own that resolves to 127.0.0.1) is refused.
    if (settings.loopback && !loopbackHost(req.headers.host)) {
      reply(res, 403, 'text/plain; charset=utf-8', `admin: Host "${req.headers.host ?? ''}" is not a loopback address or localhost: refused\n`);
      return;
    }
    // An origin-form target is read as the path it is: `//clusters` is no path served (as a URL
    // reference it would be host `clusters`, path `/`). An absolute-form one (through a proxy) is parsed.
    let url: URL | undefined;
    try {
      url = new URL(target.startsWith('/') ? `http://admin.invalid${target}` : target);
    } catch {
      url = undefined;
    }
    if (url === undefined) {
      reply(res, 400, 'text/plain; charset=utf-8', 'admin: the request target is not a path\n');
      return;
    }
    const q = url.searchParams;
    switch (url.pathname) {
      case '/':
      case '/help':
        reply(res, 200, 'text/plain; charset=utf-8', `meshlet admin commands are:\n${Object.entries(PATHS).map(([p, d]) => `  ${p}: ${d}`).join('\n')}\n`);
        return;
      case '/ready':
        reply(res, state === 'LIVE' ? 200 : 503, 'text/plain; charset=utf-8', `${state}\n`);
        return;
      case '/server_info':
        json(res, serverInfo(mesh, state, startedAt));
        return;
      case '/clusters':
        if (q.get('format') === 'json') {
          json(res, clustersJson(mesh));
          return;
        }
        reply(res, 200, 'text/plain; charset=utf-8', clustersText(mesh));
        return;
      case '/config_dump':
        json(res, configDump(mesh, o));
        return;
      case '/certs':
        json(res, certs(mesh));
        return;
      case '/explain':
        explain(res, q);
        return;
      case '/stats':
      case '/stats/prometheus': {
        const up = Math.max(0, Math.floor((mesh.outbound.clock.now() - startedAt) / 1000));
        const a = statsAnswer(stats.stats({ live: state === 'LIVE', uptimeSeconds: up }), q, url.pathname === '/stats/prometheus');
        reply(res, a.status, a.type, a.body);
        return;
      }
      case '/tap': {
        const t = tapQuery(q);
        if ('error' in t) reply(res, 400, 'text/plain; charset=utf-8', `admin: /tap: ${t.error}\n`);
        else if (req.method === 'HEAD') reply(res, 200, 'application/x-ndjson; charset=utf-8', '');
        else tap.open(res, t.filter, t.maxRps);
        return;
      }
      default:
        reply(res, 404, 'text/plain; charset=utf-8', `admin: no ${url.pathname}; the admin endpoint serves ${Object.keys(PATHS).join(', ')}\n`);
        return;
    }
  };

  const explain = (res: ServerResponse, q: URLSearchParams): void => {
    const target = q.get('url');
    if (target === null || target === '') {
      reply(res, 400, 'text/plain; charset=utf-8', 'admin: /explain needs ?url=<the URL of the call>, e.g. /explain?url=http://reviews:9080/reviews/1\n');
      return;
    }
    const headers: Record<string, string[]> = Object.create(null);
    for (const h of q.getAll('header')) {
      const i = h.indexOf(':');
      if (i <= 0) {
        reply(res, 400, 'text/plain; charset=utf-8', `admin: /explain: header "${h}" is not name:value\n`);
        return;
      }
      const name = h.slice(0, i).trim().toLowerCase();
      headers[name] = [...(headers[name] ?? []), h.slice(i + 1).trim()];
    }
    let e: ReturnType<Mesh['explain']>;
    try {
      e = mesh.explain({ url: target, method: q.get('method') ?? 'GET', headers });
    } catch (err) {
      if (isMeshletError(err) || err instanceof TypeError) {
        reply(res, 400, 'text/plain; charset=utf-8', `admin: /explain: ${(err as Error).message}\n`);
        return;
      }
      throw err;
    }
    if (q.get('format') === 'text') {
      reply(res, 200, 'text/plain; charset=utf-8', `${String(e)}\n`);
      return;
    }
    json(res, { ...e, text: String(e) });
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // Bound by this process alone (exclusive): in a node:cluster worker a shared port would give each request to another worker's mesh.
    server.listen({ port: settings.port, host: settings.host, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch(async (e: NodeJS.ErrnoException) => {
    stats.close();
    await tap.close('the admin endpoint could not start');
    await mesh.close();
    const why = e.code === 'EADDRINUSE' ? 'address in use (EADDRINUSE): another process (a sidecar\'s Envoy?) holds it; choose another `admin.port`' : e.message;
    throw new InvalidArgumentError(`createMesh: the admin endpoint cannot listen on ${formatHostPort(settings.host, settings.port)}: ${why}`, { cause: e });
  });
  const a = server.address() as AddressInfo;
  const url = adminUrlOf(a);
  // With the port bound (admin.port 0 picks one) and, for a wildcard address, the addresses it is reached on.
  const bound = `${formatHostPort(a.address, a.port)}${a.address === '0.0.0.0' || a.address === '::' ? ` (every interface${reachedAt(a)})` : ''}`;
  if (!settings.loopback) logger.warn(`meshlet: the admin endpoint listens on ${bound}, not on loopback (admin.allowNonLoopback): whoever reaches it sees this workload's config, endpoints and certificate details, and its requests as they happen (/tap: methods, hosts, paths)`);
  logger.info?.(`meshlet: admin endpoint at ${url}${url === `http://${formatHostPort(a.address, a.port)}` ? '' : `, listening on ${bound}`}`);
  const handle: AdminHandle = {
    url,
    draining: () => {
      state = 'DRAINING';
    },
    close: async () => {
      stats.close();
      // Tap streams end with a last record, written out before the connections are cut (a reader that does not read is not waited for).
      await Promise.race([tap.close('the mesh is closing'), new Promise<void>((resolve) => setTimeout(resolve, 1000).unref())]);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  mesh.adoptAdmin(handle);
}

/** The endpoint's URL: its bound address, or for a wildcard one (0.0.0.0, ::) loopback's, which reaches it from this host. */
function adminUrlOf(a: AddressInfo): string {
  const address = a.address === '0.0.0.0' ? '127.0.0.1' : a.address === '::' ? '::1' : a.address;
  return `http://${formatHostPort(address, a.port)}`;
}

/** `: http://10.0.0.5:15000, …`: this host's addresses (not loopback) a wildcard endpoint is reached on from elsewhere, a few. */
function reachedAt(a: AddressInfo): string {
  const v4Only = a.address === '0.0.0.0';
  const found: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) {
      if (i.internal || (v4Only && i.family !== 'IPv4') || (i.family === 'IPv6' && i.scopeid !== 0)) continue;
      found.push(`http://${formatHostPort(i.address, a.port)}`);
    }
  }
  if (found.length === 0) return '';
  return `: ${found.slice(0, 3).join(', ')}${found.length > 3 ? `, and ${found.length - 3} more` : ''}`;
}

/** Whether a Host header names a loopback address or localhost (with any port). */
function loopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d*$/, '');
  return isLoopback(name);
}

function reply(res: ServerResponse, status: number, type: string, body: string): void {
  res.statusCode = status;
  res.setHeader('content-type', type);
  // As Envoy's admin: never cached, never sniffed as something else.
  res.setHeader('cache-control', 'no-cache, max-age=0');
  res.setHeader('x-content-type-options', 'nosniff');
  res.end(body);
}

function json(res: ServerResponse, data: unknown): void {
  reply(res, 200, 'application/json', `${JSON.stringify(data, null, 2)}\n`);
}
