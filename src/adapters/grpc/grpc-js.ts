/**
 * Loads `@grpc/grpc-js` (an optional peer dependency) the first time a mesh makes or carries a
 * gRPC call, from the application's own install, so a mesh that never speaks gRPC never needs
 * it. Only the parts the adapter uses are typed here; the types are grpc-js's own.
 *
 * @module
 */
import { createRequire } from 'node:module';
import type * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError } from '../../core/errors.ts';

/** The grpc-js module as the adapter uses it. */
export type GrpcJs = typeof grpc;

let loaded: GrpcJs | undefined;

/** grpc-js, loaded on first use; a clear error when it is not installed. */
export function grpcJs(): GrpcJs {
  if (loaded !== undefined) return loaded;
  const require = createRequire(import.meta.url);
  try {
    loaded = require('@grpc/grpc-js') as GrpcJs;
  } catch (e) {
    throw new InvalidArgumentError('mesh.grpc: @grpc/grpc-js is not installed; install it next to meshlet (npm install @grpc/grpc-js)', { cause: e });
  }
  return loaded;
}

let version: string | undefined;

/** grpc-js's version (its user agent says it: `grpc-node-js/<version>`), or `unknown`. */
export function grpcJsVersion(): string {
  if (version !== undefined) return version;
  try {
    const v = (createRequire(import.meta.url)('@grpc/grpc-js/package.json') as { version?: unknown }).version;
    version = typeof v === 'string' ? v : 'unknown';
  } catch {
    version = 'unknown';
  }
  return version;
}
