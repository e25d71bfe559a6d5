/**
 * `meshlet routes <config> --service s [--namespace ns] [--labels k=v]`: prints the compiled
 * route table of one workload, like `istioctl proxy-config routes`.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../../config/load-config.ts';
import { systemClock, systemRandom } from '../../core/clock.ts';
import { ClusterState } from '../../outbound/cluster-state.ts';
import { compileSnapshot } from '../../routing/compile.ts';
import { out, parseLabels, UsageError } from '../args.ts';

export const routesHelp = `Usage: meshlet routes <file or dir>... --service <name> [options]

Prints the route table meshlet compiles for one workload: every virtual host (service port)
it can call, the names it can use for it, each rule in order (match → destinations with
weights, clusters and endpoint counts) and the policies that apply.

Options:
  -s, --service <name>     the workload's service (required)
  -n, --namespace <ns>     the workload's namespace (default: default)
  -l, --labels <k=v,...>   the workload's labels (repeatable)
      --host <host>        show only virtual hosts whose name contains this text
      --locality <r/z/s>   the workload's locality (locality load balancing)
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
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    out(routesHelp);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('meshlet routes: name at least one config file or directory');
  if (values.service === undefined) throw new UsageError('meshlet routes: --service is required');
  const namespace = values.namespace ?? 'default';
  const labels = parseLabels(values.labels);
  const { ok, issues, resources, findings } = await loadConfig(positionals, { defaultNamespace: namespace });
  if (!ok) {
    for (const i of issues.ofLevel('error')) process.stderr.write(`error   ${String(i)}\n`);
    process.stderr.write('config has errors; run `meshlet validate` for the full report\n');
    return 1;
  }
  // Findings are advisory (a mesh applies this config, as Istio does): say so, then show the routes.
  for (const f of findings) process.stderr.write(`${f.level.padEnd(7)} ${f.code} ${String(f)}\n`);
  const snap = compileSnapshot(resources, { service: values.service, namespace, labels });
  const labelText = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
  out(`Routes for ${values.service}.${namespace}${labelText ? ` {${labelText}}` : ''} (config version ${snap.version})`);
  for (const vh of snap.routes.virtualHosts) {
    if (values.host !== undefined && !vh.name.includes(values.host)) continue;
    out();
    out(`${vh.name}${vh.virtualService ? `  (${vh.virtualService})` : '  (no VirtualService: default route)'}`);
    const short = vh.domains.filter((d) => !d.includes('.') || d.split('.').length <= 2);
    out(`  reachable as: ${short.join(', ')}`);
    if (vh.routes.length === 0) out('  (no rule applies to this workload: requests get 404 NR)');
    for (const r of vh.routes) out(`  ${String(r).replace(/\n/g, '\n  ')}`);
  }
  if (snap.clusters.size > 0) {
    out();
    out('Clusters:');
    for (const c of snap.clusters.values()) {
      if (values.host !== undefined && !c.name.includes(values.host)) continue;
      // The data plane's own per-cluster state prints the policies it would apply.
      const state = new ClusterState(c, { clock: systemClock, random: systemRandom, locality: values.locality ?? '', labels, onOutlierEvent() {} });
      out(`  ${c.name}: ${c.endpoints.map((e) => e.key).join(' ') || '(no endpoints)'}`);
      out(`      lb: ${state.picker}`);
      out(`      pool: ${state.limiter}; retries: ${state.budget}`);
      if (state.detector !== undefined) out(`      ${state.detector}`);
      void state.close();
    }
  }
  return 0;
}
