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
import { readMeshNetworks } from '../config/mesh-networks.ts';
import { applyMeshConfig, meshConfigOf, meshConfigProblems } from '../mesh-config-option.ts';
import { usableExtensionProviders } from '../inbound/extension-providers.ts';
import type { MeshOptions } from '../mesh-options.ts';
import { UsageError } from './args.ts';

/** The MeshConfig's text and the mesh options it gives (only the settings it sets). */
export interface MeshConfigFile {
  readonly text: string;
  readonly options: MeshOptions;
  /** The MeshConfig itself (the ConfigMap's data.mesh, parsed): what a control plane pushes. */
  readonly meshConfig: Record<string, unknown>;
}

/** Reads and checks `file`; undefined without the flag. A missing file or a bad setting is a usage mistake naming the file. */
export async function readMeshConfigFile(command: string, file: string | undefined, notes = true): Promise<MeshConfigFile | undefined> {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`meshlet ${command}: --mesh-config ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  let options: MeshOptions;
  // What the MeshConfig sets that meshlet does not apply, or narrows visibility, is said as a mesh says it.
  const note = (m: string): void => void (notes && process.stderr.write(`meshlet ${command}: --mesh-config ${file}: ${m.replace(/^createMesh: (meshConfig: )?/, '')}\n`));
  try {
    options = applyMeshConfig({ service: command, config: [], meshConfig: text }, note, note);
  } catch (err) {
    throw new UsageError(`meshlet ${command}: --mesh-config ${file}: ${(err as Error).message.replace(/^createMesh: /, '')}`);
  }
  const problems = meshConfigProblems(options);
  // A provider istiod only warns about: named, and left out (meshes leave it out too).
  const providers = usableExtensionProviders(options.extensionProviders);
  for (const w of providers.warnings) note(w);
  if (providers.warnings.length > 0 && providers.providers !== undefined) options = { ...options, extensionProviders: providers.providers as MeshOptions['extensionProviders'] };
  // The ConfigMap's data.meshNetworks, checked as createMesh({ meshNetworks }) checks it.
  if (options.meshNetworks !== undefined) {
    try {
      readMeshNetworks(options.meshNetworks, '`data.meshNetworks`');
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length > 0) throw new UsageError(`meshlet ${command}: --mesh-config ${file}: ${problems.join('; ')}`);
  return { text, options, meshConfig: meshConfigOf(text) };
}

/** The names of the MeshConfig's `extensionProviders`, undefined when it lists none. */
export function extensionProviderNames(o: MeshOptions | undefined): string[] | undefined {
  const list = o?.extensionProviders;
  if (list === undefined) return undefined;
  return list.map((p) => (p as { name?: unknown }).name).filter((n): n is string => typeof n === 'string');
}
