/**
 * `meshlet explain <config> --service s [-X method] [-H 'name: value'] <url>`: how one request
 * from a workload would be handled under a config — virtual host, the rule that matched and the
 * ones tried before it, destinations with weights, subsets and endpoints, and every policy —
 * like `istioctl x describe`. Nothing is sent.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { createMesh } from '../../create-mesh.ts';
import type { MeshOptions } from '../../mesh-options.ts';
import type { Explanation, ExplainedTarget } from '../../outbound/explain.ts';
import type { Snapshot } from '../../routing/compile.ts';
import { ClusterTlsPlanner, describeDecision } from '../../outbound/tls-decision.ts';
import { type CompiledRoute, describeRoute, type VirtualHost } from '../../routing/route-table.ts';
import { checkNamespaceOption, out, parseLabels, UsageError } from '../args.ts';
import { loadInputs, refuseInvalidConfig, reportAdvisories } from '../input.ts';
import { readMeshConfigFile } from '../mesh-config-file.ts';
import { OUTPUT_HELP, OUTPUT_OPTION, outputFormat, printDocument } from '../output.ts';
import { destinationView, routeView } from '../../routing/views.ts';
import { passthroughDestinations, printPassthrough } from './explain-passthrough.ts';
import { explainInboundCommand, INBOUND_HELP, INBOUND_OPTIONS, strayInboundOptions } from './explain-inbound.ts';
import { GRPC_5XX, GRPC_NO_CLUSTER, GRPC_NO_ENDPOINTS, GRPC_OUTCOMES, type GrpcTarget, grpcHeaders, grpcMethod, grpcRouteLines, grpcRouteView, isGrpcTarget, parseGrpcTarget } from './explain-grpc.ts';

export const explainHelp = `Usage: meshlet explain <file, dir or ->... --service <name> [options] <url>
       meshlet explain <file, dir or ->... --service <name> [options] grpc://<host>:<port>/<package.Service>/<Method>
       meshlet explain <file, dir or ->... --service <name> --inbound [options] <path, url or grpc://…>

Explains how one request from a workload would be handled under a config, as mesh.explain()
does in code and 'istioctl x describe' does for a pod: the virtual host, the rules tried
before the one that matched, the matched rule, the destinations with their weights, subsets
and endpoints, and every policy that applies (timeout, retries, fault, mirrors, load
balancing, connection pool, outlier detection); under a Sidecar, which one applies and why a
host is outside its egress hosts. Nothing is sent. '-' reads the config from
standard input. Exits 0 whatever the outcome (a 404 NR is an answer), 1 when the config has
errors, 2 on a usage mistake.

A grpc:// target explains a gRPC call (mesh.grpc.client): a POST to /package.Service/Method
with content-type application/grpc, -H giving its metadata; the output says what the policies
mean for it — the gRPC statuses the retry policy retries, the route timeout next to the
caller's deadline, fault aborts and mesh-made failures as the gRPC statuses the caller gets.
With --inbound, a grpc:// target is judged as the server receives the call (path
/package.Service/Method, method POST), with the verdict as a gRPC status.

Options:
  -s, --service <name>             the calling workload's service (required)
  -n, --namespace <ns>             its namespace (default: default)
  -l, --labels <k=v,...>           its labels (repeatable)
      --locality <r/z/s>           its locality (locality load balancing)
  -X, --request <method>           the request method (default: GET; gRPC: always POST)
  -H, --header <'name: value'>     a request header, or gRPC metadata (repeatable)
      --mesh-config <file>         Istio's MeshConfig: the istio ConfigMap's YAML (kubectl get
                                   configmap istio -n istio-system -o yaml) or its data.mesh; its
                                   settings apply as createMesh({ meshConfig }) applies them
                                   (localityLbSetting, outboundTrafficPolicy, rootNamespace,
                                   trustDomain, pathNormalization, extensionProviders,
                                   defaultHttpRetryPolicy); flags win
      --root-namespace <ns>        the mesh's root namespace: its selector-less Sidecar applies to
                                   namespaces without one, its policies mesh-wide (default: istio-system)
${OUTPUT_HELP}

${INBOUND_HELP}
Examples:
  meshlet explain examples/bookinfo --service productpage -l version=v1 \\
    -H 'end-user: jason' http://reviews:9080/reviews/1
  meshlet explain ./mesh --service productpage -H 'x-group: beta' \\
    grpc://reviews:9090/reviews.Reviews/GetReview
  meshlet explain ./mesh --service httpbin -n foo -l app=httpbin --inbound -X GET \\
    --principal cluster.local/ns/foo/sa/sleep --source-ip 10.0.0.1 \\
    -H 'authorization: Bearer eyJhbGciOi…' /admin
`;

/** Parses repeated `-H 'name: value'` into a header object (repeated names become lists). */
function parseHeaders(values: readonly string[] | undefined): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = Object.create(null);
  for (const h of values ?? []) {
    const colon = h.indexOf(':');
    const name = colon < 0 ? '' : h.slice(0, colon).trim().toLowerCase();
    if (name === '' || !/^[!#$%&'*+.^`|~\w-]+$/.test(name)) throw new UsageError(`--header: expected 'name: value', got "${h}"`);
    const value = h.slice(colon + 1).trim();
    const prev = headers[name];
    headers[name] = prev === undefined ? value : [...(Array.isArray(prev) ? prev : [prev]), value];
  }
  return headers;
}

function parseUrl(text: string): URL {
  let u: URL | undefined;
  if (/^https?:\/\//i.test(text)) {
    try {
      u = new URL(text);
    } catch {}
  }
  if (u === undefined) throw new UsageError(`meshlet explain: the last argument must be the request URL (http://host[:port]/path), got "${text}"`);
  return u;
}

/** What the explanation's matched rule and virtual host are in the snapshot (the same objects explain matched). */
function compiledParts(snap: Snapshot, e: Explanation): { vhost: VirtualHost | undefined; route: CompiledRoute | undefined } {
  const egressProxy = snap.sidecar?.outboundTrafficPolicy?.egressProxy?.route;
  if (e.virtualHost === 'allow_any' && egressProxy !== undefined && !snap.routes.virtualHosts.some((v) => v.name === 'allow_any')) {
    // The Sidecar's egressProxy route: Istio's allow_any virtual host (any host outside the mesh).
    return { vhost: Object.freeze({ name: 'allow_any', host: '*', port: undefined, service: undefined, virtualService: undefined, routes: [egressProxy], domains: ['*'] }), route: egressProxy };
  }
  const vhost = e.virtualHost === undefined ? undefined : snap.routes.virtualHosts.find((v) => v.name === e.virtualHost);
  // explain() tries the rules in order and lists every one before the match as skipped.
  const route = e.route === undefined ? undefined : vhost?.routes[e.skipped.length];
  if (e.route !== undefined && (route === undefined || describeRoute(route) !== e.route)) {
    throw new Error(`meshlet explain: the matched rule of virtual host ${e.virtualHost} is not rule ${e.skipped.length} of the snapshot`);
  }
  return { vhost, route };
}

function destinations(route: CompiledRoute | undefined, e: Explanation, resources: Snapshot['resources'], scheme: string, rootNamespace: string, trustDomain: string, mc: MeshOptions | undefined) {
  if (route === undefined) return [];
  const total = route.cumulativeWeights[route.cumulativeWeights.length - 1] ?? 0;
  // The TLS each endpoint would get, for a workload that has a certificate (the CLI has none).
  const tlsContext = { resources, rootNamespace, trustDomain, trustDomainAliases: mc?.trustDomainAliases ?? [], enableAutoMtls: mc?.enableAutoMtls ?? true, hasIdentity: true };
  return route.targets.map((t, i) => {
    const x = e.targets[i] as ExplainedTarget;
    const planner = t.cluster === undefined ? undefined : new ClusterTlsPlanner(t.cluster, tlsContext);
    const tlsOf = (key: string): string | null => {
      if (planner === undefined) return null;
      const d = planner.decide(t.cluster?.endpoints.find((ep) => ep.key === key));
      if (scheme === 'https' && d.mode !== 'SIMPLE' && d.mode !== 'MUTUAL') return "the app's own TLS (https:// URL; the mesh adds no mTLS)";
      return describeDecision(d);
    };
    return {
      tls: planner === undefined || !t.cluster?.settings.passthrough ? null : tlsOf(''),
      ...destinationView(t, total),
      destinationRules: t.cluster?.destinationRule?.rules.map((r) => r.ref) ?? [],
      trafficPolicy: t.cluster?.policy ?? null,
      loadBalancer: x.loadBalancer ?? null,
      connectionPool: x.connectionPool ?? null,
      outlierDetection: x.outlierDetection ?? null,
      retryBudget: x.retryBudget ?? null,
      network: x.network ?? null,
      endpoints: x.endpoints.map((ep) => ({ endpoint: ep.endpoint, labels: { ...ep.labels }, locality: ep.locality, tls: tlsOf(ep.endpoint), gateway: ep.gateway ?? null })),
    };
  });
}

const OUTCOMES: Record<Explanation['outcome'], string> = {
  routed: 'routed',
  'no-route': 'no rule matches: the caller gets 404 (NR)',
  passthrough: 'the host is not in the mesh (or the Sidecar leaves it out): the request passes through to its own address (outboundTrafficPolicy ALLOW_ANY)',
  'registry-only': 'the host is not in the mesh (or the Sidecar leaves it out) and outboundTrafficPolicy is REGISTRY_ONLY: the caller gets 502 (BlackHole)',
  redirect: 'redirected',
  'direct-response': 'answered by the mesh (direct response)',
  'invalid-path': 'the path cannot be normalized (MeshConfig pathNormalization): the caller gets 400',
};

/** The applied Sidecar and the outboundTrafficPolicy, in the JSON/YAML document. */
function scopeView(e: Explanation): { sidecar: string | null; outOfScope: string | null; notInMesh: string | null; outboundTrafficPolicy: string | null } {
  return { sidecar: e.sidecar ?? null, outOfScope: e.scope ?? null, notInMesh: e.notInMesh ?? null, outboundTrafficPolicy: e.outboundTrafficPolicy ?? null };
}

/** The applied Sidecar, why a host is outside its egress, and whose outboundTrafficPolicy decided, in the text output. */
function scopeLines(e: Explanation): void {
  if (e.sidecar !== undefined) out(`Sidecar:       ${e.sidecar}`);
  if (e.scope !== undefined) out(`Out of scope:  ${e.scope}`);
  if (e.notInMesh !== undefined) out(`Not in mesh:   ${e.notInMesh}`);
  if (e.outboundTrafficPolicy !== undefined) out(`Unknown hosts: outboundTrafficPolicy ${e.outboundTrafficPolicy}`);
}

/** Runs the command; returns the exit code. */
export async function explainCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      service: { type: 'string', short: 's' },
      namespace: { type: 'string', short: 'n' },
      labels: { type: 'string', short: 'l', multiple: true },
      locality: { type: 'string' },
      request: { type: 'string', short: 'X' },
      header: { type: 'string', short: 'H', multiple: true },
      'mesh-config': { type: 'string' },
      ...INBOUND_OPTIONS,
      ...OUTPUT_OPTION,
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    out(explainHelp);
    return 0;
  }
  const format = outputFormat(values.output);
  if (positionals.length < 2) throw new UsageError(`meshlet explain: give the config (files, directories or -) and then the request ${values.inbound === true ? 'target (/path or URL)' : 'URL'}`);
  if (values.service === undefined) throw new UsageError('meshlet explain: --service is required');
  checkNamespaceOption(values.namespace);
  const last = positionals[positionals.length - 1]!;
  const grpcTarget = isGrpcTarget(last) ? parseGrpcTarget(last) : undefined;
  const meshConfig = await readMeshConfigFile('explain', values['mesh-config']);
  if (values.inbound === true) {
    if (values.locality !== undefined) throw new UsageError('meshlet explain: --locality is for calls the workload makes; --inbound judges requests it receives');
    const method = grpcTarget === undefined ? (values.request ?? 'GET') : grpcMethod(values.request);
    if (!/^[!#$%&'*+.^`|~\w-]+$/.test(method)) throw new UsageError(`--request: not an HTTP method: "${method}"`);
    const headers = parseHeaders(values.header);
    return explainInboundCommand({
      values: { ...values, service: values.service, namespace: values.namespace ?? 'default' },
      labels: parseLabels(values.labels),
      method,
      headers: grpcTarget === undefined ? headers : grpcHeaders(headers),
      configs: positionals.slice(0, -1),
      target: grpcTarget === undefined ? last : grpcTarget.url.href,
      format,
      grpc: grpcTarget !== undefined,
      meshConfig: meshConfig?.options,
    });
  }
  // --root-namespace is listed with the inbound options, and applies to calls too (the Sidecar, mesh-wide policies).
  const stray = strayInboundOptions(values).filter((k) => k !== 'root-namespace');
  if (stray.length > 0) throw new UsageError(`meshlet explain: --${stray.join(', --')} ${stray.length === 1 ? 'is' : 'are'} for --inbound`);
  const url = grpcTarget?.url ?? parseUrl(last);
  const method = grpcTarget === undefined ? (values.request ?? 'GET') : grpcMethod(values.request);
  if (!/^[!#$%&'*+.^`|~\w-]+$/.test(method)) throw new UsageError(`--request: not an HTTP method: "${method}"`);
  const headers = grpcTarget === undefined ? parseHeaders(values.header) : grpcHeaders(parseHeaders(values.header));
  const namespace = values.namespace ?? 'default';
  const labels = parseLabels(values.labels);
  const locality = values.locality ?? '';
  const rootNamespace = values['root-namespace'] ?? meshConfig?.options.rootNamespace ?? 'istio-system';
  const trustDomain = meshConfig?.options.trustDomain ?? 'cluster.local';
  const loaded = await loadInputs(positionals.slice(0, -1), { defaultNamespace: namespace });
  const { ok, issues, resources } = loaded;
  if (!ok) return refuseInvalidConfig(issues.ofLevel('error'));
  // Warnings (what meshlet does not apply) and findings are advisory (a mesh applies this config, as Istio does): report them, then answer.
  reportAdvisories(loaded);

  // mesh.explain() reads the data plane's per-cluster state (pickers, pool limits, outlier
  // detection), so the explanation comes from a real mesh over the same snapshot: not watching
  // files, never sending, closed before printing. (The config was validated and analysed above.)
  // Once clusters can describe their policies without live state, a snapshot will do.
  const mesh = await createMesh({
    service: values.service,
    namespace,
    labels,
    locality,
    rootNamespace,
    config: resources,
    analysis: 'off',
    watch: false,
    logger: { warn: () => undefined, info: () => undefined },
    ...(meshConfig === undefined ? {} : { meshConfig: meshConfig.text }),
  });
  let e: Explanation;
  let snap: Snapshot;
  try {
    snap = mesh.snapshot;
    e = mesh.explain({ url: url.href, method, headers });
  } finally {
    await mesh.close();
  }
  const { vhost, route } = compiledParts(snap, e);
  const skipped = (vhost?.routes.slice(0, e.skipped.length) ?? []).map((r) => ({ name: r.name, index: r.virtualService === undefined ? null : r.index, match: r.matchers.map(String), text: describeRoute(r) }));
  const dests = e.outcome === 'passthrough' ? passthroughDestinations(e) : destinations(route, e, snap.resources, url.protocol.slice(0, -1), rootNamespace, trustDomain, meshConfig?.options);
  if (grpcTarget !== undefined) return printGrpc({ grpcTarget, format, headers, values: { service: values.service, namespace, labels, locality }, snap, e, vhost, route, skipped, dests });

  if (format !== undefined) {
    printDocument(format, {
      request: { method, url: url.href, headers: { ...headers } },
      workload: { service: values.service, namespace, labels, locality },
      configVersion: snap.version,
      outcome: e.outcome,
      ...scopeView(e),
      virtualHost: vhost === undefined ? null : { name: vhost.name, host: vhost.host, port: vhost.port ?? null, virtualService: vhost.virtualService ?? null, domains: [...vhost.domains] },
      skipped,
      route: route === undefined ? null : routeView(route),
      destinations: dests,
      ...(e.rateLimits === undefined ? {} : { rateLimits: e.rateLimits }),
    });
    return 0;
  }

  const labelText = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
  out(`Request:       ${method} ${url.href}`);
  for (const [k, v] of Object.entries(headers)) for (const one of Array.isArray(v) ? v : [v]) out(`               ${k}: ${one}`);
  out(`From:          ${values.service}.${namespace}${labelText ? ` {${labelText}}` : ''}${locality ? ` in ${locality}` : ''} (config version ${snap.version})`);
  out(`Outcome:       ${OUTCOMES[e.outcome]}`);
  scopeLines(e);
  for (const r of e.rateLimits ?? []) out(`Rate limit:    ${r}`);
  if (vhost === undefined) return printPassthrough(dests);
  out(`Virtual host:  ${vhost.name} (${vhost.virtualService ?? 'no VirtualService: default route'})`);
  for (const s of skipped) out(`Not matched:   ${s.name}: ${s.match.join(' OR ')} (the request meets no match block of this rule)`);
  if (route === undefined) {
    if (vhost.routes.length === 0) out('               (no rule of the VirtualService applies to this workload)');
    return 0;
  }
  const view = routeView(route);
  out(`Matched rule:  ${route.name}${view.index === null ? '' : ` (${route.virtualService}, spec.http[${view.index}])`}: ${view.match.length === 0 ? 'any request' : view.match.join(' OR ')}`);
  if (view.redirect !== null) {
    const { redirectCode, ...to } = view.redirect;
    out(`Redirect:      ${redirectCode} ${Object.entries(to).map(([k, v]) => `${k} ${String(v)}`).join(', ')}`);
  }
  if (view.directResponse !== null) out(`Response:      ${view.directResponse.status}${view.directResponse.body === null ? '' : ` ${JSON.stringify(view.directResponse.body)}`}`);
  if (route.action === 'forward') {
    out(`Timeout:       ${e.timeout}`);
    out(`Retries:       ${e.retry}`);
  }
  out(`Fault:         ${e.fault ?? 'none'}`);
  out(`Mirrors:       ${e.mirrors.length === 0 ? 'none' : e.mirrors.join(', ')}`);
  if (dests.length > 0) out('Destinations:');
  for (const d of dests) {
    out(`  ${d.host}:${d.port}${d.subset === null ? '' : ` subset ${d.subset}`}  ${d.percent}%  ${d.cluster ?? `MISSING: ${d.missing} (503 NC)`}`);
    if (d.cluster === null) continue;
    out(`    DestinationRule:    ${d.destinationRules.length === 0 ? 'none' : d.destinationRules.map((r) => r.replace(/^DestinationRule /, '')).join(', ')}`);
    out(`    load balancing:     ${d.loadBalancer}`);
    out(`    connection pool:    ${d.connectionPool}`);
    if (d.retryBudget !== null) out(`    retry budget:       ${d.retryBudget}`);
    out(`    outlier detection:  ${d.outlierDetection?.replace(/^outlier detection: /, '') ?? 'none'}`);
    if (d.tls !== null) out(`    tls:                ${d.tls}`);
    if (d.network !== null) out(`    network:            ${d.network.replace(/^multi-network: /, '')}`);
    out(`    endpoints:${d.endpoints.length === 0 ? '          none (503 UH)' : ''}`);
    for (const ep of d.endpoints) {
      const epLabels = Object.entries(ep.labels).map(([k, v]) => `${k}=${v}`).join(',');
      out(`      ${ep.endpoint}${epLabels ? `  ${epLabels}` : ''}${ep.locality ? `  ${ep.locality}` : ''}`);
      if (ep.gateway !== null) out(`        via: ${ep.gateway}`);
      if (ep.tls !== null) out(`        tls: ${ep.tls}`);
    }
  }
  return 0;
}

/** What {@link printGrpc} prints. */
interface GrpcExplained {
  readonly grpcTarget: GrpcTarget;
  readonly format: ReturnType<typeof outputFormat>;
  readonly headers: Record<string, string | string[]>;
  readonly values: { service: string; namespace: string; labels: Record<string, string>; locality: string };
  readonly snap: Snapshot;
  readonly e: Explanation;
  readonly vhost: VirtualHost | undefined;
  readonly route: CompiledRoute | undefined;
  readonly skipped: { name: string; match: string[] }[];
  readonly dests: ReturnType<typeof destinations>;
}

/** Prints the explanation of a gRPC call (text, or the document with a `grpc` part). */
function printGrpc(x: GrpcExplained): number {
  const { grpcTarget: t, headers, values, snap, e, vhost, route, skipped, dests } = x;
  const metadata: Record<string, string | string[]> = Object.create(null);
  for (const [k, v] of Object.entries(headers)) if (k !== 'content-type' && k !== 'te') metadata[k] = v;
  if (x.format !== undefined) {
    printDocument(x.format, {
      request: { grpc: `${t.service}/${t.method}`, target: t.url.host, method: 'POST', path: t.url.pathname, metadata: { ...metadata } },
      workload: values,
      configVersion: snap.version,
      outcome: e.outcome,
      ...scopeView(e),
      virtualHost: vhost === undefined ? null : { name: vhost.name, host: vhost.host, port: vhost.port ?? null, virtualService: vhost.virtualService ?? null, domains: [...vhost.domains] },
      skipped,
      route: route === undefined ? null : routeView(route),
      grpc: grpcRouteView(route, t),
      destinations: dests,
    });
    return 0;
  }
  const labelText = Object.entries(values.labels).map(([k, v]) => `${k}=${v}`).join(',');
  out(`gRPC call:     ${t.service}/${t.method} on ${t.url.host} (POST ${t.url.pathname})`);
  for (const [k, v] of Object.entries(metadata)) for (const one of Array.isArray(v) ? v : [v]) out(`               ${k}: ${one}`);
  out(`From:          ${values.service}.${values.namespace}${labelText ? ` {${labelText}}` : ''}${values.locality ? ` in ${values.locality}` : ''} (config version ${snap.version})`);
  out(`Outcome:       ${GRPC_OUTCOMES[e.outcome]}`);
  scopeLines(e);
  for (const r of e.rateLimits ?? []) out(`Rate limit:    ${r}`);
  if (vhost === undefined) return printPassthrough(dests);
  out(`Virtual host:  ${vhost.name} (${vhost.virtualService ?? 'no VirtualService: default route'})`);
  for (const s of skipped) out(`Not matched:   ${s.name}: ${s.match.join(' OR ')} (the call meets no match block of this rule)`);
  if (route === undefined) return 0;
  const view = routeView(route);
  out(`Matched rule:  ${route.name}${view.index === null ? '' : ` (${route.virtualService}, spec.http[${view.index}])`}: ${view.match.length === 0 ? 'any request' : view.match.join(' OR ')}`);
  for (const [label, text] of grpcRouteLines(route)) out(`${`${label}:`.padEnd(15)}${text}`);
  out(`Mirrors:       ${e.mirrors.length === 0 ? 'none' : e.mirrors.join(', ')}`);
  if (dests.length > 0) out('Destinations:');
  for (const d of dests) {
    out(`  ${d.host}:${d.port}${d.subset === null ? '' : ` subset ${d.subset}`}  ${d.percent}%  ${d.cluster ?? `MISSING: ${d.missing} (${GRPC_NO_CLUSTER})`}`);
    if (d.cluster === null) continue;
    out(`    DestinationRule:    ${d.destinationRules.length === 0 ? 'none' : d.destinationRules.map((r) => r.replace(/^DestinationRule /, '')).join(', ')}`);
    out(`    load balancing:     ${d.loadBalancer}`);
    out(`    connection pool:    ${d.connectionPool} (overflow: UNAVAILABLE, UO)`);
    if (d.retryBudget !== null) out(`    retry budget:       ${d.retryBudget}`);
    out(`    outlier detection:  ${d.outlierDetection?.replace(/^outlier detection: /, '') ?? 'none'}${d.outlierDetection === null ? '' : ` (5xx as Envoy maps a gRPC status: ${GRPC_5XX.join(', ')})`}`);
    if (d.tls !== null) out(`    tls:                ${d.tls}`);
    out(`    endpoints:${d.endpoints.length === 0 ? `          none (${GRPC_NO_ENDPOINTS})` : ''}`);
    for (const ep of d.endpoints) {
      const epLabels = Object.entries(ep.labels).map(([k, v]) => `${k}=${v}`).join(',');
      out(`      ${ep.endpoint}${epLabels ? `  ${epLabels}` : ''}${ep.locality ? `  ${ep.locality}` : ''}`);
      if (ep.gateway !== null) out(`        via: ${ep.gateway}`);
      if (ep.tls !== null) out(`        tls: ${ep.tls}`);
    }
  }
  return 0;
}
