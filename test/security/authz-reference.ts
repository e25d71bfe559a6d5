/**
 * A reference implementation of Istio's authorization for the property test: deliberately
 * simple and slow, and written from the Istio and Envoy sources rather than from meshlet's
 * engine. It does what Istio does: generate Envoy RBAC config (permissions and principals made
 * of string matchers and RE2 regexes, as `pilot/pkg/security/authz/model` writes them), then
 * interpret that config the way Envoy's RBAC filter does, filter by filter
 * (CUSTOM → AUDIT → DENY → ALLOW). Nothing here is optimized and nothing is shared with
 * src/security/authz.
 */
import { BlockList, isIP } from 'node:net';
import type { Resource } from '../../src/config/resource.ts';
import type { AuthorizationRule } from '../../src/config/types/security.ts';

// ---- the request ------------------------------------------------------------------------

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

// ---- Envoy config, as Istio generates it -------------------------------------------------

/** envoy.type.matcher.v3.StringMatcher. */
type SM = { exact: string; ic?: boolean } | { prefix: string; ic?: boolean } | { suffix: string; ic?: boolean } | { regex: string };

/** A node of an RBAC permission or principal. */
type Node =
  | { any: true }
  | { and: Node[] }
  | { or: Node[] }
  | { not: Node }
  | { header: string; present: true }
  | { header: string; sm: SM }
  | { urlPath: SM }
  | { uriTemplate: string }
  | { destPort: number }
  | { destIp: string }
  | { sni: SM }
  | { authenticated: SM }
  | { directRemoteIp: string }
  | { remoteIp: string }
  | { jwtString: string; sm: SM }
  | { jwtList: string[]; sms: SM[] };

class GenError extends Error {}

/** Go's regexp.QuoteMeta. */
function quoteMeta(s: string): string {
  return s.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');
}

/** matcher.StringMatcherWithPrefix. */
function stringMatcherWithPrefix(v: string, prefix: string): SM {
  if (v === '*') return { regex: '.+' };
  if (v.startsWith('*')) return prefix === '' ? { suffix: v.slice(1) } : { regex: `${prefix}.*${quoteMeta(v.slice(1))}` };
  if (v.endsWith('*')) return { prefix: prefix + v.slice(0, -1) };
  return { exact: prefix + v };
}

/** matcher.HeaderMatcher / HostMatcher. */
function headerMatcher(name: string, v: string, ic: boolean): Node {
  if (v === '*') return { header: name, present: true };
  if (v.startsWith('*')) return { header: name, sm: { suffix: v.slice(1), ic } };
  if (v.endsWith('*')) return { header: name, sm: { prefix: v.slice(0, -1), ic } };
  return { header: name, sm: { exact: v, ic } };
}

function cidr(v: string): string {
  const [a, p] = v.split('/');
  if (isIP(a ?? '') === 0) throw new GenError(`bad ip ${v}`);
  if (p !== undefined && !(/^\d+$/.test(p) && Number(p) <= (isIP(a ?? '') === 4 ? 32 : 128))) throw new GenError(`bad prefix ${v}`);
  return v;
}

function port(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 65535) throw new GenError(`bad port ${v}`);
  return Number(v);
}

/** The trust-domain bundle functions (bundle.go). */
function replaceAliases(bundle: string[], principals: string[]): string[] {
  const out: string[] = [];
  const prefixM = (a: string, p: string) => p.endsWith('*') && a.startsWith(p.slice(0, -1));
  const suffixM = (a: string, p: string) => p.startsWith('*') && a.endsWith(p.slice(1));
  for (const pr of principals) {
    const parts = pr.split('/');
    if (parts.length !== 5 || parts[0] === '*') {
      out.push(pr);
      continue;
    }
    const td = parts[0] as string;
    const match = bundle.some((s) => td === s || s === '*' || prefixM(td, s) || prefixM(s, td) || suffixM(td, s) || suffixM(s, td));
    if (!match && td !== 'cluster.local') {
      out.push(pr);
      continue;
    }
    const mine: string[] = [];
    for (const t of bundle) {
      const np = suffixM(t, td) ? pr : [t, ...parts.slice(1)].join('/');
      if (!mine.includes(np)) mine.push(np);
    }
    out.push(...mine);
  }
  return out;
}

