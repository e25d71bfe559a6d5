/**
 * The machine-readable view `meshlet explain --inbound -o json` prints of an inbound
 * explanation (the views of routes, virtual hosts and clusters are in `routing/views.ts`).
 *
 * @module
 */
import type { InboundExplanation } from '../inbound/explain-types.ts';

/**
 * `meshlet explain --inbound -o json`: how the workload's server side would judge a request,
 * every field present (null when the request never got that far or it does not apply).
 */
export function inboundExplanationView(e: InboundExplanation) {
  const j = e.jwt;
  const a = e.authz;
  return {
    mode: 'inbound' as const,
    workload: { service: e.workload.service, namespace: e.workload.namespace, labels: { ...e.workload.labels } },
    request: { ...e.request, peer: e.request.peer ?? null, headers: { ...e.request.headers } },
    path: { ...e.path, normalized: e.path.normalized ?? null },
    peerAuthentication: { ...e.peerAuthentication, policies: { ...e.peerAuthentication.policies } },
    status: e.status,
    refusedBy: e.refusedBy ?? null,
    reason: e.reason,
    assumes: [...e.assumes],
    requestPrincipal: e.requestPrincipal ?? null,
    claims: e.claims ?? null,
    jwt:
      j === undefined
        ? null
        : j === 'given'
          ? { given: true }
          : {
              given: false,
              rules: j.rules.map((r) => ({ ...r, tokens: r.tokens.map((t) => ({ ...t, problem: t.problem ?? null })) })),
              tokens: j.tokens.map((t) => ({ ...t, header: t.header ?? null, payload: t.payload ?? null, error: t.error ?? null })),
              ok: j.ok,
              requestPrincipal: j.requestPrincipal ?? null,
              rule: j.rule ?? null,
              assumedSignature: j.assumedSignature,
              denial: j.denial ?? null,
              detail: j.detail,
              headersRemoved: [...j.headersRemoved],
              headersWritten: { ...j.headersWritten },
            },
    authz:
      a === undefined
        ? null
        : {
            policies: a.policies.map((p) => ({ ...p, provider: p.provider ?? null })),
            findings: a.findings.map((f) => ({ ...f })),
            decision: a.result.decision,
            action: a.result.action ?? null,
            policy: a.result.policy ?? null,
            rule: a.result.rule ?? null,
            reason: a.result.reason,
            details: a.result.details,
            denial: a.result.denial === undefined ? null : { ...a.result.denial },
            dryRun: a.result.dryRun.map((d) => ({ action: d.action, result: d.result, policy: d.policy ?? null, rule: d.rule ?? null, id: d.id ?? null })),
            audit: a.result.audit === undefined ? null : { ...a.result.audit },
            custom: a.custom === undefined ? null : { ...a.custom },
          },
    rateLimits: e.rateLimits === undefined ? null : e.rateLimits.map((r) => ({ ...r, runsBefore: r.runsBefore ?? null, descriptors: r.descriptors.map((d) => [...d]), buckets: [...r.buckets] })),
    connectionPool: poolView(e.connectionPool),
  };
}

/** The inbound pool of an explanation as JSON: unlimited values as null (JSON has no undefined). */
function poolView(p: InboundExplanation['connectionPool']) {
  if (p === undefined) return null;
  return { cluster: p.cluster, source: p.source ?? null, service: { ...p.service }, maxActive: { http1: p.maxActive.http1 ?? null, grpc: p.maxActive.grpc ?? null }, maxPending: p.maxPending ?? null };
}
