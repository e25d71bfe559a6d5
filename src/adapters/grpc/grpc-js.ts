/**
 * Loads `@grpc/grpc-js` (an optional peer dependency) the first time a mesh makes or carries a
 * gRPC call, from the application's own install, so a mesh that never speaks gRPC never needs
 * it. Only the parts the adapter uses are typed here; the types are grpc-js's own.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { isAbsolute, join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError } from '../../core/errors.ts';

/** The grpc-js module as the adapter uses it. */
export type GrpcJs = typeof grpc;

let loaded: GrpcJs | undefined;

/** What a bundled app must do so meshlet and the app load one grpc-js (docs/deploying.md#bundling). */
export const GRPC_BUNDLE_HINT = 'in a bundled app, mark @grpc/grpc-js external (esbuild --external:@grpc/grpc-js) and ship it in node_modules, so the app and meshlet load the same copy';

/**
 * Where grpc-js is looked up from: this module (meshlet's place in the app's node_modules); in a
 * CommonJS bundle, where `import.meta.url` is empty (esbuild's `--format=cjs` output), the app's
 * main script, else the working directory.
 */
export function requireBase(metaUrl: unknown, mainScript: string | undefined, cwd: string): string {
  if (typeof metaUrl === 'string' && metaUrl !== '') return metaUrl;
  return mainScript !== undefined && isAbsolute(mainScript) ? mainScript : join(cwd, 'index.js');
}

/** grpc-js, loaded on first use; a clear error when it is not installed. */
export function grpcJs(): GrpcJs {
  if (loaded !== undefined) return loaded;
  try {
    loaded = appRequire()('@grpc/grpc-js') as GrpcJs;
  } catch (e) {
    throw new InvalidArgumentError(`mesh.grpc: @grpc/grpc-js is not installed; install it next to meshlet (npm install @grpc/grpc-js); ${GRPC_BUNDLE_HINT}`, { cause: e });
  }
  return loaded;
}

function appRequire(): NodeJS.Require {
  return createRequire(requireBase(import.meta.url, process.argv[1], process.cwd()));
}

let version: string | undefined;

/** grpc-js's version (its user agent says it: `grpc-node-js/<version>`), or `unknown`. */
export function grpcJsVersion(): string {
  if (version !== undefined) return version;
  try {
    const v = (appRequire()('@grpc/grpc-js/package.json') as { version?: unknown }).version;
    version = typeof v === 'string' ? v : 'unknown';
  } catch {
    version = 'unknown';
  }
  return version;
}
