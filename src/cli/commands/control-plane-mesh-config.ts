/**
 * `meshlet control-plane --mesh-config <file>`: the file read at start, and watched (from before
 * that read) for changes to push.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import type { MeshNetworksInput } from '../../config/mesh-networks.ts';
import { Reloader } from '../../config/reloader.ts';
import { watchConfigPaths } from '../../config/watch.ts';
import { stderrLogger } from '../../control-plane-server/logger.ts';
import { readMeshConfigFile } from '../mesh-config-file.ts';

/**
 * `--mesh-config <file>`: Istio's MeshConfig (the istio ConfigMap or its data.mesh), checked as
 * `createMesh({ meshConfig })` checks it (a mistake names the file and the field): the control
 * plane's own settings (rootNamespace, trustDomain) and the MeshConfig it pushes to every mesh it
 * feeds, with the ConfigMap's `data.meshNetworks` (checked as `createMesh({ meshNetworks })` checks
 * it); none without the flag.
 */
export async function controlPlaneMeshConfig(file: string | undefined): Promise<{ rootNamespace?: string | undefined; trustDomain?: string | undefined; meshConfig?: Record<string, unknown>; meshNetworks?: MeshNetworksInput | undefined }> {
  const read = await readMeshConfigFile('control-plane', file, false);
  if (read === undefined) return {};
  return { rootNamespace: read.options.rootNamespace, trustDomain: read.options.trustDomain, meshConfig: read.meshConfig, meshNetworks: read.options.meshNetworks };
}

/** Where a watched `--mesh-config` file's changes go: the control plane, once it is up. */
export type MeshConfigTarget = { setMeshConfig(m: Record<string, unknown> | undefined, source?: string, meshNetworks?: MeshNetworksInput): void };

/**
 * Watches the `--mesh-config` file as config files are watched (a ConfigMap's `..data` swap, a
 * replaced file, a half-written one read only once settled and unchanged): a change is read and
 * checked again and, when valid, pushed to every mesh (their compile settings apply at once); an
 * invalid one is logged and the previous one stays. Its rootNamespace and trustDomain (the control
 * plane's own) apply at the next start. Started before the file is first read: a change made while
 * the control plane starts is read again once `attach()` hands it the control plane. Returns what
 * stops watching and `attach`.
 */
export function watchMeshConfigFile(file: string): { stop(): void; attach(cp: MeshConfigTarget): void; readonly missed: boolean } {
  let cp: MeshConfigTarget | undefined;
  /** A change came before the control plane was up. */
  let missed = false;
  const reload = async (current: () => Promise<boolean>): Promise<void> => {
    if (cp === undefined) {
      missed = true;
      return;
    }
    let read: Awaited<ReturnType<typeof readMeshConfigFile>>;
    try {
      read = await readMeshConfigFile('control-plane', file, false);
    } catch (err) {
      // A file still being written reads again once it settles.
      if (await current()) stderrLogger.warn(`${(err as Error).message}; the MeshConfig pushed before stays`);
      return;
    }
    if (read !== undefined && (await current())) cp.setMeshConfig(read.meshConfig, file, read.options.meshNetworks);
  };
  const reloader = new Reloader({
    debounceMs: 100,
    maxDebounceMs: 1000,
    reload: (attempt) => reload(() => attempt.current()),
    onError: (err) => stderrLogger.warn(`--mesh-config ${file}: ${err instanceof Error ? err.message : String(err)}`),
  });
  // A missing file is refused by the first read (exit 2): nothing to watch.
  const watcher = !existsSync(file) ? undefined : watchConfigPaths([file], {
    onEvent: (e) => reloader.event(e),
    onError: (err) => stderrLogger.warn(`--mesh-config ${file}: ${err.message}`),
    onLost: (_root, why) => stderrLogger.warn(`--mesh-config ${file}: lost the watch on it (${why}); the MeshConfig pushed before stays`),
    onRestored: (_root, how) => stderrLogger.info?.(`--mesh-config ${file}: ${how}`),
  });
  return {
    /** A change came before `attach()` (it is read again then). */
    get missed() {
      return missed;
    },
    stop: () => {
      watcher?.close();
      void reloader.close();
    },
    attach: (target) => {
      cp = target;
      // Read again: what the control plane started with may be older than the file now (setMeshConfig pushes only a change).
      if (missed) void reload(async () => true).catch((err: unknown) => stderrLogger.warn(`--mesh-config ${file}: ${err instanceof Error ? err.message : String(err)}`));
    },
  };
}
