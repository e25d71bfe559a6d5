/**
 * Rule order in a VirtualService: rules after a catch-all are never used (`IST0130`), and a
 * match block that an earlier block already matches is never used (`IST0131`). The first
 * matching rule wins and Istio stops generating routes after the first catch-all (§6.1).
 * HTTP, TCP and TLS rules are checked; Istio reports these as validation warnings.
 *
 * @module
 */
import { isDelegate } from '../delegation.ts';
import { formatPath, type FieldPath, type IssueList } from '../issues.ts';
import type { Resource } from '../resource.ts';
import type { StringMatch } from '../types/common.ts';
import type { HTTPMatchRequest, HTTPRoute } from '../types/networking.ts';
import type { AnalysisContext, Analyzer } from './context.ts';

/** True if a URI condition matches every path: prefix `/` or empty, regex `.*` or `*`. */
function isAnyUri(uri: StringMatch | undefined): boolean {
  return uri === undefined || uri.prefix === '/' || uri.prefix === '' || uri.regex === '.*' || uri.regex === '*';
}

/**
 * True if the match block is a catch-all in Istio's sense (`IsCatchAllRoute`): no conditions,
 * or a uri prefix `/` or regex `.*` with no header, query or other conditions.
 *
 * This is the same definition as `isCatchAllMatch` in src/routing/request-matcher.ts (config may
 * not import routing); the two must stay identical, so routing could import this one instead.
 */
export function isCatchAllMatch(m: HTTPMatchRequest | undefined): boolean {
  if (m === undefined) return true;
  return (
    isAnyUri(m.uri) &&
    m.scheme === undefined &&
    m.method === undefined &&
    m.authority === undefined &&
    Object.keys(m.headers ?? {}).length === 0 &&
    Object.keys(m.withoutHeaders ?? {}).length === 0 &&
    Object.keys(m.queryParams ?? {}).length === 0 &&
    m.port === undefined &&
    m.sourceLabels === undefined &&
    m.sourceNamespace === undefined &&
    m.gateways === undefined
  );
}

/** True if the rule matches every request: no match blocks, or a catch-all block. */
export function isCatchAllRule(rule: HTTPRoute): boolean {
  return rule.match === undefined || rule.match.length === 0 || rule.match.some((m) => isCatchAllMatch(m));
}

/** A stable JSON form (sorted keys) so that key order in YAML does not matter. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}

const MAP_FIELDS = ['headers', 'withoutHeaders', 'queryParams', 'sourceLabels'] as const;
const SCALAR_FIELDS = ['scheme', 'method', 'authority', 'port', 'sourceNamespace'] as const;

/**
 * The conditions of a block in a normal form: without `name` and `statPrefix` (they do not
 * affect matching), `ignoreUriCase: false` and empty maps dropped, header names lower-cased
 * (Envoy matches header names ignoring case, §6.10).
 */
function normalize(m: HTTPMatchRequest): HTTPMatchRequest {
  const { name: _n, statPrefix: _s, ignoreUriCase, headers, withoutHeaders, ...rest } = m;
  const out: HTTPMatchRequest = { ...rest };
  if (ignoreUriCase === true) out.ignoreUriCase = true;
  const lower = (h: Record<string, StringMatch> | undefined) => (h === undefined ? undefined : Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v])));
  out.headers = lower(headers);
  out.withoutHeaders = lower(withoutHeaders);
  for (const f of MAP_FIELDS) if (out[f] !== undefined && Object.keys(out[f]).length === 0) delete out[f];
  if (out.uri !== undefined && isAnyUri(out.uri)) delete out.uri;
  return out;
}

/** True if every path the later block `l` accepts is accepted by the earlier block `e`. */
function uriCovers(e: HTTPMatchRequest, l: HTTPMatchRequest): boolean {
  if (e.uri === undefined) return true;
  if (l.uri === undefined) return false;
  if (e.uri.regex !== undefined) return l.uri.regex === e.uri.regex;
  if (l.uri.regex !== undefined) return false;
  // ignoreUriCase applies to exact and prefix only; a case-insensitive later block accepts more.
  if (l.ignoreUriCase === true && e.ignoreUriCase !== true) return false;
  const fold = (s: string) => (e.ignoreUriCase === true ? s.toLowerCase() : s);
  const later = l.uri.exact ?? l.uri.prefix;
  if (later === undefined) return false;
  if (e.uri.exact !== undefined) return l.uri.exact !== undefined && fold(later) === fold(e.uri.exact);
  return e.uri.prefix !== undefined && fold(later).startsWith(fold(e.uri.prefix));
}

/**
 * True if the earlier (normalized) block `e` matches every request the later block `l` matches:
 * its URI condition is wider and each of its other conditions is also a condition of `l`.
 * Only a sufficient test: overlaps it cannot prove are not reported.
 */
function covers(e: HTTPMatchRequest, l: HTTPMatchRequest): boolean {
  if (!uriCovers(e, l)) return false;
  for (const f of SCALAR_FIELDS) if (e[f] !== undefined && canonical(e[f]) !== canonical(l[f])) return false;
  for (const f of MAP_FIELDS) {
    const em = e[f] as Record<string, unknown> | undefined;
    const lm = l[f] as Record<string, unknown> | undefined;
    for (const k of Object.keys(em ?? {})) if (lm === undefined || canonical(lm[k]) !== canonical(em?.[k])) return false;
  }
  if (e.gateways !== undefined && (l.gateways === undefined || !l.gateways.every((g) => e.gateways?.includes(g)))) return false;
  return true;
}

interface Seen {
  readonly path: FieldPath;
  readonly block: HTTPMatchRequest;
  readonly key: string;
}

