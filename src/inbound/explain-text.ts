/**
 * The text of an inbound explanation (`String(explanation)`, what `meshlet explain --inbound`
 * prints): one labelled block per step, in the order the server side runs them.
 *
 * @module
 */
import type { InboundExplanation } from './explain-types.ts';
import { STEP } from './explain-rate-limit.ts';

const PAD = '               ';

function label(name: string): string {
  return `${name}:`.padEnd(PAD.length);
}

function json(v: unknown): string {
  return JSON.stringify(v);
}

/** A token shortened for display (its start and end). */
function shortToken(value: string): string {
  return value.replace(/[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, (t) => (t.length <= 40 ? t : `${t.slice(0, 16)}…${t.slice(-8)}`));
}

/** Prints `e` on a few lines. */
export function describeInbound(e: Omit<InboundExplanation, 'toString'>): string {
  const lines: string[] = [];
  const r = e.request;
  const labels = Object.entries(e.workload.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  lines.push(`${label('Request')}${r.method} ${e.path.received} (Host ${r.authority})`);
  for (const [k, v] of Object.entries(r.headers)) for (const one of Array.isArray(v) ? v : [v]) lines.push(`${PAD}${k}: ${shortToken(String(one))}`);
  lines.push(`${label('To')}${e.workload.service}.${e.workload.namespace}${labels ? ` {${labels}}` : ''}, local port ${r.localPort} (${r.portFrom})`);
  lines.push(`${label('From')}${r.peer === undefined ? 'a plaintext peer (no mTLS identity)' : `mTLS peer ${r.peer}`} at ${r.remoteAddress}`);
  const pa = e.peerAuthentication;
  const from = [pa.policies.mesh && `mesh ${pa.policies.mesh}`, pa.policies.namespace && `namespace ${pa.policies.namespace}`, pa.policies.workload && `workload ${pa.policies.workload}${pa.portLevel ? ' (portLevelMtls)' : ''}`].filter(Boolean);
  lines.push(
    `${label('mTLS')}PeerAuthentication ${pa.mode} on port ${r.localPort} (${from.length === 0 ? 'no PeerAuthentication applies: the default' : from.join(', ')}) → ${pa.accepted ? `${r.peer === undefined ? 'plaintext' : 'mTLS'} accepted` : `${r.peer === undefined ? 'plaintext' : 'mTLS'} refused: the connection is closed`}`,
  );
  const p = e.path;
  lines.push(
    `${label('Path')}${p.normalized === undefined ? `refused by ${p.normalization} normalization (400)` : p.changed ? `${p.received} → ${p.normalized} (${p.normalization} normalization; the app is handed ${p.normalized})` : `${p.normalized} (unchanged by ${p.normalization} normalization)`}`,
  );

  if (e.jwt === 'given') {
    lines.push(`${label('JWT')}given directly (assumed verified): principal ${e.requestPrincipal ?? '(none)'}${e.claims === undefined ? '' : `, claims ${json(e.claims)}`}`);
  } else if (e.jwt !== undefined) {
    const j = e.jwt;
    let first = true;
    for (const rule of j.rules) {
      lines.push(`${first ? label('JWT') : PAD}${rule.name}: issuer ${rule.issuer === '' ? '(any)' : rule.issuer}; keys: ${rule.keys} (signature ${rule.signature === 'checked' ? 'checked here' : 'not checked: keys not fetched'})`);
      if (rule.tokens.length === 0) lines.push(`${PAD}  no token at ${rule.locations.join(', ')}`);
      for (const t of rule.tokens) lines.push(`${PAD}  token ${t.token + 1} in ${t.location}: ${t.problem ?? 'passes the checks before the signature; the keys are needed'}`);
      first = false;
    }
    j.tokens.forEach((t, i) => {
      lines.push(`${PAD}token ${i + 1} (UNVERIFIED, decoded for explain only) at ${t.locations.join(', ')}: ${t.error ?? `header ${json(t.header)} payload ${json(t.payload)}`}`);
    });
    if (j.ok) {
      lines.push(`${PAD}→ passes: ${j.requestPrincipal === undefined ? 'no request principal' : `request principal ${j.requestPrincipal}`}${j.assumedSignature ? ' (if the signature verifies)' : ''} — ${j.detail}`);
    } else if (j.denial !== undefined) {
      lines.push(`${PAD}→ ${j.denial.status} ${j.denial.body} — ${j.detail}`);
      lines.push(`${PAD}  WWW-Authenticate: ${j.denial.wwwAuthenticate}`);
    }
    if (j.headersRemoved.length > 0) lines.push(`${PAD}removed before the app sees the request: ${j.headersRemoved.join(', ')}`);
    for (const [h, v] of Object.entries(j.headersWritten)) lines.push(`${PAD}written: ${h}: ${v}`);
  } else if (e.refusedBy !== 'path' && e.refusedBy !== 'peer-authentication') {
    lines.push(`${label('JWT')}no RequestAuthentication applies: no request principal`);
  }

  if (e.authz !== undefined) {
    const a = e.authz;
    const policies = a.policies.map((x) => `${x.action}${x.dryRun ? ' (dry-run)' : ''} ${x.ref}${x.provider === undefined ? '' : ` → ${x.provider}`}`);
    lines.push(`${label('Authorization')}${policies.length === 0 ? 'no AuthorizationPolicy applies' : `policies: ${policies.join(', ')}`}`);
    for (const f of a.findings) if (f.level !== 'info') lines.push(`${PAD}${f.level}: ${f.policy}: ${f.message}`);
    if (a.custom !== undefined) {
      lines.push(`${PAD}CUSTOM: policy ${a.custom.policy} rule ${a.custom.rule} sends the request to the external authorizer "${a.custom.provider}"${a.custom.assumedConfigured ? ' (taken as configured)' : ''}; explain cannot call it — below: if it allows`);
    }
    const res = a.result;
    lines.push(`${PAD}→ ${res.decision === 'allow' ? 'allowed' : `denied ${res.denial?.status ?? 403} ${json(res.denial?.body ?? 'RBAC: access denied')}`}: ${res.reason}${res.details === '' ? '' : ` [${res.details}]`}`);
    for (const d of res.dryRun) {
      lines.push(`${PAD}dry-run ${d.action}: would ${d.result}${d.policy === undefined ? ' (no dry-run rule matched)' : ` — ${d.policy} rule ${d.rule}`}`);
    }
    if (res.audit !== undefined) lines.push(`${PAD}audit: ${res.audit.policy} rule ${res.audit.rule} matched (logged, never a decision)`);
  }

  if (e.rateLimits !== undefined) {
    if (e.rateLimits.length === 0) lines.push(`${label('Rate limit')}no local rate limit on port ${r.localPort}`);
    e.rateLimits.forEach((x, i) => {
      const d = x.descriptors.length === 0 ? '' : `; descriptors ${x.descriptors.map((ds) => ds.join(',')).join(' | ')}`;
      lines.push(
        `${i === 0 ? label('Rate limit') : PAD}${x.filter} (${x.source}${x.runsBefore === undefined ? '' : `; runs before ${STEP[x.runsBefore]}`}): enabled ${x.enabledPercent}%, enforced ${x.enforcedPercent}%${d}; ${x.buckets.length === 0 ? 'no bucket applies' : `draws from ${x.buckets.join('; ')}`} (bucket levels not shown)`,
      );
    });
  }

  const pool = e.connectionPool;
  // Shown when some connectionPool applies to the port (most workloads have none).
  if (pool?.source !== undefined) {
    const n = (v: number | undefined) => (v === undefined ? 'no limit' : String(v));
    if ((pool.maxActive.http1 === undefined && pool.maxActive.grpc === undefined && pool.maxPending === undefined)) {
      lines.push(`${label('Inbound pool')}${pool.cluster}: no limit (${pool.source})`);
    } else {
      lines.push(
        `${label('Inbound pool')}${pool.cluster}: ${n(pool.maxActive.http1)} in flight at most (HTTP/1.1; gRPC ${n(pool.maxActive.grpc)}), ${n(pool.maxPending)} waiting; beyond, 503 UO — ${pool.source} (requests in flight not shown)`,
      );
    }
  }

  lines.push(`${label('Verdict')}${e.status === 200 ? 'reaches the app' : e.status === 0 ? `connection refused by the ${e.refusedBy} step` : `${e.status}, refused by the ${e.refusedBy} step`} — ${e.reason}`);
  if (e.assumes.length > 0) {
    lines.push(`${label('Assuming')}${e.assumes[0]}`);
    for (const a of e.assumes.slice(1)) lines.push(`${PAD}${a}`);
  }
  return lines.join('\n');
}
