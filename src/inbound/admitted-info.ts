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

/** How many meshes' verdicts on one request {@link AdmittedInfo.by} looks through. */
const MAX_MESHES = 32;

/** A request's `meshlet` as a mesh admitted it (frozen). */
export class AdmittedInfo {
  readonly requestPrincipal: string | undefined;
  readonly claims: Readonly<Record<string, unknown>> | undefined;
  readonly peer: PeerIdentity | undefined;
  readonly authz: AuthzDecision | undefined;
  readonly #judge: object;
  /**
   * The verdict this one replaced as the request's `meshlet` (another mesh judged the request
   * first), so that that mesh still finds the request judged by it. A private field: written
   * after the object is frozen (see {@link AdmittedInfo.replacing}).
   */
  #before: AdmittedInfo | undefined;
  /**
   * For `x-envoy-upstream-service-time` (src/adapters/server/on-head.ts): when the request was
   * complete (`performance.now()` ms, 0 or more), or — below 0 — that its body was still coming
   * when it was handed to the app at `-1 - at`; undefined when not timed. Kept here, on the object
   * the request carries anyway, rather than in a property added to every response (+56 B a
   * request); left undefined (no number boxed for it) when the header is off.
   */
  #at: number | undefined;

  constructor(judge: object, requestPrincipal: string | undefined, claims: Readonly<Record<string, unknown>> | undefined, peer: PeerIdentity | undefined, authz: AuthzDecision | undefined) {
    this.requestPrincipal = requestPrincipal;
    this.claims = claims;
    this.peer = peer;
    this.authz = authz;
    this.#judge = judge;
    Object.freeze(this);
  }

  /**
   * Records that `info` takes the place of `previous` as a request's `meshlet`: the mesh whose
   * verdict `previous` was (and those before it) judged the request already, and do not judge it
   * again when their middleware comes later (a token they consumed is gone; a rate limit would
   * count it twice). Set once per verdict.
   */
  static replacing(info: object, previous: unknown): void {
    if (!(#judge in info) || previous === info || info.#before !== undefined) return;
    if (typeof previous === 'object' && previous !== null && #judge in previous) info.#before = previous;
  }

  /** Records `#at` on a request's `meshlet` (nothing when it is not a verdict: the app replaced it). */
  static timeAt(info: unknown, at: number): void {
    if (typeof info === 'object' && info !== null && #at in info) info.#at = at;
  }

  /** What `timeAt` recorded on a request's `meshlet`: NaN when nothing was. */
  static timedAt(info: unknown): number {
    return typeof info === 'object' && info !== null && #at in info ? (info.#at ?? Number.NaN) : Number.NaN;
  }

  /**
   * True when the mesh `judge` judged and admitted the request whose `meshlet` is `info` — its
   * own verdict, or one that a later mesh's replaced (another mesh's alone does not count, nor a
   * copy: a spread, a clone, an object made from this class's prototype — which `instanceof`
   * accepts, but which has no private field to read, so the check is on the field).
   */
  static by(info: unknown, judge: object): boolean {
    let i = info;
    // Bounded: one step per mesh that judged the request.
    for (let n = 0; n < MAX_MESHES && typeof i === 'object' && i !== null && #judge in i; n++) {
      if (i.#judge === judge) return true;
      i = i.#before;
    }
    return false;
  }
}
