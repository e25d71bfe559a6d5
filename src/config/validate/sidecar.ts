/**
 * Validation of `SidecarSpec`: the shape of Istio's CRD and every rule of Istio's
 * `ValidateSidecar` (pkg/config/validation/validation.go), with its warnings:
 *
 * - something must be configured (egress, ingress, outboundTrafficPolicy or inboundConnectionPool);
 *   a workloadSelector without labels is a warning (it selects the whole namespace);
 * - egress: hosts in `namespace/dnsName` form (`*`, `.`, a namespace, each optionally `~`-prefixed
 *   to exclude it; the dnsName an FQDN, `*.suffix` or `*`), duplicate hosts and `*` beside other
 *   hosts warned about; one listener without a port, last; unique ports and Unix socket binds;
 *   port 0 means a Unix socket bind (`unix://`) with captureMode DEFAULT or NONE; otherwise a port
 *   1–65535 and an IP bind;
 * - ingress: a unique port 1–65535, an IP bind, `defaultEndpoint` as 127.0.0.1/0.0.0.0/[::1]/[::]
 *   `:port` or `unix://`, TLS only on HTTPS/TLS ports and without the fields a sidecar cannot use,
 *   connection pools as DestinationRule's (with Istio's warning for HTTP settings on a non-HTTP port);
 * - outboundTrafficPolicy: `egressProxy` only with ALLOW_ANY, an FQDN host and a port.
 *
 * What a proxyless mesh cannot do is accepted with a "not supported by meshlet" notice
 * (`MESHLET0002`): ingress listeners (the app's own server is the inbound side), their TLS
 * and default endpoint, and egress `bind` and `captureMode: NONE` (no outbound listener exists;
 * `IPTABLES` is an info: in-process, every call through the mesh's client is already
 * "captured"). `inboundConnectionPool` and an ingress listener's `connectionPool` are applied:
 * the server side's circuit breaker (src/inbound/connection-pool.ts).
 *
 * @module
 */
import { AUTO_PROTOCOL, parseProtocol } from '../protocol.ts';
import type { FieldPath } from '../issues.ts';
import type { CaptureMode, IstioEgressListener, IstioIngressListener, SidecarOutboundTrafficPolicy, SidecarPort, SidecarSpec } from '../types/sidecar.ts';
import { checkHost, isIpAddress, workloadSelector } from './common.ts';
import { destination } from './http-route.ts';
import { fail, int, list, obj, oneOf, req, str, strWith, unsupported, warn, type Ctx, type Validator } from './schema.ts';
import { checkServerTlsOptions, serverTlsSettings } from './server-tls.ts';
import { checkUnixAddress, UINT32_MAX, UNIX_PREFIX } from './shared-networking.ts';
import { connectionPoolSettings } from './traffic-policy.ts';

const NOTICE = 'MESHLET0002';

/** Istio's `labels.IsDNS1123Label`: letters of either case, digits and `-`, at most 63. */
function isIstioDnsLabel(s: string): boolean {
  return s.length <= 63 && /^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$/.test(s);
}

/** Istio's `ValidatePort`. */
function checkPortNumber(n: number): string | undefined {
  return n >= 1 && n <= 65535 ? undefined : `port number ${n} must be in the range 1..65535`;
}

/** Istio's `ValidateProtocol`: empty (sniffed) or a protocol `protocol.Parse` knows. */
function checkProtocol(p: string): string | undefined {
  if (p === '' || parseProtocol(p) !== AUTO_PROTOCOL) return undefined;
  return `unsupported protocol "${p}": use HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, HTTP_PROXY, TCP, TLS, UDP, MONGO, REDIS or MYSQL (any case), or leave it empty`;
}

const sidecarPort: Validator<SidecarPort> = obj<SidecarPort>(
  {
    number: int({ min: 0, max: UINT32_MAX }),
    protocol: strWith(checkProtocol),
    // Istio's ValidatePortName, when a name is given.
    name: strWith((n) => (n === '' || isIstioDnsLabel(n) ? undefined : `invalid port name "${n}": must be a DNS-1123 label`)),
    targetPort: int({ min: 0, max: UINT32_MAX }),
  },
  {
    check: (p, path, ctx) => {
      if ((p.targetPort ?? 0) > 0) fail(ctx, [...path, 'targetPort'], 'targetPort has no impact on Sidecars (Istio refuses it)');
    },
  },
);

