/**
 * The MeshConfig a control plane pushes to the meshes it feeds (`meshlet control-plane
 * --mesh-config`), as istiod's `istio` ConfigMap governs every proxy it serves: one
 * `mesh-config` event per stream, after `hello` and before `config` (`{}` without one, so a
 * restart without the file takes back what an earlier run pushed), and again to every stream
 * when it changes — as istiod answers a MeshConfig change with a forced full push
 * (pilot/pkg/bootstrap/server.go `initMeshHandlers`: `ConfigUpdate` with `GlobalUpdate`, `Forced`).
 * Istio's MeshNetworks (the ConfigMap's `data.meshNetworks`), when given, goes in the same event
 * (`meshNetworks`), as istiod's MeshNetworks governs every proxy's gateways; the version covers it.
 * The status shows its version, file and settings (`meshNetworks` among them).
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { meshConfigSettings } from '../config/validate/mesh-config-notice.ts';
import type { MeshConfigEvent, StatusDocument } from '../control-plane/protocol.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import { applyMeshConfig, meshConfigProblems } from '../mesh-config-option.ts';
import { canonicalJson } from './canonical-json.ts';

const noop = (): void => undefined;

/**
 * Throws `InvalidArgumentError` naming the field when a mesh would refuse `meshConfig` (the
 * mapping and checks of `createMesh({ meshConfig })`, which `meshlet control-plane --mesh-config`
 * runs on its file), as istiod refuses a MeshConfig it cannot load (pkg/config/mesh
 * `ApplyMeshConfig`: `agent.ValidateMeshConfig`) and keeps the one it has: a control plane does
 * not push one that every mesh would refuse with a warning of its own.
 */
function check(meshConfig: Readonly<Record<string, unknown>>, who: string): void {
  let problems: string[];
  try {
    problems = meshConfigProblems(applyMeshConfig({ service: 'control-plane', meshConfig }, noop, noop));
  } catch (err) {
    throw new InvalidArgumentError(`${who}: ${(err as Error).message.replace(/^createMesh: /, '')}`);
  }
  if (problems.length > 0) throw new InvalidArgumentError(`${who}: \`meshConfig\` is invalid: ${problems.join('; ')}`);
}

/** What {@link startControlPlane} pushes (see `ControlPlaneOptions.meshConfig`). */
export class MeshConfigPush {
  #event: MeshConfigEvent;
  #given: boolean;

  /**
   * `meshConfig`: the MeshConfig's fields (data.mesh parsed), none for `{}`; `source`: where it was
   * read; `meshNetworks`: Istio's MeshNetworks (data.meshNetworks parsed, checked), sent with it.
   */
  constructor(meshConfig: Readonly<Record<string, unknown>> | undefined, source?: string, meshNetworks?: Readonly<Record<string, unknown>>) {
    this.#given = meshConfig !== undefined || meshNetworks !== undefined;
    this.#event = MeshConfigPush.#make(meshConfig ?? {}, source, meshNetworks, 'startControlPlane');
  }

  static #make(meshConfig: Readonly<Record<string, unknown>>, source: string | undefined, meshNetworks: Readonly<Record<string, unknown>> | undefined, who: string): MeshConfigEvent {
    if (meshConfig === null || typeof meshConfig !== 'object' || Array.isArray(meshConfig)) {
      throw new InvalidArgumentError(`${who}: \`meshConfig\` must be Istio's MeshConfig as an object (the istio ConfigMap's data.mesh, parsed), got ${Array.isArray(meshConfig) ? 'an array' : JSON.stringify(meshConfig)}`);
    }
    if (meshNetworks !== undefined && (meshNetworks === null || typeof meshNetworks !== 'object' || Array.isArray(meshNetworks))) {
      throw new InvalidArgumentError(`${who}: \`meshNetworks\` must be Istio's MeshNetworks as an object ({ networks }), got ${Array.isArray(meshNetworks) ? 'an array' : JSON.stringify(meshNetworks)}`);
    }
    check(meshConfig, who);
    // The version covers both (the same as before for a MeshConfig alone).
    const version = createHash('sha256')
      .update(canonicalJson(meshNetworks === undefined ? meshConfig : { meshConfig, meshNetworks }))
      .digest('hex')
      .slice(0, 16);
    return { version, meshConfig, ...(source === undefined ? {} : { source }), ...(meshNetworks === undefined ? {} : { meshNetworks }) };
  }

  /** The event every stream gets. */
  get event(): MeshConfigEvent {
    return this.#event;
  }

  /** Replaces it (a changed file); true when its content changed (then push it to every stream). Throws for an invalid one, which is not taken. */
  set(meshConfig: Readonly<Record<string, unknown>> | undefined, source?: string, meshNetworks?: Readonly<Record<string, unknown>>): boolean {
    const next = MeshConfigPush.#make(meshConfig ?? {}, source, meshNetworks, 'ControlPlane.setMeshConfig');
    this.#given = meshConfig !== undefined || meshNetworks !== undefined;
    const changed = next.version !== this.#event.version;
    this.#event = next;
    return changed;
  }

  /** The status's `meshConfig`; undefined when none was given. */
  status(): StatusDocument['meshConfig'] {
    if (!this.#given) return undefined;
    const e = this.#event;
    const settings = meshConfigSettings(e.meshConfig as Record<string, unknown>);
    return { version: e.version, ...(e.source === undefined ? {} : { source: e.source }), settings: e.meshNetworks === undefined ? settings : [...settings, 'meshNetworks'] };
  }
}