function expandAliases(bundle: string[], values: string[]): string[] {
  const out: string[] = [];
  for (const v of values) for (const x of bundle.includes(v) ? bundle : [v]) if (!out.includes(x)) out.push(x);
  return out;
}

type Action = 'ALLOW' | 'DENY' | 'LOG';

/** One (key, values, notValues) of the model with its generator. */
interface ModelRule {
  key: string;
  values: string[];
  notValues: string[];
  one?: (v: string) => Node;
  all?: (vs: string[]) => Node;
}

function requestPrincipalNode(values: string[]): Node {
  const or: Node[] = [];
  for (const v of values) {
    const idx = v.lastIndexOf('/');
    const found = idx >= 0;
    const iss = found ? v.slice(0, idx) : v;
    const sub = found ? v.slice(idx + 1) : '';
    let mi: SM;
    let ms: SM;
    if (v === '*') [mi, ms] = [{ regex: '.+' }, { regex: '.+' }];
    else if (v.startsWith('*')) {
      if (found) [mi, ms] = [iss === '*' ? { regex: '.+' } : { suffix: iss.slice(1) }, { exact: sub }];
      else [mi, ms] = [{ regex: '.+' }, { suffix: v.slice(1) }];
    } else if (v.endsWith('*')) {
      if (found) [mi, ms] = [{ exact: iss }, sub === '*' ? { regex: '.+' } : { prefix: sub.slice(0, -1) }];
      else [mi, ms] = [{ prefix: v.slice(0, -1) }, { regex: '.+' }];
    } else [mi, ms] = [{ exact: iss }, { exact: sub }];
    or.push({ and: [{ jwtString: 'iss', sm: mi }, { jwtString: 'sub', sm: ms }] });
  }
  return or.length === 1 ? (or[0] as Node) : { or };
}

function claimsPath(s: string): string[] {
  const inBrackets = (x: string) => {
    if (!x.startsWith('[') || !x.endsWith(']')) throw new GenError(`bad key ${x}`);
    return x.slice(1, -1);
  };
  const claims: string[] = [];
  let begin = 0;
  while (begin < s.length) {
    let end = -1;
    if (s[begin] === '[') {
      for (let i = begin + 1; i < s.length; i++) {
        if (s[i] === '[') break;
        if (s[i] === ']') {
          end = i;
          break;
        }
      }
    }
    if (end === -1) return [inBrackets(s)];
    claims.push(s.slice(begin + 1, end));
    begin = end + 1;
  }
  return claims;
}

function srcNamespace(v: string): Node {
  return { authenticated: { regex: `.*/ns/${v.split('*').map(quoteMeta).join('.*')}/.*` } };
}

function srcServiceAccount(ns: string, v: string): Node {
  const [a, b] = v.includes('/') ? [v.slice(0, v.indexOf('/')), v.slice(v.indexOf('/') + 1)] : [ns, v];
  return { authenticated: { regex: `spiffe://.+/ns/${quoteMeta(a)}/(.+/|)sa/${quoteMeta(b)}(/.+)?` } };
}

function srcTrustDomain(v: string): Node {
  if (v === '*') return { authenticated: { prefix: 'spiffe://' } };
  if (!v.includes('*')) return { authenticated: { prefix: `spiffe://${v}/` } };
  const [p0, p1] = [v.slice(0, v.indexOf('*')), v.slice(v.indexOf('*') + 1)];
  return { authenticated: { regex: `spiffe://${quoteMeta(p0)}[^/]*${quoteMeta(p1)}/.*` } };
}

function generatePart(rules: ModelRule[], action: Action): Node {
  const and: Node[] = [];
  for (const r of rules) {
    for (const [list, negate] of [
      [r.values, false],
      [r.notValues, true],
    ] as const) {
      if (list.length === 0) continue;
      if (r.all !== undefined) {
        try {
          const n = r.all(list);
          and.push(negate ? { not: n } : n);
        } catch (e) {
          if (action === 'ALLOW') throw e;
        }
        continue;
      }
      const or: Node[] = [];
      for (const v of list) {
        try {
          or.push((r.one as (v: string) => Node)(v));
        } catch (e) {
          if (action === 'ALLOW') throw e;
        }
      }
      if (or.length > 0) and.push(negate ? { not: { or } } : { or });
    }
  }
  return { and: and.length === 0 ? [{ any: true }] : and };
}