const CAPTURE_MODES: readonly CaptureMode[] = ['DEFAULT', 'IPTABLES', 'NONE'];

/** An egress listener's `captureMode`: NONE is a warning, IPTABLES an info, DEFAULT nothing (see the module). */
const egressCaptureMode: Validator<CaptureMode> = (v, path, ctx) => {
  const mode = oneOf(CAPTURE_MODES)(v, path, ctx);
  if (mode === 'NONE') {
    ctx.issues.at(
      ctx.subject,
      path,
      'warning',
      'not supported by meshlet: captureMode NONE; meshlet opens no outbound listener, so an app that calls the listener\'s address reaches nothing; calls through the mesh\'s client (mesh.fetch, mesh.dispatcher, mesh.grpc) are handled as with DEFAULT',
      NOTICE,
    );
  } else if (mode === 'IPTABLES') {
    ctx.issues.at(ctx.subject, path, 'info', 'captureMode IPTABLES has no effect in meshlet: every call made through the mesh\'s client is seen in-process, which is what capture gives a sidecar', NOTICE);
  }
  return mode;
};

// ---------- egress ----------

/**
 * Istio's `ValidateNamespaceSlashWildcardHostname` for a Sidecar (`namespace/dnsName`); returns
 * every problem, joined, or nothing.
 */
export function checkEgressHost(host: string): string | undefined {
  const slash = host.indexOf('/');
  if (slash === -1) return `host "${host}" must be of form namespace/dnsName ("*/foo.example.com", "./*", "istio-system/*")`;
  const ns = host.slice(0, slash);
  const dns = host.slice(slash + 1);
  const problems: string[] = [];
  if (ns === '' || dns === '') problems.push('namespace and dnsName cannot be empty');
  const bare = ns.startsWith('~') ? ns.slice(1) : ns;
  if (bare !== '' && bare !== '*' && bare !== '.' && !isIstioDnsLabel(bare)) problems.push(`invalid namespace "${ns}": "*", ".", or a namespace name, optionally prefixed with "~" to exclude it`);
  if (dns === '') return `invalid host "${host}": ${problems.join('; ')}`;
  if (dns !== '*' && !dns.includes('.')) problems.push('short names (non FQDN) are not allowed');
  const domain = checkHost(dns);
  if (domain !== undefined) problems.push(domain);
  else if (dns.includes('*') && dns !== '*' && !dns.startsWith('*.')) problems.push(`partial wildcard "${dns}" not allowed ("*" or "*.suffix" only)`);
  return problems.length === 0 ? undefined : `invalid host "${host}": ${problems.join('; ')}`;
}

/** Istio's duplicate-host warnings among one listener's hosts (excluded, `~`, entries are left out). */
function warnDuplicateHosts(hosts: readonly string[], path: FieldPath, ctx: Ctx): void {
  const byNamespace = new Map<string, Set<string>>();
  // Whether a namespace's entries came both as "." and by name: in the root namespace's default Sidecar "." is each workload's own namespace.
  const dot = new Set<string>();
  const named = new Set<string>();
  hosts.forEach((h, i) => {
    const slash = h.indexOf('/');
    if (slash === -1 || h.startsWith('~')) return;
    const isDot = h.slice(0, slash) === '.';
    const ns = isDot ? ctx.namespace : h.slice(0, slash);
    (isDot ? dot : named).add(ns);
    const dns = h.slice(slash + 1);
    const seen = byNamespace.get(ns) ?? new Set<string>();
    byNamespace.set(ns, seen);
    const duplicate = dns === '*' ? seen.size > 0 : seen.has(dns) || seen.has('*');
    const root = dot.has(ns) && named.has(ns) ? `; if this is the root namespace's Sidecar without a workloadSelector, keep both: for the workloads of other namespaces, whose default it is, "." is their own namespace` : '';
    if (duplicate) warn(ctx, [...path, i], `duplicated egress host "${h}": another host of this listener already covers it in namespace ${ns} (Istio)${root}`);
    seen.add(dns);
  });
  if (byNamespace.get('*')?.has('*') === true && byNamespace.size > 1) {
    warn(ctx, path, '"*/*" selects every host of every namespace; the other hosts of this listener add nothing (Istio)');
  }
}

