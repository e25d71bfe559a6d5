/**
 * Which mesh judged a request. A request is judged once by each mesh (`req.meshlet` then says
 * what it decided), but several meshes in one process may see the same request — one mesh's
 * server or middleware, then another's middleware on a route of another workload: each applies
 * its own policies (PeerAuthentication, RequestAuthentication, AuthorizationPolicy, rate limits),
 * as each Istio sidecar does for its own pod, and none counts another's verdict as its own.
 *
 * @module
 */
import { AdmittedInfo } from '../../inbound/admitted-info.ts';

/** True when the mesh `owner` (its inbound guard) judged and admitted `req` already (another mesh's verdict does not count). */
export function judgedBy(req: { readonly meshlet?: unknown }, owner: object): boolean {
  return AdmittedInfo.by(req.meshlet, owner);
}

/** Sets `req.meshlet` to what the mesh admitted it with; a verdict of another mesh it replaces still counts for that mesh. */
export function admitWith(req: { meshlet?: unknown }, info: object): void {
  AdmittedInfo.replacing(info, req.meshlet);
  req.meshlet = info;
}
