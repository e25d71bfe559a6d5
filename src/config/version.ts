/**
 * The content version of a set of resources: a hash of what matters (kind, namespace, name,
 * labels, annotations, spec), stable across processes and replicas, so the same config has the
 * same version everywhere (meshes, control-plane replicas, status).
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { AnyResource } from './resource.ts';
import { runNow, type Steps } from './steps.ts';

/** Remembers each resource's JSON text across compiles (the routing compile cache is one). */
export interface JsonTextCache {
  json(r: AnyResource, make: () => string): string;
}

/**
 * A config version as a number, as Envoy reports `cds.version` (a hash of the version text), for
 * metrics (a label per version would make a series per config change): a content version of up
 * to 12 hex digits (what meshlet makes) is that number itself, so `printf '%012x'` gives the
 * version back; any other text is the first 48 bits of its SHA-256 (exact in a double). 0 for ''.
 * @internal
 */
export function versionNumber(version: string): number {
  if (version === '') return 0;
  const hex = /^[0-9a-f]{1,12}$/.test(version) ? version : createHash('sha256').update(version).digest('hex').slice(0, 12);
  return Number.parseInt(hex, 16);
}

/**
 * A content hash of resources (kind, namespace, name, spec), stable across processes.
 * @category Snapshot
 */
export function contentVersion(resources: readonly AnyResource[]): string {
  return runNow(contentVersionSteps(resources));
}

/**
 * {@link contentVersion} as {@link Steps}: pauses between resources.
 * @internal
 */
export function* contentVersionSteps(resources: readonly AnyResource[], cache?: JsonTextCache): Steps<string> {
  const h = createHash('sha256');
  const sorted = [...resources].sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  for (const r of sorted) {
    // A WorkloadEntry's status conditions count only when it has some, so other versions stay as they were.
    const text = () => JSON.stringify([r.apiVersion, r.ref, r.metadata.labels ?? null, r.metadata.annotations ?? null, r.spec, ...(r.status === undefined ? [] : [r.status])]);
    h.update(cache === undefined ? text() : cache.json(r, text));
    yield;
  }
  return h.digest('hex').slice(0, 12);
}
