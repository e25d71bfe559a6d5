/**
 * `meshlet routes <config> --service s [--namespace ns] [--labels k=v]`: prints the compiled
 * route table of one workload and its clusters with their compiled settings, like
 * `istioctl proxy-config routes` and `clusters`. From the snapshot alone: it builds no
 * data-plane state (a test holds this module's imports clear of `src/outbound/`).
 *
 * @module
 */
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { MeshNetworksInput } from '../../config/mesh-networks.ts';
import type { NetworkSettings } from '../../config/network-topology.ts';
import { networkSettings } from '../../mesh-network-options.ts';
import { readMeshConfigFile } from '../mesh-config-file.ts';
import { compileSnapshot } from '../../routing/compile.ts';
import { wholeSecondsKeepalive } from '../../routing/cluster-settings.ts';
import { checkNamespaceOption, out, parseLabels, UsageError } from '../args.ts';
import { loadInputs, refuseInvalidConfig, reportAdvisories } from '../input.ts';
import { OUTPUT_HELP, OUTPUT_OPTION, outputFormat, printDocument } from '../output.ts';
import { clusterSettingsLines, clusterView, sidecarView, virtualHostView } from '../../routing/views.ts';

export const routesHelp = `Usage: meshlet routes <file, dir or ->... --service <name> [options]

Prints the route table meshlet compiles for one workload: every virtual host (service port)
it can call, the names it can use for it, each rule in order (match → destinations with
weights, clusters and endpoint counts) and the policies that apply, then every cluster with its
endpoints and compiled settings (load balancer, connection pool, retries, outlier detection,
TLS as declared). When a Sidecar applies to the workload, its egress listeners and
outboundTrafficPolicy come first, and only what it imports is listed. '-' reads standard input.
Exits 1 when the config has errors, 2 on a usage mistake.

Options:
  -s, --service <name>             the workload's service (required)
  -n, --namespace <ns>             the workload's namespace (default: default)
  -l, --labels <k=v,...>           the workload's labels (repeatable)
      --host <host>                show only virtual hosts and clusters whose name contains this text
      --locality <r/z/s>           the workload's locality (locality load balancing)
      --root-namespace <ns>        the mesh's root namespace: its selector-less Sidecar applies to
                                   namespaces without one (default: istio-system)
      --mesh-config <file>         Istio's MeshConfig: the istio ConfigMap's YAML (kubectl get
                                   configmap istio -n istio-system -o yaml) or its data.mesh: its
                                   rootNamespace, localityLbSetting and defaultHttpRetryPolicy
                                   apply (flags win), and the ConfigMap's data.meshNetworks
      --network <name>             the workload's network (default: its topology.istio.io/network
                                   label): endpoints on other networks with an east-west gateway
                                   are shown as that gateway
      --mesh-networks <file>       Istio's MeshNetworks (YAML): networks, their endpoints
                                   (fromCidr, fromRegistry) and gateways
      --resolve-gateways           resolve east-west gateways given by host name (a MeshNetworks
                                   address, a LoadBalancer Service's status hostname) with this
                                   machine's resolver and show their addresses; without it they
                                   are listed unresolved (a mesh resolves them at run time)
${OUTPUT_HELP}
`;