/**
 * Whether the requests a root rule sends to its delegate all stop there: only when the delegate
 * (found and exported to the root's namespace) has a rule that matches every request. Otherwise
 * requests that no delegate rule matches go on to the root's next rules, as in Istio's merge,
 * and a missing delegate leaves the rule out altogether (MESHLET0102).
 */
function delegateTakesAll(vs: Resource<'VirtualService'>, rule: HTTPRoute, ctx: AnalysisContext): boolean {
  const ns = rule.delegate?.namespace ?? vs.metadata.namespace;
  const name = rule.delegate?.name ?? '';
  const delegate = ctx.virtualServices.find((d) => isDelegate(d) && d.metadata.namespace === ns && d.metadata.name === name);
  if (delegate === undefined) return false;
  const exportTo = delegate.spec.exportTo ?? [];
  if (exportTo.length > 0 && !exportTo.some((e) => e === '*' || e === vs.metadata.namespace || (e === '.' && ns === vs.metadata.namespace))) return false;
  return (delegate.spec.http ?? []).some((r) => r.delegate === undefined && isCatchAllRule(r));
}

function checkHttp(vs: Resource<'VirtualService'>, ctx: AnalysisContext, issues: IssueList): void {
  const seen: Seen[] = [];
  let catchAll: FieldPath | undefined;
  (vs.spec.http ?? []).forEach((rule, i) => {
    const rulePath: FieldPath = ['spec', 'http', i];
    if (catchAll !== undefined) {
      issues.at(vs, rulePath, 'warning', `rule ${formatPath(rulePath)} is unreachable: ${formatPath(catchAll)} matches every request`, 'IST0130');
      return;
    }
    const blocks = rule.match ?? [];
    const coveredBy: FieldPath[] = [];
    const own: Seen[] = [];
    blocks.forEach((m, j) => {
      const path: FieldPath = [...rulePath, 'match', j];
      const block = normalize(m);
      const key = canonical(block);
      const earlier = [...seen, ...own];
      const dup = earlier.find((s) => s.key === key) ?? earlier.find((s) => covers(s.block, block));
      own.push({ path, block, key });
      if (dup === undefined) return;
      coveredBy.push(dup.path);
      const how = dup.key === key ? `it duplicates ${formatPath(dup.path)}` : `${formatPath(dup.path)} already matches every request it matches`;
      issues.at(vs, path, 'info', `match block ${formatPath(path)} is never used: ${how}`, 'IST0131');
    });
    if (blocks.length > 0 && coveredBy.length === blocks.length) {
      const by = [...new Set(coveredBy.map((p) => formatPath(p)))].join(', ');
      issues.at(vs, rulePath, 'warning', `rule ${formatPath(rulePath)} is unreachable: earlier match blocks (${by}) already match every request it matches`, 'IST0130');
    }
    // A rule that hands requests to a delegate stops them only if the delegate takes them all.
    if (rule.delegate !== undefined && !delegateTakesAll(vs, rule, ctx)) return;
    seen.push(...own);
    if (isCatchAllRule(rule)) catchAll = rulePath;
  });
}

/**
 * TCP and TLS rules, as Istio checks them (`analyzeUnreachableTCPRules`/`TLSRules`): a rule
 * after one without match blocks is unreachable, and a match block equal to an earlier one
 * (same port, SNI hosts, addresses, source labels, …) is never used.
 */
function checkL4(vs: Resource<'VirtualService'>, section: 'tcp' | 'tls', issues: IssueList): void {
  const seen = new Map<string, FieldPath>();
  let catchAll: FieldPath | undefined;
  (vs.spec[section] ?? []).forEach((rule, i) => {
    const rulePath: FieldPath = ['spec', section, i];
    const blocks: readonly object[] = rule.match ?? [];
    if (catchAll !== undefined) {
      const why = blocks.length === 0 ? `only the last rule may have no match, and ${formatPath(catchAll)} has none` : `${formatPath(catchAll)} has no match and takes every connection`;
      issues.at(vs, rulePath, 'warning', `rule ${formatPath(rulePath)} is unreachable: ${why}`, 'IST0130');
      return;
    }
    if (blocks.length === 0) {
      catchAll = rulePath;
      return;
    }
    let duplicates = 0;
    blocks.forEach((m, j) => {
      const path: FieldPath = [...rulePath, 'match', j];
      const key = canonical(m);
      const dup = seen.get(key);
      if (dup === undefined) {
        seen.set(key, path);
        return;
      }
      duplicates++;
      issues.at(vs, path, 'info', `match block ${formatPath(path)} is never used: it duplicates ${formatPath(dup)}`, 'IST0131');
    });
    if (duplicates === blocks.length) issues.at(vs, rulePath, 'warning', `rule ${formatPath(rulePath)} is unreachable: earlier rules have all its match blocks`, 'IST0130');
  });
}

/**
 * `IST0130` VirtualServiceUnreachableRule (a rule after a catch-all, or whose every match block
 * is already matched earlier) and `IST0131` VirtualServiceIneffectiveMatch (a match block that
 * duplicates, or is covered by, an earlier block), for HTTP, TCP and TLS rules. A root rule that
 * delegates is checked like any rule; the rules after it stay reachable unless its delegate has
 * a rule matching every request.
 */
export const matchOrderAnalyzer: Analyzer = {
  name: 'virtualservice.match-order',
  codes: ['IST0130', 'IST0131'],
  description: 'VirtualService rules and match blocks that can never be used',
  *analyze(ctx, issues) {
    for (const vs of ctx.virtualServices) {
      yield;
      checkHttp(vs, ctx, issues);
      checkL4(vs, 'tcp', issues);
      checkL4(vs, 'tls', issues);
    }
  },
};
