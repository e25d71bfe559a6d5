/**
 * What every identity source (files, a development CA, the control plane's CA) is to the mesh:
 * something started before `createMesh` resolves that pushes credentials into the mesh's
 * {@link CredentialHolder} and is stopped by `mesh.close()`.
 *
 * @module
 */

/**
 * Where a mesh's credentials come from (`MeshDiagnostics.identity.source`).
 * @category Identity
 */
export type IdentitySourceKind = 'files' | 'dev-ca' | 'control-plane';

/**
 * A running identity source.
 * @category Identity
 */
export interface IdentitySource {
  readonly kind: IdentitySourceKind;
  /** Stops watching and renewing; the credentials already installed stay in the holder. */
  close(): Promise<void>;
}

/** Where a source reports what it does (the mesh's logger). */
export interface IdentityLog {
  warn(message: string): void;
  info?(message: string): void;
}

/** `2026-12-03T01:02:03.000Z`. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}
