/**
 * The reference implementation's first half (see authz-reference.ts): Envoy RBAC config
 * generated from a rule as Istio's `pilot/pkg/security/authz/model` writes it — permissions
 * and principals made of string matchers and RE2 regexes — including the trust-domain bundle
 * and Envoy's URI-template parser. Written from the Go and C++ sources; nothing is shared with
 * src/security/authz.
 */
import { isIP } from 'node:net';
import type { AuthorizationRule } from '../../src/config/types/security.ts';

// ---- Envoy config, as Istio generates it -------------------------------------------------

/** envoy.type.matcher.v3.StringMatcher. */
export type SM = { exact: string; ic?: boolean } | { prefix: string; ic?: boolean } | { suffix: string; ic?: boolean } | { regex: string };

/** A node of an RBAC permission or principal. */
export type Node =
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

export type Action = 'ALLOW' | 'DENY' | 'LOG';

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
