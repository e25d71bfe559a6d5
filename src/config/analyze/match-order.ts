/**
 * Rule order in a VirtualService: rules after a catch-all are never used (`IST0130`), and a
 * match block that an earlier block already matches is never used (`IST0131`). The first
 * matching rule wins and Istio stops generating routes after the first catch-all (§6.1).
 *
 * @module
 */
import { formatPath, type FieldPath } from '../issues.ts';
import type { StringMatch } from '../types/common.ts';
import type { HTTPMatchRequest, HTTPRoute } from '../types/networking.ts';
import type { Analyzer } from './context.ts';

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
 * `IST0130` VirtualServiceUnreachableRule (a rule after a catch-all, or whose every match block
 * is already matched earlier) and `IST0131` VirtualServiceIneffectiveMatch (a match block that
 * duplicates, or is covered by, an earlier block). Delegate rules are skipped, as the route
 * compiler skips them.
 */
export const matchOrderAnalyzer: Analyzer = {
  name: 'virtualservice.match-order',
  codes: ['IST0130', 'IST0131'],
  description: 'VirtualService rules and match blocks that can never be used',
  *analyze(ctx, issues) {
    for (const vs of ctx.virtualServices) {
      yield;
      const rules = vs.spec.http ?? [];
      const seen: Seen[] = [];
      let catchAll: FieldPath | undefined;
      rules.forEach((rule, i) => {
        if (rule.delegate !== undefined) return;
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
        seen.push(...own);
        if (isCatchAllRule(rule)) catchAll = rulePath;
      });
    }
  },
};