const egressListener: Validator<IstioEgressListener> = obj<IstioEgressListener>(
  {
    port: sidecarPort,
    bind: unsupported(
      str,
      'meshlet opens no outbound listener, so nothing listens on this address: the app\'s calls go through the mesh\'s client (mesh.fetch, mesh.dispatcher, mesh.grpc) whatever address they name',
    ),
    captureMode: egressCaptureMode,
    hosts: req(list(strWith(checkEgressHost))),
  },
  {
    check: (e, path, ctx, raw) => {
      // The hosts as written (the typed list leaves out the invalid ones, which would shift the indexes).
      const hosts = Array.isArray(raw.hosts) ? raw.hosts : [];
      if (Array.isArray(raw.hosts) && hosts.length === 0) fail(ctx, [...path, 'hosts'], 'an egress listener must contain at least one host');
      warnDuplicateHosts(hosts.map((h) => (typeof h === 'string' ? h : '')), [...path, 'hosts'], ctx);
      if (e.port === undefined) return;
      const bind = e.bind ?? '';
      const number = e.port.number ?? 0;
      if (number === 0) {
        // Port 0: the listener is a Unix domain socket, named by bind.
        if (!bind.startsWith(UNIX_PREFIX)) fail(ctx, [...path, 'bind'], 'a listener with port 0 must have a unix domain socket bind address (unix://…)');
        else {
          const problem = checkUnixAddress(bind);
          if (problem !== undefined) fail(ctx, [...path, 'bind'], problem);
        }
        const mode = e.captureMode ?? 'DEFAULT';
        if (mode !== 'DEFAULT' && mode !== 'NONE') fail(ctx, [...path, 'captureMode'], 'must be DEFAULT or NONE for a unix domain socket listener');
      } else {
        const problem = checkPortNumber(number);
        if (problem !== undefined) fail(ctx, [...path, 'port', 'number'], problem);
        if (bind !== '' && !isIpAddress(bind)) fail(ctx, [...path, 'bind'], `"${bind}" is not a valid IP address`);
      }
    },
  },
);

/** Rules across the egress listeners: one catch-all (no port), last; unique ports and Unix socket binds. */
function checkEgressListeners(egress: readonly IstioEgressListener[], path: FieldPath, ctx: Ctx): void {
  const ports = new Map<number, number>();
  const sockets = new Map<string, number>();
  egress.forEach((e, i) => {
    const at: FieldPath = [...path, i];
    if (e.port === undefined) {
      if (i !== egress.length - 1) fail(ctx, at, 'the egress listener without a port (the catch-all) must be the last listener, and there can be only one');
      return;
    }
    const number = e.port.number ?? 0;
    if (number === 0) {
      const bind = e.bind ?? '';
      const first = sockets.get(bind);
      if (first !== undefined) fail(ctx, [...at, 'bind'], `unix domain socket binds must be unique: listener ${first} uses it too`);
      else sockets.set(bind, i);
    } else {
      const first = ports.get(number);
      if (first !== undefined) fail(ctx, [...at, 'port', 'number'], `ports must be unique: listener ${first} uses port ${number} too`);
      else ports.set(number, i);
    }
  });
}

// ---------- ingress ----------

/** The forms Istio accepts for a defaultEndpoint's host (empty: `:port`). */
const DEFAULT_ENDPOINT_HOSTS = new Set(['', '127.0.0.1', '0.0.0.0', '::1', '::']);