/** model.New + MigrateTrustDomain + Generate: one Envoy policy, or undefined when the rule is skipped. */
export function generatePolicy(rule: AuthorizationRule, ns: string, action: Action, bundle: string[]): { permissions: Node[]; principals: Node[] } | undefined {
  const perm: ModelRule[] = [];
  const princ: ModelRule[] = [];
  const mk = (key: string, values: string[] | undefined, notValues: string[] | undefined, g: Partial<ModelRule>): ModelRule | undefined =>
    (values?.length ?? 0) + (notValues?.length ?? 0) === 0 ? undefined : { key, values: values ?? [], notValues: notValues ?? [], ...g };
  const push = (list: ModelRule[], r: ModelRule | undefined) => r !== undefined && list.push(r);
  for (const w of rule.when ?? []) {
    const k = w.key;
    const [v, nv] = [w.values, w.notValues];
    if (k === 'destination.ip') push(perm, mk(k, v, nv, { one: (x) => ({ destIp: cidr(x) }) }));
    else if (k === 'destination.port') push(perm, mk(k, v, nv, { one: (x) => ({ destPort: port(x) }) }));
    else if (k === 'connection.sni') push(perm, mk(k, v, nv, { one: (x) => ({ sni: stringMatcherWithPrefix(x, '') }) }));
    else if (k.startsWith('experimental.envoy.filters.'))
      push(
        perm,
        mk(k, v, nv, {
          all: () => {
            throw new GenError('no envoy metadata in meshlet');
          },
        }),
      );
    else if (k === 'source.ip') push(princ, mk(k, v, nv, { one: (x) => ({ directRemoteIp: cidr(x) }) }));
    else if (k === 'remote.ip') push(princ, mk(k, v, nv, { one: (x) => ({ remoteIp: cidr(x) }) }));
    else if (k === 'source.namespace') push(princ, mk(k, v, nv, { one: srcNamespace }));
    else if (k === 'source.trustDomain') push(princ, mk(k, v, nv, { one: srcTrustDomain }));
    else if (k === 'source.serviceAccount') push(princ, mk(k, v, nv, { one: (x) => srcServiceAccount(ns, x) }));
    else if (k === 'source.principal') push(princ, mk(k, v, nv, { one: (x) => ({ authenticated: stringMatcherWithPrefix(x, 'spiffe://') }) }));
    else if (k === 'request.auth.principal') push(princ, mk(k, v, nv, { all: requestPrincipalNode }));
    else if (k === 'request.auth.audiences') push(princ, mk(k, v, nv, { all: (xs) => ({ jwtList: ['aud'], sms: xs.map((x) => stringMatcherWithPrefix(x, '')) }) }));
    else if (k === 'request.auth.presenter') push(princ, mk(k, v, nv, { all: (xs) => ({ jwtList: ['azp'], sms: xs.map((x) => stringMatcherWithPrefix(x, '')) }) }));
    else if (k.startsWith('request.headers'))
      push(
        princ,
        mk(k, v, nv, {
          one: (x) => {
            const rest = k.slice('request.headers'.length);
            if (!rest.startsWith('[') || !rest.endsWith(']') || rest.length < 3) throw new GenError(`bad key ${k}`);
            return headerMatcher(rest.slice(1, -1).toLowerCase(), x, false);
          },
        }),
      );
    else if (k.startsWith('request.auth.claims')) push(princ, mk(k, v, nv, { all: (xs) => ({ jwtList: claimsPath(k.slice('request.auth.claims'.length)), sms: xs.map((x) => stringMatcherWithPrefix(x, '')) }) }));
    else return undefined; // unknown attribute: model.New fails, the rule is skipped
  }
  // MigrateTrustDomain, applied to every model rule of the principals.
  const migrate = (list: ModelRule[]) => {
    for (const r of list) {
      if (r.key === 'source.principal') [r.values, r.notValues] = [replaceAliases(bundle, r.values), replaceAliases(bundle, r.notValues)];
      if (r.key === 'source.trustDomain') [r.values, r.notValues] = [expandAliases(bundle, r.values), expandAliases(bundle, r.notValues)];
    }
  };
  const principals: ModelRule[][] = [];
  for (const f of rule.from ?? []) {
    const s = f.source;
    const merged: ModelRule[] = [];
    push(merged, mk('source.principal', s.principals, s.notPrincipals, { one: (x) => ({ authenticated: stringMatcherWithPrefix(x, 'spiffe://') }) }));
    push(merged, mk('request.auth.principal', s.requestPrincipals, s.notRequestPrincipals, { all: requestPrincipalNode }));
    push(merged, mk('source.serviceAccount', s.serviceAccounts, s.notServiceAccounts, { one: (x) => srcServiceAccount(ns, x) }));
    push(merged, mk('source.trustDomain', s.trustDomains, s.notTrustDomains, { one: srcTrustDomain }));
    push(merged, mk('source.namespace', s.namespaces, s.notNamespaces, { one: srcNamespace }));
    push(merged, mk('remote.ip', s.remoteIpBlocks, s.notRemoteIpBlocks, { one: (x) => ({ remoteIp: cidr(x) }) }));
    push(merged, mk('source.ip', s.ipBlocks, s.notIpBlocks, { one: (x) => ({ directRemoteIp: cidr(x) }) }));
    principals.push([...merged, ...princ.map((r) => ({ ...r }))]);
  }
  if ((rule.from ?? []).length === 0) principals.push(princ.map((r) => ({ ...r })));
  const permissions: ModelRule[][] = [];
  for (const t of rule.to ?? []) {
    const o = t.operation;
    const merged: ModelRule[] = [];
    push(merged, mk(':authority', o.hosts, o.notHosts, { one: (x) => headerMatcher(':authority', x, true) }));
    push(merged, mk(':method', o.methods, o.notMethods, { one: (x) => headerMatcher(':method', x, false) }));
    push(
      merged,
      mk('path', o.paths, o.notPaths, { one: (x) => (x.includes('{*}') || x.includes('{**}') ? { uriTemplate: envoyTemplateRegex(x) } : { urlPath: stringMatcherWithPrefix(x, '') }) }),
    );
    push(merged, mk('destination.port', o.ports, o.notPorts, { one: (x) => ({ destPort: port(x) }) }));
    permissions.push([...merged, ...perm.map((r) => ({ ...r }))]);
  }
  if ((rule.to ?? []).length === 0) permissions.push(perm.map((r) => ({ ...r })));
  for (const p of principals) migrate(p);
  try {
    return { permissions: permissions.map((p) => generatePart(p, action)), principals: principals.map((p) => generatePart(p, action)) };
  } catch (e) {
    if (e instanceof GenError) return undefined;
    throw e;
  }
}

