/**
 * The routing category's model: a case is a config, a workload and a request, and what Istio's
 * tests say a sidecar does with the request; meshlet's answer is read from its compiled routing
 * (`compileSnapshot(...).routes.route(head, draw)`), projected onto the facts the case names.
 */
import { readFileSync } from 'node:fs';
import { IssueList } from '../../src/config/issues.ts';
import { checkDocuments } from '../../src/config/load-config.ts';
import { parseText } from '../../src/config/load.ts';
import type { AnyResource } from '../../src/config/resource.ts';
import { compileSnapshot } from '../../src/routing/compile.ts';
import type { RequestHead } from '../../src/routing/request-head.ts';
import { NO_ROUTE, type RouteDecision } from '../../src/routing/route-table.ts';

/** What a sidecar does with a request, as the facts a case checks. */
export interface Outcome {
  /** `forward`, `redirect`, `direct-response`, `404 NR` (known host, no rule), or `passthrough` (not a mesh host). */
  readonly result?: string;
  /** The rule that took the request: its `name`, else its index in the VirtualService (`default`: no VirtualService). */
  readonly rule?: string;
  /** `host:port`, with `|subset` when there is one. */
  readonly to?: string;
  /** Redirect: `code authority+uri`, or `code authority prefix <prefixRewrite>`. */
  readonly redirect?: string;
  /** Direct response status and body. */
  readonly respond?: string;
  /** Route timeout in ms, or `none`. */
  readonly timeoutMs?: number | 'none';
  /** Rewrites, `; `-joined: `prefix X`, `regex A → B`, `authority X`. */
  readonly rewrite?: string;
  /** Fault: `delay 7000ms @100%`, `abort 500 @100%`, `none`. */
  readonly fault?: string;
  /** Response header operations: `set name=value`, `; `-joined. */
  readonly responseHeaders?: string;
}

/** A request, with the defaults GET, http, path `/`. */
export interface Request {
  readonly authority: string;
  readonly path?: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** The weighted-pick draw (an integer; `draw % total weight` picks the destination). @defaultValue 0 */
  readonly draw?: number;
}

/** One hand-written routing case. */
export interface RoutingCase {
  /** Istio's test (or sample) the case comes from: the group in the report. */
  readonly test: string;
  /** Unique in its test: the row or subtest, and the request. */
  readonly name: string;
  /** `file:line`. */
  readonly source: string;
  /** The resources, as YAML documents (Istio's, wrapped as the case says). */
  readonly config: string;
  /** Extra config files (read from disk, e.g. Istio's Bookinfo sample). */
  readonly files?: readonly string[];
  readonly workload?: { readonly namespace?: string; readonly labels?: Readonly<Record<string, string>> };
  readonly request: Request;
  readonly expect: Outcome;
}

function headerOps(ops: { set: readonly (readonly [string, string])[]; add: readonly (readonly [string, string])[]; remove: readonly string[] } | undefined): string {
  if (ops === undefined) return 'none';
  const parts = [...ops.set.map(([k, v]) => `set ${k}=${v}`), ...ops.add.map(([k, v]) => `add ${k}=${v}`), ...ops.remove.map((k) => `remove ${k}`)];
  return parts.length === 0 ? 'none' : parts.join('; ');
}

/** Every fact meshlet's decision gives. */
export function outcomeOf(d: RouteDecision | typeof NO_ROUTE | undefined): Required<Outcome> | { result: string } {
  if (d === undefined) return { result: 'passthrough' };
  if (d === NO_ROUTE) return { result: '404 NR' };
  const r = d.route;
  const t = d.target;
  const rw = r.rewrite;
  const rewrite: string[] = [];
  if (rw?.uriPrefix !== undefined) rewrite.push(`prefix ${rw.uriPrefix}`);
  if (rw?.uriRegex !== undefined) rewrite.push(`regex ${rw.uriRegex.source} → ${rw.uriRegexReplacement ?? ''}`);
  if (rw?.authority !== undefined) rewrite.push(`authority ${rw.authority}`);
  const f = r.fault;
  const fault: string[] = [];
  if (f?.delayMs !== undefined) fault.push(`delay ${f.delayMs}ms @${f.delayFraction * 100}%`);
  if (f?.abortHttpStatus !== undefined) fault.push(`abort ${f.abortHttpStatus} @${f.abortFraction * 100}%`);
  const red = r.redirect;
  return {
    result: r.action,
    rule: r.virtualService === undefined ? 'default' : r.name.slice(r.name.indexOf('.') + 1),
    to: t === undefined ? 'none' : `${t.host}:${t.port}${t.subset === undefined ? '' : `|${t.subset}`}`,
    redirect: red === undefined ? 'none' : `${red.redirectCode} ${red.authority ?? ''}${red.prefixRewrite !== undefined ? ` prefix ${red.prefixRewrite}` : (red.uri ?? '')}`,
    respond: r.directResponse === undefined ? 'none' : `${r.directResponse.status} ${r.directResponse.body?.toString() ?? ''}`.trim(),
    timeoutMs: r.timeoutMs ?? 'none',
    rewrite: rewrite.length === 0 ? 'none' : rewrite.join('; '),
    fault: fault.length === 0 ? 'none' : fault.join('; '),
    responseHeaders: headerOps(r.responseHeaders),
  };
}

/** The facts of `all` that `expect` names, in `expect`'s key order, printed. */
export function project(all: Record<string, unknown>, expect: Outcome): string {
  return JSON.stringify(Object.fromEntries(Object.keys(expect).map((k) => [k, all[k] ?? '(not applicable)'])));
}

/** Loads a case's config as meshlet would (validation and analysis) and compiles the workload's snapshot. */
export function routeCase(c: RoutingCase): { got: string; detail: string } {
  const issues = new IssueList();
  const docs = [...(c.files ?? []).flatMap((f) => parseText(readFileSync(f, 'utf8'), f, issues)), ...parseText(c.config, `${c.test}.yaml`, issues)];
  const loaded = checkDocuments(docs, {}, issues);
  const errors = issues.all.filter((i) => i.level === 'error' && !loaded.findings.includes(i));
  if (errors.length > 0) return { got: `config refused: ${errors.map(String).join('; ')}`, detail: errors.map(String).join('; ') };
  const snap = compileSnapshot(loaded.resources as readonly AnyResource[], { service: 'client', namespace: c.workload?.namespace ?? 'default', labels: c.workload?.labels ?? {} });
  const q = c.request;
  const head: RequestHead = { method: q.method ?? 'GET', scheme: 'http', authority: q.authority, path: q.path ?? '/', headers: q.headers ?? {} };
  const d = snap.routes.route(head, q.draw ?? 0);
  const all = outcomeOf(d);
  return { got: project(all, c.expect), detail: d !== undefined && d !== NO_ROUTE ? String(d.route) : JSON.stringify(all) };
}
