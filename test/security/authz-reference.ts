/**
 * A reference implementation of Istio's authorization for the property test: deliberately
 * simple and slow, and written from the Istio and Envoy sources rather than from meshlet's
 * engine. It does what Istio does: generate Envoy RBAC config (authz-reference-config.ts),
 * then interpret that config the way Envoy's RBAC filter does, filter by filter
 * (CUSTOM → AUDIT → DENY → ALLOW). Nothing here is optimized and nothing is shared with
 * src/security/authz.
 */
import { BlockList, isIP } from 'node:net';
import type { Resource } from '../../src/config/resource.ts';
import { type Action, generatePolicy, type Node, type SM } from './authz-reference-config.ts';

/** The request, as the engine's request view has it. */
export interface RefRequest {
  method: string;
  authority: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  remoteAddress: string;
  localPort: number;
  localAddress?: string;
  sni?: string;
  peer: { principal: string } | undefined;
  requestPrincipal: string | undefined;
  claims: Record<string, unknown> | undefined;
}

// ---- Envoy's RBAC interpretation ------------------------------------------------------------

/** RE2 → JS for the regexes above: an unescaped `.` outside a class is any character but a newline. */
function re2(pattern: string): RegExp {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\') {
      out += c + (pattern[i + 1] ?? '');
      i++;
    } else if (inClass) {
      if (c === ']') inClass = false;
      out += c;
    } else if (c === '[') {
      inClass = true;
      out += c;
    } else out += c === '.' ? '[^\\n]' : c;
  }
  return new RegExp(`^(?:${out})$`);
}

function smatch(sm: SM, s: string): boolean {
  if ('regex' in sm) return re2(sm.regex).test(s);
  const ic = sm.ic === true;
  const a = ic ? s.toLowerCase() : s;
  if ('exact' in sm) return a === (ic ? sm.exact.toLowerCase() : sm.exact);
  if ('prefix' in sm) return a.startsWith(ic ? sm.prefix.toLowerCase() : sm.prefix);
  return a.endsWith(ic ? sm.suffix.toLowerCase() : sm.suffix);
}

function inCidr(range: string, address: string | undefined): boolean {
  if (address === undefined) return false;
  const [a, p] = range.split('/') as [string, string | undefined];
  const fam = isIP(a);
  if (fam !== isIP(address)) return false;
  const bl = new BlockList();
  bl.addSubnet(a, p === undefined ? (fam === 4 ? 32 : 128) : Number(p), fam === 4 ? 'ipv4' : 'ipv6');
  return bl.check(address, fam === 4 ? 'ipv4' : 'ipv6');
}

/** The address Envoy sees for a dual-stack socket: an IPv4-mapped IPv6 peer is IPv4. */
function socketAddress(s: string | undefined): string | undefined {
  if (s === undefined) return undefined;
  const noZone = s.split('%')[0] as string;
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(noZone);
  return m !== null ? m[1] : isIP(noZone) === 0 ? undefined : noZone;
}

function headerValue(req: RefRequest, name: string): string | undefined {
  if (name === ':authority' || name === 'host') return req.authority === '' ? undefined : req.authority;
  if (name === ':method') return req.method;
  if (name === ':path') return req.path;
  const v = Object.hasOwn(req.headers, name) ? req.headers[name] : undefined;
  if (Array.isArray(v)) return v.length === 0 ? undefined : v.join(',');
  return typeof v === 'string' ? v : undefined;
}

function payload(req: RefRequest): Record<string, unknown> | undefined {
  if (req.claims !== undefined) return req.claims;
  if (req.requestPrincipal === undefined) return undefined;
  const i = req.requestPrincipal.lastIndexOf('/');
  return i === -1 ? { iss: req.requestPrincipal } : { iss: req.requestPrincipal.slice(0, i), sub: req.requestPrincipal.slice(i + 1) };
}

