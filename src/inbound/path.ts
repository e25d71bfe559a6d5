/**
 * Request path normalization (MeshConfig `pathNormalization`) for served requests. The rules live
 * in core (`core/path-normalization.ts`) because calls are normalized the same way before they are
 * routed, as istiod configures the sidecar's outbound listeners too.
 *
 * @module
 */
export { normalizePath, PATH_NORMALIZATIONS, type PathNormalization } from '../core/path-normalization.ts';
