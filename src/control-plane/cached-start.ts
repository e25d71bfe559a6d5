/**
 * A start from the last-known-good cache (`cache.ts`): the cached config and endpoints are
 * validated again, and the control plane's MeshConfig cached with them is taken as a pushed one
 * is — unless one came from the control plane already (a first config it rejected) — so the
 * cached config runs under the MeshConfig it ran under before (its REGISTRY_ONLY, its retry
 * policy, its connect timeout, its start-time settings). A cache whose config or MeshConfig is
 * not valid is not used (fail closed: a config without the REGISTRY_ONLY it ran under is not that
 * config).
 *
 * @module
 */
import type { Snapshot } from '../routing/compile.ts';
import type { CachedState } from './cache.ts';
import type { ControlPlaneSourceOptions } from './source-types.ts';
import { checkConfig, checkWorkloads, compileStateAsync, type GoodState, reasons } from './state.ts';

/** The state and first snapshot of a start from `c` (read from `file`); undefined, with a warning, when it cannot be used. */
export async function startFromCache(c: CachedState, file: string, o: ControlPlaneSourceOptions): Promise<{ state: GoodState; snapshot: Snapshot } | undefined> {
  const check = { defaultNamespace: o.workload.namespace, analysis: o.analysis };
  const config = checkConfig(c.resources, `cache ${file} config`, check);
  const workloads = checkWorkloads(c.workloads, `cache ${file} workloads`, check);
  if (!config.ok || !workloads.ok) {
    o.logger.warn(`meshlet: ignoring the cached config, it is not valid:\n  ${[...reasons(config.issues), ...reasons(workloads.issues)].join('\n  ')}`);
    return undefined;
  }
  const mc = o.meshConfig;
  if (c.meshConfig !== undefined && mc !== undefined && mc.event === undefined) {
    mc.accept(c.meshConfig, `cached in ${file}`);
    if (mc.event !== c.meshConfig) {
      o.logger.warn(`meshlet: ignoring the cached config ${file}: the control plane's MeshConfig cached with it (version ${c.meshConfig.version}) is not valid`);
      return undefined;
    }
  }
  const state: GoodState = {
    configVersion: c.configVersion,
    endpointsVersion: c.endpointsVersion,
    resources: config.value,
    workloads: workloads.value,
    wireResources: c.resources,
    wireWorkloads: c.workloads,
    findings: config.findings,
  };
  return { state, snapshot: await compileStateAsync(state, o.workload, o.compileSettings ?? o, o.gatewayNames) };
}
