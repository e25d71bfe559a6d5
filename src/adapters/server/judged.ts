/**
 * Which mesh judged a request. A request is judged once by each mesh (`req.meshlet` then says
 * what it decided), but several meshes in one process may see the same request — one mesh's
 * server or middleware, then another's middleware on a route of another workload: each applies
 * its own policies (PeerAuthentication, RequestAuthentication, AuthorizationPolicy, rate limits),
 * as each Istio sidecar does for its own pod, and none counts another's verdict as its own.
 *
 * @module
 */

/** The mesh (its inbound guard) whose verdict `req.meshlet` is. */
const judges = new WeakMap<object, object>();

/** Records that the mesh `owner` judged and admitted `req`. */
export function markJudged(req: object, owner: object): void {
  judges.set(req, owner);
}

/** True when the mesh `owner` judged `req` already (another mesh's verdict does not count). */
export function judgedBy(req: object, owner: object): boolean {
  return judges.get(req) === owner;
}
