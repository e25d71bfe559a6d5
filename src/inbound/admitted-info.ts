/**
 * `req.meshlet`: what a mesh admitted a request with, and — unseen, in a private field — which
 * mesh (its inbound guard) judged it. Several meshes in one process may see one request (one
 * mesh's server, another's middleware on a route of another workload); each applies its own
 * policies, as each Istio sidecar does for its own pod, and none counts another's verdict as its
 * own (see src/adapters/server/judged.ts). Kept on the object the request carries anyway, so
 * that telling whose verdict it is costs no per-request map entry.
 *
 * @module
 */
import type { PeerIdentity } from '../core/context.ts';
import type { AuthzDecision } from './pipeline.ts';

/** A request's `meshlet` as a mesh admitted it (frozen). */
export class AdmittedInfo {
  readonly requestPrincipal: string | undefined;
  readonly claims: Readonly<Record<string, unknown>> | undefined;
  readonly peer: PeerIdentity | undefined;
  readonly authz: AuthzDecision | undefined;
  readonly #judge: object;

  constructor(judge: object, requestPrincipal: string | undefined, claims: Readonly<Record<string, unknown>> | undefined, peer: PeerIdentity | undefined, authz: AuthzDecision | undefined) {
    this.requestPrincipal = requestPrincipal;
    this.claims = claims;
    this.peer = peer;
    this.authz = authz;
    this.#judge = judge;
    Object.freeze(this);
  }

  /**
   * True when `info` is what the mesh `judge` admitted a request with (another mesh's does not
   * count, nor a copy: a spread, a clone, an object made from this class's prototype — which
   * `instanceof` accepts, but which has no private field to read, so the check is on the field).
   */
  static by(info: unknown, judge: object): boolean {
    return typeof info === 'object' && info !== null && #judge in info && info.#judge === judge;
  }
}
