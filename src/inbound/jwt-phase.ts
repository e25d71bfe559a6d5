/**
 * The `jwt` admission phase: RequestAuthentication for the server side. It runs the workload's
 * compiled JWT rules ({@link JwtAuthenticator}) over the request and either lets it on — with the
 * request principal (`iss/sub`), claims, audiences and presenter set for the authorization phase
 * and the app's context, output headers written and non-forwarded tokens removed from
 * `req.headers` / `req.path` — or answers it the way a sidecar does: 401 (403 for an audience
 * that is not allowed) with Envoy's body text and `WWW-Authenticate`, gRPC `UNAUTHENTICATED` /
 * `PERMISSION_DENIED` for a gRPC caller.
 *
 * A request without a token passes with no principal (requiring one is an AuthorizationPolicy's
 * job). The phase is synchronous unless a signature must be checked or keys fetched; the
 * authenticator is read per request, so a config reload applies to the next request.
 *
 * @module
 */
import { httpToGrpc } from '../core/grpc-status.ts';
import type { JwtAuthenticator } from '../security/jwt/authenticator.ts';
import type { JwtOutcome } from '../security/jwt/outcome.ts';
import type { Denial, InboundRequest, Phase, PhaseResult } from './pipeline.ts';

function apply(req: InboundRequest, out: JwtOutcome): PhaseResult {
  if (out.ok) {
    req.requestPrincipal = out.principal;
    req.claims = out.claims;
    req.audiences = out.audiences;
    req.presenter = out.presenter;
    return undefined;
  }
  const denial: Denial = {
    status: out.httpStatus,
    grpcStatus: httpToGrpc(out.httpStatus),
    body: out.body,
    headers: { 'www-authenticate': out.wwwAuthenticate },
    reason: out.reason,
    phase: 'jwt',
  };
  return denial;
}

/** {@link apply} once the outcome is in (a function of its own: a closure in the caller, even one never made, would make V8 allocate what it captures on every call). */
function applyLater(req: InboundRequest, out: Promise<JwtOutcome>): Promise<PhaseResult> {
  return out.then((o) => apply(req, o));
}

/**
 * The jwt phase over the authenticator of the current snapshot (`undefined`: no
 * RequestAuthentication applies, and the phase does nothing).
 */
export function jwtPhase(current: () => JwtAuthenticator | undefined): Phase {
  return {
    name: 'jwt',
    run(req: InboundRequest): PhaseResult | Promise<PhaseResult> {
      const auth = current();
      if (auth === undefined || auth.rules.length === 0) return undefined;
      const out = auth.authenticate(req);
      return out instanceof Promise ? applyLater(req, out) : apply(req, out);
    },
  };
}
