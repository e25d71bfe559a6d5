/**
 * `x-request-id` as Envoy's connection manager keeps it (`generate_request_id`, on by default on
 * every listener, whether or not tracing is on): a request without one gets a new UUID before any
 * filter sees it. On the server side the id goes into the request's headers (the app, the
 * admission phases and the access log see it) and into its mesh context; a call made while
 * serving it carries that id, a call made outside any request a new one (the outbound listener
 * generates it too). An id already present is kept.
 *
 * @module
 */
import { newRequestId } from './tracing/request-id.ts';
import { currentContext, type TraceHeaders } from '../core/context.ts';
import type { Headers } from '../core/handler.ts';

const NAME = 'x-request-id';

/**
 * The served request's id, generated into `headers` when it has none (or an empty one), with the
 * trace headers its mesh context carries (`x-request-id` only). `added`: the headers changed.
 */
export function inboundRequestId(headers: Headers): { readonly trace: TraceHeaders; readonly added: boolean } {
  const v = headers[NAME];
  if (v !== undefined && v !== '') return { trace: { 'x-request-id': typeof v === 'string' ? v : (v[0] as string) }, added: false };
  const id = newRequestId();
  headers[NAME] = id;
  return { trace: { 'x-request-id': id }, added: true };
}

/**
 * The served request's id as received, when Istio's `proxyHeaders.requestId` is disabled: none is
 * generated, and a request without one has none in its mesh context.
 */
export function receivedRequestId(headers: Headers): { readonly trace: TraceHeaders | undefined; readonly added: false } {
  const v = headers[NAME];
  return { trace: v === undefined || v === '' ? undefined : { 'x-request-id': typeof v === 'string' ? v : (v[0] as string) }, added: false };
}

/**
 * A call's `x-request-id` when it has none: the id of the request being served, else a new one
 * (`generate` false, Istio's `proxyHeaders.requestId.disabled`: none).
 */
export function outboundRequestId(headers: Headers, generate = true): void {
  if (headers[NAME] !== undefined) return;
  const served = currentContext().trace?.[NAME];
  if (served !== undefined) headers[NAME] = served;
  else if (generate) headers[NAME] = newRequestId();
}
