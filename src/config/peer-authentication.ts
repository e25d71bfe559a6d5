/**
 * The PeerAuthentication that applies to a workload, composed as istiod composes it
 * (`ComposePeerAuthentication`): the oldest mesh-wide policy (root namespace, no selector), the
 * oldest namespace policy (no selector), the oldest workload policy (a selector matching the
 * workload's labels, in its own namespace — selector policies in the root namespace are
 * ignored); each level that sets a mode overrides its parent, `UNSET` inherits, and with nothing
 * set the mode is PERMISSIVE. `portLevelMtls` comes from the workload policy only; an `UNSET`
 * port inherits the workload's mode.
 *
 * Used by the server (what a port accepts), by clients (auto-mTLS: does the destination
 * accept mTLS on that port) and by the cluster compile (multi-network: is a remote endpoint mTLS).
 *
 * @module
 */
import { type AnyResource, byAge, ofKind, type Resource } from './resource.ts';

/**
 * An effective mTLS mode (UNSET resolved).
 * @category Server
 */
export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/** The PeerAuthentication settings in force for one workload. */
export interface EffectivePeerAuthentication {
  /** The workload-wide mode. */
  readonly mode: MtlsMode;
  /** Modes of ports named in the workload policy's `portLevelMtls` (container ports). */
  readonly perPort: ReadonlyMap<number, MtlsMode>;
  /** `namespace/name` of the mesh, namespace and workload policies that were composed (for explanations). */
  readonly policies: { readonly mesh?: string; readonly namespace?: string; readonly workload?: string };
}

/** The workload a PeerAuthentication is composed for. */
export interface PeerAuthenticationTarget {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

type PA = Resource<'PeerAuthentication'>;

function selects(matchLabels: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const k of Object.keys(matchLabels)) {
    if (!Object.hasOwn(labels, k) || labels[k] !== matchLabels[k]) return false;
  }
  return true;
}

function modeOf(m: { mode?: string } | undefined): MtlsMode | undefined {
  const v = m?.mode;
  return v === 'STRICT' || v === 'PERMISSIVE' || v === 'DISABLE' ? v : undefined;
}

const nameOf = (r: PA): string => `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;

/** Composes the PeerAuthentication of `workload` from every PeerAuthentication in `resources`. */
export function composePeerAuthentication(resources: readonly AnyResource[], workload: PeerAuthenticationTarget, rootNamespace: string): EffectivePeerAuthentication {
  let mesh: PA | undefined;
  let ns: PA | undefined;
  let wl: PA | undefined;
  // Oldest first: the first of each level found is the one that wins.
  for (const r of ofKind(resources, 'PeerAuthentication').sort(byAge)) {
    const rns = r.metadata.namespace ?? 'default';
    const match = r.spec.selector?.matchLabels;
    if (match === undefined || Object.keys(match).length === 0) {
      if (rns === rootNamespace) mesh ??= r;
      else if (rns === workload.namespace) ns ??= r;
    } else if (rns !== rootNamespace && rns === workload.namespace && selects(match, workload.labels)) {
      wl ??= r;
    }
  }
  let mode: MtlsMode = 'PERMISSIVE';
  mode = modeOf(mesh?.spec.mtls) ?? mode;
  mode = modeOf(ns?.spec.mtls) ?? mode;
  mode = modeOf(wl?.spec.mtls) ?? mode;
  const perPort = new Map<number, MtlsMode>();
  for (const [port, m] of Object.entries(wl?.spec.portLevelMtls ?? {})) perPort.set(Number(port), modeOf(m) ?? mode);
  const policies: { mesh?: string; namespace?: string; workload?: string } = {};
  if (mesh !== undefined) policies.mesh = nameOf(mesh);
  if (ns !== undefined) policies.namespace = nameOf(ns);
  if (wl !== undefined) policies.workload = nameOf(wl);
  return { mode, perPort, policies };
}

/** The mode a port accepts: its `portLevelMtls` entry, else the workload's mode. */
export function mtlsModeForPort(pa: EffectivePeerAuthentication, port: number): MtlsMode {
  return pa.perPort.get(port) ?? pa.mode;
}
