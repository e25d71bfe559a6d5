/**
 * `--mesh-config <file>`: Istio's MeshConfig for a command — the `istio` ConfigMap's YAML
 * (`kubectl get configmap istio -n istio-system -o yaml`) or its `data.mesh` text — read as
 * `createMesh({ meshConfig })` reads it, so a command judges with the settings a workload of that
 * mesh would have (root namespace, trust domain, locality load balancing, unknown-host policy,
 * path normalization, extension providers).
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { applyMeshConfig } from '../mesh-config-option.ts';
import type { MeshOptions } from '../mesh-options.ts';
import { UsageError } from './args.ts';

/** The MeshConfig's text and the mesh options it gives (only the settings it sets). */
export interface MeshConfigFile {
  readonly text: string;
  readonly options: MeshOptions;
}

/** Reads and checks `file`; undefined without the flag. A missing file or a bad setting is a usage mistake naming the file. */
export async function readMeshConfigFile(command: string, file: string | undefined): Promise<MeshConfigFile | undefined> {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`meshlet ${command}: --mesh-config ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  try {
    return { text, options: applyMeshConfig({ service: command, config: [], meshConfig: text }, () => {}) };
  } catch (err) {
    throw new UsageError(`meshlet ${command}: --mesh-config ${file}: ${(err as Error).message.replace(/^createMesh: /, '')}`);
  }
}

/** The names of the MeshConfig's `extensionProviders`, undefined when it lists none. */
export function extensionProviderNames(o: MeshOptions | undefined): string[] | undefined {
  const list = o?.extensionProviders;
  if (list === undefined) return undefined;
  return list.map((p) => (p as { name?: unknown }).name).filter((n): n is string => typeof n === 'string');
}
