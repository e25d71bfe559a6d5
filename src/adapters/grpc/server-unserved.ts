/**
 * Calls to methods a grpc-js server does not serve, judged like every other call.
 *
 * grpc-js answers a call whose path has no handler with `UNIMPLEMENTED` straight from its stream
 * handler (`Server#_retrieveHandler` returns null), before the server's interceptors are built,
 * so the mesh's admission phases and its telemetry never see such a call. An Istio sidecar judges
 * every request before the app: a DENY policy answers `PERMISSION_DENIED`, a rate limit
 * `UNAVAILABLE`, and the destination's metrics count the call.
 *
 * {@link judgeUnserved} gives such a server a stand-in handler for every path it does not serve:
 * a bidi-streaming method whose messages stay undecoded `Buffer`s and that answers grpc-js's own
 * `UNIMPLEMENTED` status and text ("The server does not implement the method …") as soon as it
 * starts. Its call goes through the server's interceptors like any other, so the mesh's
 * interceptor judges it first (a denial never reaches the stand-in) and publishes it; an admitted
 * call gets `UNIMPLEMENTED` as before. Methods the server registers later (`addService`) are served
 * by their handlers: the stand-in only answers paths that have none when the call arrives.
 *
 * The seam is grpc-js's private `_retrieveHandler(path)` (1.14; pinned by
 * test/grpc/grpc-js-contract.test.ts); a grpc-js without it is left as it is.
 *
 * @module
 */
import type { Server, ServerDuplexStream } from '@grpc/grpc-js';
import type { GrpcJs } from './grpc-js.ts';

/** A handler as grpc-js keeps it in its server's handler map. */
interface HandlerEntry {
  readonly func: (call: ServerDuplexStream<Buffer, Buffer>) => void;
  readonly serialize: (m: Buffer) => Buffer;
  readonly deserialize: (b: Buffer) => Buffer;
  readonly type: 'bidi';
  readonly path: string;
}

/** The part of grpc-js's Server this uses (private API). */
interface HandlerLookup {
  _retrieveHandler?: (path: string) => object | null;
}

const MARK = Symbol.for('meshlet.grpc.judgeUnserved');

const identity = (b: Buffer): Buffer => b;

/**
 * Gives `server` a stand-in handler for the paths it does not serve, so their calls go through
 * its interceptors (the mesh's judgement and telemetry) and then end `UNIMPLEMENTED` as grpc-js
 * ends them. Idempotent. Returns false when the grpc-js in use has no such seam (nothing changed).
 */
export function judgeUnserved(g: GrpcJs, server: Server): boolean {
  const s = server as unknown as HandlerLookup & { [MARK]?: true };
  if (s[MARK] === true) return true;
  const retrieve = s._retrieveHandler;
  if (typeof retrieve !== 'function') return false;
  const unimplemented = g.status.UNIMPLEMENTED;
  s._retrieveHandler = function (this: unknown, path: string): object | null {
    const h = retrieve.call(this, path);
    if (h !== null && h !== undefined) return h;
    if (typeof path !== 'string') return null;
    const standIn: HandlerEntry = {
      // grpc-js's own answer for a method it does not serve (getUnimplementedStatusResponse).
      func: (call) => call.emit('error', { code: unimplemented, details: `The server does not implement the method ${path}` }),
      serialize: identity,
      deserialize: identity,
      type: 'bidi',
      path,
    };
    return standIn;
  };
  Object.defineProperty(s, MARK, { value: true });
  return true;
}
