/**
 * The Node.js version check. meshlet (and undici, which it runs on) needs Node.js 22.19 or
 * newer; on an older Node the import would fail deep inside undici with a message that names
 * neither. This module is the first import of every entry point, so it runs before undici is
 * evaluated and says what is wrong instead (`require-node.ts` throws; the CLI prints and exits).
 *
 * @module
 */

/** The oldest Node.js meshlet runs on (`engines.node` in package.json). */
export const MIN_NODE: readonly [number, number] = [22, 19];

/** Why `version` (`process.versions.node`) is too old for meshlet, or undefined when it is fine. */
export function nodeTooOld(version: string): string | undefined {
  const [major = 0, minor = 0] = version.split('.').map((p) => Number.parseInt(p, 10));
  const [needMajor, needMinor] = MIN_NODE;
  if (major > needMajor || (major === needMajor && minor >= needMinor)) return undefined;
  return `meshlet needs Node.js >= ${needMajor}.${needMinor}; this is Node.js ${version} (${process.execPath}). Install a newer Node.js (https://nodejs.org) and run again.`;
}

