/**
 * meshlet's own version, written here rather than read from package.json at run time: a bundled
 * app (esbuild, webpack) has no meshlet package.json next to the code, and the `tag` label of
 * `istio_build` read `unknown` there. A test (`version.test.ts`) keeps it equal to package.json's.
 *
 * @module
 */

/** The `version` of meshlet's package.json (`0.1.0`). */
export const MESHLET_VERSION: string = '0.1.0';