/** Runs the command; returns the exit code. */
export async function routesCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      service: { type: 'string', short: 's' },
      namespace: { type: 'string', short: 'n' },
      labels: { type: 'string', short: 'l', multiple: true },
      host: { type: 'string' },
      locality: { type: 'string' },
      'root-namespace': { type: 'string' },
      'mesh-config': { type: 'string' },
      network: { type: 'string' },
      'mesh-networks': { type: 'string' },
      'resolve-gateways': { type: 'boolean' },
      ...OUTPUT_OPTION,
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    out(routesHelp);
    return 0;
  }
  const format = outputFormat(values.output);
  if (positionals.length === 0) throw new UsageError('meshlet routes: name at least one config file or directory (or - for standard input)');
  if (values.service === undefined) throw new UsageError('meshlet routes: --service is required');
  const namespace = checkNamespaceOption(values.namespace) ?? 'default';
  const labels = parseLabels(values.labels);
  const locality = values.locality ?? '';
  const meshConfig = (await readMeshConfigFile('routes', values['mesh-config']))?.options;
  const loaded = await loadInputs(positionals, { defaultNamespace: namespace });
  const { ok, issues, resources } = loaded;
  if (!ok) return refuseInvalidConfig(issues.ofLevel('error'));
  // Warnings (what meshlet does not apply) and findings are advisory (a mesh applies this config, as Istio does): report them, then answer.
  reportAdvisories(loaded);
  const networks = await routesNetworks(values.network, values['mesh-networks'], meshConfig?.meshNetworks, labels);
  const compile = (n: NetworkSettings) => compileSnapshot(resources, { service: values.service as string, namespace, labels }, { rootNamespace: values['root-namespace'] ?? meshConfig?.rootNamespace ?? 'istio-system', networks: n, defaultHttpRetryPolicy: meshConfig?.defaultHttpRetryPolicy });
  let snap = compile(networks);
  // Gateways by host name: unresolved (a mesh resolves them at run time), or resolved here once.
  const names = values['resolve-gateways'] === true ? await resolveGatewayNames(snap.gatewayHostnames) : undefined;
  if (names !== undefined && names.size > 0) snap = compile({ ...networks, gatewayAddresses: (n) => names.get(n)?.addresses });
  const client = { labels, locality, meshLocality: meshConfig?.localityLbSetting, meshConnectTimeoutMs: meshConfig?.connectTimeoutMs, meshTcpKeepalive: meshConfig?.tcpKeepalive === undefined ? undefined : wholeSecondsKeepalive(meshConfig.tcpKeepalive.timeMs, meshConfig.tcpKeepalive.intervalMs, meshConfig.tcpKeepalive.probes) };
  const shown = (name: string) => values.host === undefined || name.includes(values.host);
  const vhosts = snap.routes.virtualHosts.filter((vh) => shown(vh.name));
  const clusters = [...snap.clusters.values()].filter((c) => shown(c.name));
  if (format !== undefined) {
    printDocument(format, {
      workload: { service: values.service, namespace, labels, locality },
      configVersion: snap.version,
      sidecar: sidecarView(snap.sidecar),
      virtualHosts: vhosts.map(virtualHostView),
      clusters: clusters.map((c) => clusterView(c, client)),
      gatewayHostnames: snap.gatewayHostnames.map((hostname) => ({ hostname, addresses: names?.get(hostname)?.addresses ?? null, error: names?.get(hostname)?.error ?? null })),
    });
    return 0;
  }
  const labelText = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
  out(`Routes for ${values.service}.${namespace}${labelText ? ` {${labelText}}` : ''} (config version ${snap.version})`);
  const sidecar = sidecarView(snap.sidecar);
  if (sidecar !== null) {
    out(`Sidecar ${sidecar.name} scopes what it reaches:`);
    for (const l of sidecar.egress) out(`  egress ${l.port === null ? 'any port' : l.port === 0 ? 'Unix socket (no IP port)' : `port ${l.port}`}: ${l.hosts.join(', ')}`);
    out(`  outboundTrafficPolicy: ${sidecar.outboundTrafficPolicy ?? "none (the mesh's applies)"}${sidecar.egressProxy === null ? '' : ` → egressProxy ${sidecar.egressProxy}`}`);
  }
  if (snap.gatewayHostnames.length > 0) {
    if (names === undefined) out(`East-west gateways by host name, resolved by each mesh at run time (shown here as no gateway; --resolve-gateways resolves them now): ${snap.gatewayHostnames.join(', ')}`);
    else {
      out('East-west gateway host names, resolved now (a mesh resolves them again at run time, for each answer\'s TTL):');
      for (const n of snap.gatewayHostnames) {
        const r = names.get(n);
        out(`  ${n} → ${r === undefined || r.addresses.length === 0 ? `no addresses${r?.error === undefined ? '' : ` (${r.error})`}: no gateway` : r.addresses.join(', ')}`);
      }
    }
  }
  for (const vh of vhosts) {
    out();
    out(`${vh.name}${vh.virtualService ? `  (${vh.virtualService})` : '  (no VirtualService: default route)'}`);
    const short = vh.domains.filter((d) => !d.includes('.') || d.split('.').length <= 2);
    // An external host (www.googleapis.com) has no short names: its own names are shown.
    out(`  reachable as: ${(short.length > 0 ? short : vh.domains).join(', ')}`);
    if (vh.routes.length === 0) out('  (no rule applies to this workload: requests get 404 NR)');
    for (const r of vh.routes) out(`  ${String(r).replace(/\n/g, '\n  ')}`);
  }
  if (clusters.length > 0) {
    out();
    out('Clusters:');
    for (const c of clusters) {
      out(`  ${c.name}: ${c.endpoints.map((e) => (e.gateway === undefined ? e.key : `${e.key} (east-west gateway of ${e.gateway.network} for ${e.gateway.endpoints.join(', ')})`)).join(' ') || '(no endpoints)'}`);
      for (const line of clusterSettingsLines(c, client)) out(`      ${line}`);
    }
  }
  return 0;
}

/** Resolves gateway host names with this machine's resolver (A and AAAA): addresses, or none and why. */
async function resolveGatewayNames(hostnames: readonly string[]): Promise<Map<string, { addresses: string[]; error?: string }>> {
  const out = new Map<string, { addresses: string[]; error?: string }>();
  await Promise.all(
    hostnames.map(async (n) => {
      try {
        const list = await lookup(n, { all: true, family: 0, order: 'verbatim' });
        out.set(n, { addresses: [...new Set(list.map((a) => a.address))].sort() });
      } catch (err) {
        out.set(n, { addresses: [], error: (err as Error).message });
      }
    }),
  );
  return out;
}

/** The network settings of `--network`, `--mesh-networks <file>` (else the `--mesh-config` ConfigMap's) and the workload's labels; a bad file is a usage mistake. */
async function routesNetworks(network: string | undefined, file: string | undefined, fromMeshConfig: MeshNetworksInput | undefined, labels: Readonly<Record<string, string>>): Promise<NetworkSettings> {
  let meshNetworks = fromMeshConfig;
  if (file !== undefined) {
    try {
      meshNetworks = await readFile(file, 'utf8');
    } catch (err) {
      throw new UsageError(`meshlet routes: --mesh-networks ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
  }
  try {
    return networkSettings({ network, meshNetworks, labels });
  } catch (err) {
    throw new UsageError(`meshlet routes: ${file === undefined ? '--mesh-config' : `--mesh-networks ${file}`}: ${(err as Error).message.replace(/^createMesh: `meshNetworks` /, 'MeshNetworks ')}`);
  }
}
