/**
 * What the tracer changes in a served request's headers, for the adapter to hand the app
 * (`InboundStartMessage.changedHeaders`).
 *
 * @module
 */
import type { InboundStartMessage } from '../../core/observe.ts';

/** The trace header a w3c-only tracer hands the app (shared: never changed). */
export const TRACEPARENT_ONLY: readonly string[] = Object.freeze(['traceparent']);

const DECORATOR: readonly string[] = Object.freeze(['x-envoy-decorator-operation']);

/** Adds `names` to the headers whose values subscribers of `m` set. */
export function changed(m: InboundStartMessage, names: readonly string[]): void {
  const had = m.changedHeaders;
  m.changedHeaders = had === undefined ? names : [...had, ...names];
}

/**
 * The server span's name a caller's sidecar sent (`x-envoy-decorator-operation`, its route's
 * decorator), taken off the request: Envoy's ingress reads it and removes it, so the app never
 * forwards it to the next hop (conn_manager_impl.cc `traceRequest`), and an edge request's is
 * removed unread (conn_manager_utility.cc `mutateRequestHeaders`) — `edge`: serving as a gateway
 * (`numTrustedProxies`), where a caller outside the mesh could name the span.
 */
export function takeDecorator(m: InboundStartMessage, edge: boolean): string | undefined {
  const h = m.headers;
  const op = h['x-envoy-decorator-operation'];
  if (op === undefined) return undefined;
  delete h['x-envoy-decorator-operation'];
  changed(m, DECORATOR);
  return typeof op === 'string' && op !== '' && !edge ? op : undefined;
}