/** Go's `net.SplitHostPort`: `host:port` or `[host]:port`; an error message, or the parts. */
function splitHostPort(s: string): { host: string; port: string } | string {
  const colon = s.lastIndexOf(':');
  if (colon === -1) return `address "${s}": missing port`;
  let host: string;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end === -1) return `address "${s}": missing "]"`;
    if (end + 1 !== colon) return end + 1 === s.length ? `address "${s}": missing port` : `address "${s}": unexpected text after "]"`;
    host = s.slice(1, end);
  } else {
    host = s.slice(0, colon);
    if (host.includes(':')) return `address "${s}": too many colons`;
  }
  if (host.includes('[') || host.includes(']') || s.slice(colon + 1).includes('[') || s.slice(colon + 1).includes(']')) return `address "${s}": unexpected bracket`;
  return { host, port: s.slice(colon + 1) };
}

/** An ingress `defaultEndpoint`, checked as Istio does; returns a problem or nothing. */
export function checkDefaultEndpoint(endpoint: string): string | undefined {
  if (endpoint === '') return undefined;
  if (endpoint.startsWith(UNIX_PREFIX)) return checkUnixAddress(endpoint);
  const form = 'must be 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port>, :<port> or unix://<path>';
  const parts = splitHostPort(endpoint);
  if (typeof parts === 'string') return `${parts}; ${form}`;
  if (!DEFAULT_ENDPOINT_HOSTS.has(parts.host)) return `"${endpoint}" ${form}`;
  // strconv.Atoi: an optional sign and decimal digits.
  if (!/^[+-]?\d+$/.test(parts.port)) return `"${endpoint}": the port "${parts.port}" is not a number`;
  return checkPortNumber(Number(parts.port));
}

const ingressListener: Validator<IstioIngressListener> = obj<IstioIngressListener>(
  {
    port: req(sidecarPort),
    bind: str,
    captureMode: oneOf(CAPTURE_MODES),
    defaultEndpoint: unsupported(strWith(checkDefaultEndpoint), 'no proxy stands in front of the app to forward inbound calls: its own server receives them on the port it listens on'),
    tls: unsupported(
      serverTlsSettings,
      "meshlet does not terminate TLS in front of the app: mesh.createServer speaks mTLS as PeerAuthentication says; to accept TLS from outside the mesh, serve HTTPS from the app (https.createServer)",
    ),
    connectionPool: connectionPoolSettings,
  },
  { check: checkIngressListener },
);

function checkIngressListener(l: IstioIngressListener, path: FieldPath, ctx: Ctx): void {
  if (l.port === undefined) return;
  const protocol = parseProtocol(l.port.protocol ?? '');
  const problem = checkPortNumber(l.port.number ?? 0);
  if (problem !== undefined) fail(ctx, [...path, 'port', 'number'], problem);
  const bind = l.bind ?? '';
  if (bind !== '' && !isIpAddress(bind)) fail(ctx, [...path, 'bind'], `"${bind}" is not a valid IP address`);
  const tls = l.tls;
  if (tls !== undefined) {
    const tp: FieldPath = [...path, 'tls'];
    const notInSidecar = (field: string) => fail(ctx, [...tp, field], 'is not supported in a Sidecar\'s ingress TLS (Istio)');
    if ((tls.subjectAltNames?.length ?? 0) > 0) notInSidecar('subjectAltNames');
    if (tls.httpsRedirect === true) notInSidecar('httpsRedirect');
    if ((tls.credentialName ?? '') !== '') notInSidecar('credentialName');
    if ((tls.credentialNames?.length ?? 0) > 0) notInSidecar('credentialNames');
    if ((tls.tlsCertificates?.length ?? 0) > 0) notInSidecar('tlsCertificates');
    if (tls.mode === 'ISTIO_MUTUAL' || tls.mode === 'AUTO_PASSTHROUGH') fail(ctx, [...tp, 'mode'], `cannot be ${tls.mode} in a Sidecar's ingress TLS`);
    if (protocol !== 'HTTPS' && protocol !== 'TLS') fail(ctx, tp, `TLS settings are allowed only on HTTPS and TLS ports; port ${l.port.number ?? 0} is ${l.port.protocol ?? 'unset'}`);
    checkServerTlsOptions(tls, tp, ctx);
  }
  const isHttp = protocol === 'HTTP' || protocol === 'HTTP2' || protocol === 'HTTP_PROXY' || protocol === 'GRPC' || protocol === 'GRPC-Web';
  if (l.connectionPool?.http !== undefined && !isHttp) {
    const name = l.port.name === undefined ? '' : ` ("${l.port.name}")`;
    warn(ctx, [...path, 'connectionPool', 'http'], `HTTP connection pool settings on port ${l.port.number ?? 0}${name}, whose protocol is not HTTP (${l.port.protocol ?? 'unset'}): only the TCP settings would apply (Istio)`);
  }
}

