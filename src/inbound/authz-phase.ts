/**
 * The inbound pipeline's `authorization` phase: asks the workload's {@link AuthzEngine} about
 * the request, records the verdict on `req.authz` (which policy and rule decided, dry-run
 * outcomes, audit hit), applies what an external authorizer changed on the request (headers to
 * set or remove), and refuses a denied request the way Envoy does: 403 `RBAC: access denied`
 * (gRPC PERMISSION_DENIED), or the external authorizer's status, headers and body.
 *
 * Every verdict is published on `meshlet:authz:decision` (`node:diagnostics_channel`) when
 * someone subscribes, so logs and metrics can say which rule denied, and what dry-run
 * policies would have done, without the app doing anything.
 *
 * As in Istio, where the ext_authz filter comes before JWT authentication and the RBAC filters
 * after it, CUSTOM is a phase of its own (`ext-authz`, before `jwt`: its rules never see the
 * request's JWT, and an authorizer's headers are on the request JWT authentication reads); AUDIT,
 * DENY and ALLOW are the `authorization` phase, after `jwt`.
 *
 * @module
 */
import { InvalidArgumentError } from '../core/errors.ts';
import { httpToGrpc } from '../core/grpc-status.ts';
import { channels, type ObservedAuthzDecision, type WorkloadIdentity } from '../core/observe.ts';
import type { AuthzEngine, CustomOutcome } from '../security/authz/engine.ts';
import type { AuthzResult } from '../security/authz/types.ts';
import { callerSignal, type Denial, type InboundRequest, type Phase, type PhaseResult } from './pipeline.ts';

/** `meshlet:authz:decision`: one authorization verdict (see core/observe.ts). */
export interface AuthzDecisionMessage extends ObservedAuthzDecision {
  /** The request judged (its `authz` is the verdict). */
  readonly request: InboundRequest;
  readonly result: AuthzResult;
  /** Which of Istio's RBAC filters the workload has — one per action with enforced (not dry-run) policies — for Envoy's `rbac.allowed` / `rbac.denied`. */
  readonly filters?: AuthzEngine['rbacFilters'] | undefined;
}

/** The channel the phase publishes verdicts on (only when subscribed). */
export const authzDecisionChannel = channels.authzDecision;

/** The engine to ask: fixed, or read per request (a new config swaps it; in-flight requests keep theirs). */
export type EngineSource = AuthzEngine | (() => AuthzEngine | undefined);

function denialOf(r: AuthzResult): Denial {
  const d = r.denial;
  const status = d?.status ?? 403;
  return {
    status,
    grpcStatus: httpToGrpc(status),
    body: d?.body ?? 'RBAC: access denied',
    ...(d !== undefined && Object.keys(d.headers).length > 0 ? { headers: d.headers } : {}),
    reason: r.reason,
    phase: 'authorization',
  };
}

/** Records verdict `r` on the request and publishes it; refuses a denied request; applies the header changes an authorizer asked for, unless they were applied already (`headersApplied`). */
function apply(req: InboundRequest, r: AuthzResult, workload: WorkloadIdentity | undefined, headersApplied = false, engine?: AuthzEngine): PhaseResult {
  req.authz = r.headersToDownstream === undefined ? r : { ...r, responseHeaders: r.headersToDownstream };
  if (authzDecisionChannel.hasSubscribers) authzDecisionChannel.publish({ workload, request: req, result: r, filters: engine?.rbacFilters } satisfies AuthzDecisionMessage);
  if (r.decision === 'deny') return denialOf(r);
  if (headersApplied) return undefined;
  if (r.headersToRemove !== undefined) {
    for (const k of r.headersToRemove) delete req.headers[k];
    req.headersChanged = true;
  }
  if (r.headersToUpstream !== undefined) {
    for (const [k, v] of Object.entries(r.headersToUpstream)) req.headers[k] = v;
    req.headersChanged = true;
  }
  return undefined;
}

/** {@link apply} once the verdict is in (a function of its own: a closure in the caller, even one never made, would make V8 allocate what it captures on every call). */
function applyLater(req: InboundRequest, r: Promise<AuthzResult>, workload: WorkloadIdentity | undefined, engine: AuthzEngine): Promise<PhaseResult> {
  return r.then((v) => apply(req, v, workload, false, engine));
}

/** What the ext-authz phase does with the CUSTOM stage's answer. */
function afterCustom(req: InboundRequest, c: AuthzResult | CustomOutcome | undefined, workload: WorkloadIdentity | undefined): PhaseResult {
  if (c === undefined) return undefined;
  if ('decision' in c) return apply(req, c, workload);
  // Allowed: the authorizers' header changes are on the request from here on (JWT authentication reads it next).
  if (c.remove.length > 0 || Object.keys(c.set).length > 0) {
    for (const k of c.remove) delete req.headers[k];
    for (const k of Object.keys(c.set)) req.headers[k] = c.set[k] as string;
    req.headersChanged = true;
  }
  req.customAuthz = c;
  return undefined;
}

/**
 * The `ext-authz` phase (AuthorizationPolicy CUSTOM): asks the external authorizers whose
 * CUSTOM rules match, before JWT authentication, as Istio's sidecar does. Only added for
 * workloads a CUSTOM policy applies to.
 */
export function extAuthzPhase(source: EngineSource, workload?: WorkloadIdentity): Phase {
  const current = typeof source === 'function' ? source : () => source;
  return {
    name: 'ext-authz',
    run(req: InboundRequest): PhaseResult | Promise<PhaseResult> {
      const engine = current();
      if (engine === undefined) return undefined;
      // The signal a provider's check is cancelled by when the caller goes away (the adapter aborts it).
      callerSignal(req);
      const c = engine.custom(req);
      return c instanceof Promise ? c.then((v) => afterCustom(req, v, workload)) : afterCustom(req, c, workload);
    },
  };
}

/**
 * The `authorization` phase: AUDIT, DENY and ALLOW — and CUSTOM too when no `ext-authz` phase
 * ran before it (a pipeline built with this phase alone). With no engine (no config yet) every
 * request passes, as a sidecar with no AuthorizationPolicy allows everything. `workload` (the
 * mesh's identity) is named in the published decisions, so a mesh's subscriber counts only its own.
 */
export function authorizationPhase(source: EngineSource, workload?: WorkloadIdentity, customRunsBefore = false): Phase {
  // With CUSTOM judged by an ext-authz phase before it, both phases must judge with the same engine:
  // one read per request by each could see two configs, and the second skip a CUSTOM rule the first never had.
  if (customRunsBefore && typeof source === 'function') throw new InvalidArgumentError('authorization phase: with customRunsBefore, give the engine itself (the ext-authz phase before it has the same one)');
  const current = typeof source === 'function' ? source : () => source;
  return {
    name: 'authorization',
    run(req: InboundRequest): PhaseResult | Promise<PhaseResult> {
      const engine = current();
      if (engine === undefined) return undefined;
      if (customRunsBefore) return apply(req, engine.local(req, req.customAuthz as CustomOutcome | undefined), workload, true, engine);
      const r = engine.evaluate(req);
      return r instanceof Promise ? applyLater(req, r, workload, engine) : apply(req, r, workload, false, engine);
    },
  };
}
