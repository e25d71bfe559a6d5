/**
 * The content version of a set of resources: a hash of what matters (kind, namespace, name,
 * labels, annotations, spec), stable across processes and replicas, so the same config has the
 * same version everywhere (meshes, control-plane replicas, status).
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { AnyResource } from './resource.ts';

/**
 * A content hash of resources (kind, namespace, name, spec), stable across processes.
 * @category Snapshot
 */
export function contentVersion(resources: readonly AnyResource[]): string {
  const h = createHash('sha256');
  const sorted = [...resources].sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  for (const r of sorted) h.update(JSON.stringify([r.apiVersion, r.ref, r.metadata.labels ?? null, r.metadata.annotations ?? null, r.spec]));
  return h.digest('hex').slice(0, 12);
}