function walk(obj: unknown, path: string[]): unknown {
  let v = obj;
  for (const k of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, k)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

export interface RefOptions {
  numTrustedProxies?: number;
}

function remoteIp(req: RefRequest, o: RefOptions): string | undefined {
  const peer = socketAddress(req.remoteAddress);
  const raw = req.headers['x-forwarded-for'];
  const xff = Array.isArray(raw) ? (raw.length === 0 ? undefined : raw.join(',')) : typeof raw === 'string' ? raw : undefined;
  if (xff === undefined) return peer;
  let skip: number;
  if (o.numTrustedProxies === undefined) skip = 0;
  else if (o.numTrustedProxies === 0) return peer;
  else skip = o.numTrustedProxies - 1;
  const parts = xff.split(',');
  if (parts.length - 1 < skip) return peer;
  const candidate = (parts[parts.length - 1 - skip] as string).replace(/^[ \t\f\v\n\r]+|[ \t\f\v\n\r]+$/g, '');
  return isIP(candidate) === 0 ? peer : candidate;
}

function evalNode(n: Node, req: RefRequest, o: RefOptions): boolean {
  if ('any' in n) return true;
  if ('and' in n) return n.and.every((x) => evalNode(x, req, o));
  if ('or' in n) return n.or.some((x) => evalNode(x, req, o));
  if ('not' in n) return !evalNode(n.not, req, o);
  if ('header' in n) {
    const v = headerValue(req, n.header);
    return 'present' in n ? v !== undefined : v !== undefined && smatch(n.sm, v);
  }
  if ('urlPath' in n) return smatch(n.urlPath, req.path.split(/[?#]/)[0] as string);
  if ('uriTemplate' in n) return re2(n.uriTemplate).test(req.path.split(/[?#]/)[0] as string);
  if ('destPort' in n) return req.localPort === n.destPort;
  if ('destIp' in n) return inCidr(n.destIp, socketAddress(req.localAddress));
  if ('sni' in n) return smatch(n.sni, req.sni ?? '');
  if ('authenticated' in n) return req.peer !== undefined && req.peer.principal !== '' && smatch(n.authenticated, req.peer.principal);
  if ('directRemoteIp' in n) return inCidr(n.directRemoteIp, socketAddress(req.remoteAddress));
  if ('remoteIp' in n) return inCidr(n.remoteIp, remoteIp(req, o));
  if ('jwtString' in n) {
    const v = walk(payload(req), [n.jwtString]);
    return typeof v === 'string' && smatch(n.sm, v);
  }
  const v = walk(payload(req), n.jwtList);
  const any = (s: unknown) => typeof s === 'string' && n.sms.some((sm) => smatch(sm, s));
  return Array.isArray(v) ? v.some(any) : any(v);
}

// ---- the filters, as the builder lays them out ---------------------------------------------

export interface RefDecision {
  decision: 'allow' | 'deny';
  policy: string | undefined;
  rule: number | undefined;
  action: 'CUSTOM' | 'DENY' | 'ALLOW' | undefined;
  dryRun: { action: string; result: string; id: string | undefined }[];
  audit: string | undefined;
  /** The CUSTOM provider asked, if one was. */
  asked: string | undefined;
}

interface EnvoyPolicy {
  id: string;
  ref: string;
  rule: number;
  permissions: Node[];
  principals: Node[];
}

function matches(p: EnvoyPolicy, req: RefRequest, o: RefOptions): boolean {
  return p.permissions.some((x) => evalNode(x, req, o)) && p.principals.some((x) => evalNode(x, req, o));
}

function policiesOf(rs: Resource<'AuthorizationPolicy'>[], action: Action, bundle: string[]): EnvoyPolicy[] {
  const out: EnvoyPolicy[] = [];
  for (const r of rs) {
    const ref = `${r.metadata.namespace}/${r.metadata.name}`;
    const name = (i: number) => `ns[${r.metadata.namespace}]-policy[${r.metadata.name}]-rule[${i}]`;
    const rules = r.spec.rules ?? [];
    if (rules.length === 0) out.push({ id: name(0), ref, rule: 0, permissions: [{ not: { any: true } }], principals: [{ not: { any: true } }] });
    rules.forEach((rule, i) => {
      const g = generatePolicy(rule, r.metadata.namespace, action, bundle);
      if (g !== undefined) out.push({ id: name(i), ref, rule: i, ...g });
    });
  }
  // Envoy keeps RBAC policies in a map sorted by name; the first match is the effective policy.
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Decides as an Istio sidecar: `resources` are the validated policies of the mesh, the
 * workload is (namespace, labels), `provider` answers CUSTOM checks synchronously (allowed or
 * not), `providers` names the configured ones.
 */
export function referenceDecide(
  resources: Resource[],
  workload: { namespace: string; labels: Record<string, string> },
  req: RefRequest,
  opts: RefOptions & { trustDomain?: string; aliases?: string[]; providers: string[]; multipleCustomProviders?: boolean; ask: (provider: string, req: RefRequest) => boolean },
): RefDecision {
  const bundle = [opts.trustDomain ?? 'cluster.local', ...(opts.aliases ?? [])];
  const applies = (r: Resource<'AuthorizationPolicy'>) =>
    (r.metadata.namespace === workload.namespace || r.metadata.namespace === 'istio-system') &&
    r.spec.targetRef === undefined &&
    (r.spec.targetRefs ?? []).length === 0 &&
    Object.entries(r.spec.selector?.matchLabels ?? {}).every(([k, v]) => workload.labels[k] === v);
  const all = resources.filter((r): r is Resource<'AuthorizationPolicy'> => r.kind === 'AuthorizationPolicy' && applies(r as Resource<'AuthorizationPolicy'>));
  const dry = (r: Resource<'AuthorizationPolicy'>) => ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(r.metadata.annotations?.['istio.io/dry-run'] ?? '');
  const of = (a: string, d: boolean) => all.filter((r) => (r.spec.action ?? 'ALLOW') === a && dry(r) === d);
  const out: RefDecision = { decision: 'allow', policy: undefined, rule: undefined, action: undefined, dryRun: [], audit: undefined, asked: undefined };

  // CUSTOM: one RBAC (shadow) + ext_authz pair per provider, providers sorted.
  const custom = of('CUSTOM', false);
  const providers = [...new Set(custom.map((r) => r.spec.provider?.name ?? ''))].sort();
  for (const p of providers) {
    const hit = policiesOf(
      custom.filter((r) => r.spec.provider?.name === p),
      'DENY',
      bundle,
    ).find((x) => matches(x, req, opts));
    if (hit === undefined) continue;
    const bad = (providers.length > 1 && opts.multipleCustomProviders !== true) || !opts.providers.includes(p);
    if (bad || !opts.ask(p, req)) return { ...out, decision: 'deny', policy: hit.ref, rule: hit.rule, action: 'CUSTOM', asked: bad ? undefined : p };
    out.asked = p;
  }
  // AUDIT (RBAC LOG).
  const auditShadow = of('AUDIT', true);
  if (auditShadow.length > 0) {
    const hit = policiesOf(auditShadow, 'LOG', bundle).find((x) => matches(x, req, opts));
    out.dryRun.push({ action: 'AUDIT', result: 'allow', id: hit?.id });
  }
  out.audit = policiesOf(of('AUDIT', false), 'LOG', bundle).find((x) => matches(x, req, opts))?.id;
  // DENY.
  const denyShadow = of('DENY', true);
  if (denyShadow.length > 0) {
    const hit = policiesOf(denyShadow, 'DENY', bundle).find((x) => matches(x, req, opts));
    out.dryRun.push({ action: 'DENY', result: hit === undefined ? 'allow' : 'deny', id: hit?.id });
  }
  const denyHit = policiesOf(of('DENY', false), 'DENY', bundle).find((x) => matches(x, req, opts));
  if (denyHit !== undefined) return { ...out, decision: 'deny', policy: denyHit.ref, rule: denyHit.rule, action: 'DENY' };
  // ALLOW.
  const allowShadow = of('ALLOW', true);
  if (allowShadow.length > 0) {
    const hit = policiesOf(allowShadow, 'ALLOW', bundle).find((x) => matches(x, req, opts));
    out.dryRun.push({ action: 'ALLOW', result: hit === undefined ? 'deny' : 'allow', id: hit?.id });
  }
  const allowPolicies = of('ALLOW', false);
  if (allowPolicies.length === 0) return out;
  const allowHit = policiesOf(allowPolicies, 'ALLOW', bundle).find((x) => matches(x, req, opts));
  if (allowHit === undefined) return { ...out, decision: 'deny', action: 'ALLOW' };
  return { ...out, policy: allowHit.ref, rule: allowHit.rule, action: 'ALLOW' };
}
