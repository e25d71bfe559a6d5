/**
 * The one gate a viewer token passes (`meshlet token --viewer`, as Kubernetes' `view`
 * ClusterRole): the router calls {@link gate} after authenticating every request, and it lets a
 * viewer through only for the reads of {@link VIEWER_MAY}, by method and path. Everything else —
 * a route added later included — is refused with 403 before a handler runs (fails closed). The
 * handlers that change something also take a {@link WriterCaller}, a type without the viewer.
 *
 * @module
 */
import { CA_PATH, RESOURCES_PATH, STATUS_PATH, WORKLOADS_PATH } from '../control-plane/protocol.ts';
import type { Identity } from './auth.ts';
import { ControlPlaneError } from './errors.ts';

/** The caller: a verified token's identity, or `undefined` for a token-less request to an insecure server. */
export type Caller = Identity | undefined;

/** A caller that may change something: a workload or admin token, or a token-less request to an insecure server. */
export type WriterCaller = Exclude<Caller, { readonly role: 'viewer' }>;

/** What a viewer token may request, as its refusals say. */
export const VIEWER_MAY = `GET ${RESOURCES_PATH}[/<Kind>/<namespace>/<name>], GET ${STATUS_PATH}, GET ${WORKLOADS_PATH}, GET ${CA_PATH}`;

/** The segments of `path` after `prefix` (decoded, empty ones dropped); undefined when `path` is not under it. */
export function under(path: string, prefix: string): string[] | undefined {
  if (path === prefix || path === `${prefix}/`) return [];
  if (!path.startsWith(`${prefix}/`)) return undefined;
  return path
    .slice(prefix.length + 1)
    .split('/')
    .filter((s) => s !== '')
    .map((s) => decodeURIComponent(s));
}

/** Whether a viewer token may make this request: the reads an admin makes, nothing more. */
export function viewerMay(method: string, path: string): boolean {
  if (method !== 'GET') return false;
  if (path === STATUS_PATH || path === CA_PATH) return true;
  if (under(path, WORKLOADS_PATH)?.length === 0) return true;
  const resource = under(path, RESOURCES_PATH);
  return resource !== undefined && (resource.length === 0 || resource.length === 3);
}

/** Refuses a viewer token any request but those of {@link VIEWER_MAY} (403); other callers pass. */
export function gate(caller: Caller, method: string, path: string): void {
  if (caller?.role !== 'viewer' || viewerMay(method, path)) return;
  throw new ControlPlaneError('FORBIDDEN', `${method} ${path}: the token is a viewer token (${caller.subject}), which may only read: ${VIEWER_MAY}`);
}

/** Refuses a viewer token (403) where a handler would change something; narrows the caller for the handler. */
export function requireWriter(caller: Caller, what: string): WriterCaller {
  if (caller?.role !== 'viewer') return caller;
  throw new ControlPlaneError('FORBIDDEN', `${what} needs a workload or admin token; this is a viewer token (${caller.subject}), which may only read: ${VIEWER_MAY}`);
}