/** Istio's {*}/{**} rewrite, then Envoy's parsePathPatternSyntax and toRegexPattern, as an RE2 regex. */
function envoyTemplateRegex(istio: string): string {
  const t = istio.split('{**}').join('**').split('{*}').join('*');
  const lit = "a-zA-Z0-9-._~%!$&'()+,;:@=";
  if (!/^\/[!-~]*$/.test(t)) throw new GenError('bad template');
  const validLiteral = (s: string) => new RegExp(`^[${lit}]+$`).test(s);
  const esc = (s: string) => s.replace(/[$()+.]/g, '\\$&');
  const segs: string[] = [];
  const ops: string[] = [];
  let suffix = '';
  let rest = t.slice(1);
  while (rest.length > 0) {
    if (rest.startsWith('**')) {
      segs.push(`[${lit}/]*`);
      ops.push('**');
      rest = rest.slice(2);
    } else if (rest.startsWith('*')) {
      segs.push(`[${lit}]+`);
      ops.push('*');
      rest = rest.slice(1);
    } else {
      const l = rest.split('/')[0] as string;
      if (!validLiteral(l)) throw new GenError('bad literal');
      segs.push(esc(l));
      rest = rest.slice(l.length);
    }
    if (rest === '') break;
    if (rest === '/') {
      segs.push('');
      break;
    }
    if (rest.startsWith('/')) {
      rest = rest.slice(1);
      continue;
    }
    if (!validLiteral(rest)) throw new GenError('bad suffix');
    suffix = esc(rest);
    break;
  }
  const firstText = ops.indexOf('**');
  if (firstText !== -1 && ops.length > firstText + 1) throw new GenError('glob after text glob');
  return `/${segs.join('/')}${suffix}`;
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
