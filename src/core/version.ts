/**
 * meshlet's own version, read once from its package.json: `src/core/` and `dist/core/` are both
 * two levels below the package root, so the same relative path finds it from the sources and from
 * the build.
 *
 * @module
 */
import { readFileSync } from 'node:fs';

/** The `version` of meshlet's package.json (`0.1.0`), or `unknown` when it cannot be read. */
export const MESHLET_VERSION: string = readVersion();

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
    return pkg.name === 'meshlet' && typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}