/** Ingress ports must be unique. */
function checkIngressListeners(ingress: readonly IstioIngressListener[], path: FieldPath, ctx: Ctx): void {
  const ports = new Map<number, number>();
  ingress.forEach((l, i) => {
    if (l.port === undefined) return;
    const number = l.port.number ?? 0;
    const first = ports.get(number);
    if (first !== undefined) fail(ctx, [...path, i, 'port', 'number'], `ports must be unique: listener ${first} uses port ${number} too`);
    else ports.set(number, i);
  });
}

// ---------- outboundTrafficPolicy ----------

const outboundTrafficPolicy: Validator<SidecarOutboundTrafficPolicy> = obj<SidecarOutboundTrafficPolicy>(
  {
    mode: oneOf(['REGISTRY_ONLY', 'ALLOW_ANY']),
    egressProxy: destination,
  },
  {
    check: (p, path, ctx) => {
      const proxy = p.egressProxy;
      if (proxy === undefined) return;
      const at: FieldPath = [...path, 'egressProxy'];
      if (p.mode !== 'ALLOW_ANY') {
        fail(ctx, at, 'egressProxy may be set only with mode ALLOW_ANY (the mode defaults to REGISTRY_ONLY)');
        return;
      }
      // Istio's ValidateFQDN on top of the Destination checks: what it adds is that a wildcard is refused.
      const host = proxy.host ?? '';
      if (host !== '*' && checkHost(host) === undefined && checkHost(host, { allowWildcard: false }) !== undefined) {
        fail(ctx, [...at, 'host'], `must be a fully qualified domain name, not the wildcard "${host}"`);
      }
      if (proxy.port === undefined) fail(ctx, [...at, 'port'], 'is required for an egressProxy');
    },
  },
);

// ---------- the spec ----------

const hasItems = (v: unknown): boolean => Array.isArray(v) && v.length > 0;
const isSet = (v: unknown): boolean => v !== undefined && v !== null;

/** Validates a SidecarSpec. */
export const sidecarSpec: Validator<SidecarSpec> = obj<SidecarSpec>(
  {
    workloadSelector: (v, path, ctx) => {
      const s = workloadSelector(v, path, ctx);
      if (s !== undefined && Object.keys(s.labels ?? {}).length === 0) {
        warn(ctx, path, 'workload selector specified without labels: the Sidecar applies to every workload of its namespace (Istio)');
      }
      return s;
    },
    ingress: unsupported(
      list(ingressListener),
      "meshlet has no inbound listeners: the app's own server receives its calls on the port it listens on, and mesh.createServer or the Express, Fastify and gRPC adapters apply the mesh's inbound policies there; an ingress listener's connectionPool is applied (to requests arriving on its port.number)",
    ),
    egress: list(egressListener),
    inboundConnectionPool: connectionPoolSettings,
    outboundTrafficPolicy,
  },
  {
    check: (s, path, ctx, raw) => {
      // A list written as [] is unset for Istio (its YAML decoding drops it).
      if (!hasItems(raw.egress) && !hasItems(raw.ingress) && !isSet(raw.outboundTrafficPolicy) && !isSet(raw.inboundConnectionPool)) {
        fail(ctx, path, 'empty configuration: set egress, ingress, outboundTrafficPolicy or inboundConnectionPool');
      }
      // Across listeners, by index: only when every listener is an object (else the indexes would shift).
      if (s.egress !== undefined && s.egress.length === (raw.egress as unknown[]).length) checkEgressListeners(s.egress, [...path, 'egress'], ctx);
      if (s.ingress !== undefined && s.ingress.length === (raw.ingress as unknown[]).length) checkIngressListeners(s.ingress, [...path, 'ingress'], ctx);
    },
  },
);
