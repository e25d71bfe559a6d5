/**
 * VirtualService delegation, as Istio merges it (pilot/pkg/model/virtualservice_controller.go
 * `mergeVirtualServices` and virtualservice.go `MergeHTTPRoutes`): a root VirtualService's HTTP
 * rule with `delegate: {name, namespace}` is replaced by the rules of that delegate — a
 * VirtualService without hosts — each merged with the root rule: match conditions combined (a
 * child match must fall inside a root match, else the child rule is dropped), and the root's
 * rewrite, timeout, retries, fault, mirrors, CORS and headers used where the child has none.
 * One level only; a delegate may be shared by several roots.
 *
 * @module
 */
import { resolveHost } from './hosts.ts';
import type { AnyResource, Resource } from './resource.ts';
import type { StringMatch } from './types/common.ts';
import type { Destination, HTTPMatchRequest, HTTPRoute, VirtualServiceSpec } from './types/networking.ts';

/** Why a root rule's delegate was not merged (Istio logs and skips the rule). */
export interface DelegateProblem {
  /** The root VirtualService. */
  readonly root: Resource<'VirtualService'>;
  /** Index of the rule in the root's `http`. */
  readonly rule: number;
  /** `namespace/name` of the delegate. */
  readonly delegate: string;
  readonly reason: 'not-found' | 'not-exported';
}

/** VirtualServices with delegation applied. */
export interface DelegationResult {
  /** Every VirtualService with hosts; roots carry their merged rules (and the same ref, source and order). */
  readonly virtualServices: readonly Resource<'VirtualService'>[];
  /** Root rules whose delegate could not be merged (they are left out, as in Istio). */
  readonly problems: readonly DelegateProblem[];
}

/** True for a delegate VirtualService: one without hosts, used only through a root's `delegate`. */
export function isDelegate(vs: Resource<'VirtualService'>): boolean {
  return (vs.spec.hosts ?? []).length === 0;
}

/** Whether `delegate` is exported to `namespace` (no exportTo: everyone, Istio's default). */
function exportedTo(delegate: Resource<'VirtualService'>, namespace: string): boolean {
  const exportTo = delegate.spec.exportTo ?? [];
  if (exportTo.length === 0) return true;
  return exportTo.some((e) => e === '*' || e === namespace || (e === '.' && delegate.metadata.namespace === namespace));
}

/** Short destination hosts of a delegate resolve in the delegate's namespace (Istio resolves them before merging). */
function resolveDestination(d: Destination, namespace: string): Destination {
  return { ...d, host: resolveHost(d.host, namespace) };
}

function resolveRule(rule: HTTPRoute, namespace: string): HTTPRoute {
  return {
    ...rule,
    route: rule.route?.map((r) => ({ ...r, destination: resolveDestination(r.destination, namespace) })),
    mirror: rule.mirror === undefined ? undefined : resolveDestination(rule.mirror, namespace),
    mirrors: rule.mirrors?.map((m) => ({ ...m, destination: resolveDestination(m.destination, namespace) })),
  };
}

/** Istio's `stringMatchConflict`: whether a child condition does not fall inside the root's. */
function stringMatchConflict(root: StringMatch | undefined, leaf: StringMatch | undefined): boolean {
  if (root === undefined || leaf === undefined) return false;
  const rootRegex = root.regex ?? '';
  const leafRegex = leaf.regex ?? '';
  const has = (m: StringMatch) => (m.regex ?? '') !== '' || (m.prefix ?? '') !== '' || (m.exact ?? '') !== '';
  if (rootRegex !== '' && has(leaf)) return true;
  if (leafRegex !== '' && has(root)) return true;
  const exact = root.exact ?? '';
  if (exact !== '') return (leaf.prefix ?? '') !== '' || (leaf.exact ?? '') !== exact;
  const prefix = root.prefix ?? '';
  if (prefix !== '') {
    if ((leaf.prefix ?? '') !== '') return !(leaf.prefix as string).startsWith(prefix);
    if ((leaf.exact ?? '') !== '') return !(leaf.exact as string).startsWith(prefix);
  }
  return true;
}

/** Istio's `hasConflict`: whether a child match block cannot be narrowed from a root block. */
function hasConflict(root: HTTPMatchRequest, leaf: HTTPMatchRequest): boolean {
  for (const k of ['uri', 'scheme', 'method', 'authority'] as const) if (stringMatchConflict(root[k], leaf[k])) return true;
  for (const k of ['headers', 'withoutHeaders', 'queryParams'] as const) {
    for (const [key, m] of Object.entries(leaf[k] ?? {})) if (stringMatchConflict(root[k]?.[key], m)) return true;
  }
  if ((root.ignoreUriCase ?? false) !== (leaf.ignoreUriCase ?? false)) return true;
  if (root.port !== undefined && leaf.port !== undefined && root.port !== leaf.port) return true;
  if (root.sourceNamespace !== undefined && leaf.sourceNamespace !== root.sourceNamespace) return true;
  for (const [key, v] of Object.entries(leaf.sourceLabels ?? {})) {
    if (root.sourceLabels !== undefined && Object.hasOwn(root.sourceLabels, key) && root.sourceLabels[key] !== v) return true;
  }
  const rg = root.gateways ?? [];
  const lg = leaf.gateways ?? [];
  if (rg.length > 0 && lg.length > 0 && (rg.length < lg.length || lg.some((g) => !rg.includes(g)))) return true;
  return false;
}

function mergeMaps<T>(root: Readonly<Record<string, T>> | undefined, leaf: Readonly<Record<string, T>> | undefined): Record<string, T> | undefined {
  if (root === undefined && leaf === undefined) return undefined;
  const out: Record<string, T> = {};
  for (const src of [root, leaf]) for (const [k, v] of Object.entries(src ?? {})) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

function joinName(root: string | undefined, leaf: string | undefined): string | undefined {
  if (leaf === undefined || leaf === '') return root;
  return root === undefined || root === '' ? leaf : `${root}-${leaf}`;
}

/** Istio's `mergeHTTPMatchRequest`: the child block, with the root's conditions where the child has none. */
function mergeMatch(root: HTTPMatchRequest, leaf: HTTPMatchRequest): HTTPMatchRequest {
  const out: HTTPMatchRequest = {
    ...leaf,
    name: joinName(root.name, leaf.name),
    uri: leaf.uri ?? root.uri,
    scheme: leaf.scheme ?? root.scheme,
    method: leaf.method ?? root.method,
    authority: leaf.authority ?? root.authority,
    headers: mergeMaps(root.headers, leaf.headers),
    withoutHeaders: mergeMaps(root.withoutHeaders, leaf.withoutHeaders),
    queryParams: mergeMaps(root.queryParams, leaf.queryParams),
    port: leaf.port ?? root.port,
    sourceLabels: mergeMaps(root.sourceLabels, leaf.sourceLabels),
    sourceNamespace: leaf.sourceNamespace ?? root.sourceNamespace,
    gateways: (leaf.gateways ?? []).length > 0 ? leaf.gateways : root.gateways,
    statPrefix: leaf.statPrefix ?? root.statPrefix,
  };
  for (const k of Object.keys(out) as (keyof HTTPMatchRequest)[]) if (out[k] === undefined) delete out[k];
  return out;
}

/** Istio's `mergeHTTPMatchRequests`: undefined when the child's matches conflict with the root's. */
function mergeMatches(root: readonly HTTPMatchRequest[] | undefined, leaf: readonly HTTPMatchRequest[] | undefined): HTTPMatchRequest[] | undefined | 'conflict' {
  if (root === undefined || root.length === 0) return leaf === undefined ? undefined : [...leaf];
  if (leaf === undefined || leaf.length === 0) return [...root];
  const out: HTTPMatchRequest[] = [];
  for (const sub of leaf) {
    let found = false;
    for (const r of root) {
      if (hasConflict(r, sub)) continue;
      out.push(mergeMatch(r, sub));
      found = true;
    }
    if (!found) return 'conflict';
  }
  return out.length === 0 ? 'conflict' : out;
}

/** Istio's `mergeHTTPRoute`: the child rule inside the root rule, or undefined on a match conflict. */
export function mergeHTTPRoute(root: HTTPRoute, child: HTTPRoute): HTTPRoute | undefined {
  const match = mergeMatches(root.match, child.match);
  if (match === 'conflict') return undefined;
  const out: HTTPRoute = {
    ...child,
    match,
    name: joinName(root.name, child.name),
    rewrite: child.rewrite ?? root.rewrite,
    directResponse: child.directResponse ?? root.directResponse,
    timeout: child.timeout ?? root.timeout,
    retries: child.retries ?? root.retries,
    fault: child.fault ?? root.fault,
    mirror: child.mirror ?? root.mirror,
    mirrorPercent: child.mirrorPercent ?? root.mirrorPercent,
    mirrorPercentage: child.mirrorPercentage ?? root.mirrorPercentage,
    corsPolicy: child.corsPolicy ?? root.corsPolicy,
    mirrors: child.mirrors ?? root.mirrors,
    headers: child.headers ?? root.headers,
  };
  for (const k of Object.keys(out) as (keyof HTTPRoute)[]) if (out[k] === undefined) delete out[k];
  return out;
}

/**
 * Applies delegation to the VirtualServices among `resources`: delegates (no hosts) are left
 * out, roots get their merged rules. A rule whose delegate is missing, has hosts, or is not
 * exported to the root's namespace is left out and reported.
 */
export function mergeDelegates(resources: readonly AnyResource[]): DelegationResult {
  const all = resources.filter((r): r is Resource<'VirtualService'> & AnyResource => r.kind === 'VirtualService') as Resource<'VirtualService'>[];
  const delegates = new Map<string, Resource<'VirtualService'>>();
  for (const vs of all) if (isDelegate(vs)) delegates.set(`${vs.metadata.namespace}/${vs.metadata.name}`, vs);
  const problems: DelegateProblem[] = [];
  const virtualServices = all.filter((vs) => !isDelegate(vs)).map((vs) => {
    const rules = vs.spec.http ?? [];
    if (!rules.some((r) => r.delegate !== undefined)) return vs;
    const merged: HTTPRoute[] = [];
    rules.forEach((rule, i) => {
      if (rule.delegate === undefined) {
        merged.push(rule);
        return;
      }
      const key = `${rule.delegate.namespace ?? vs.metadata.namespace}/${rule.delegate.name ?? ''}`;
      const delegate = delegates.get(key);
      if (delegate === undefined) {
        problems.push({ root: vs, rule: i, delegate: key, reason: 'not-found' });
        return;
      }
      if (!exportedTo(delegate, vs.metadata.namespace)) {
        problems.push({ root: vs, rule: i, delegate: key, reason: 'not-exported' });
        return;
      }
      const { delegate: _d, ...root } = rule;
      for (const child of delegate.spec.http ?? []) {
        const m = mergeHTTPRoute(root, resolveRule(child, delegate.metadata.namespace));
        if (m !== undefined) merged.push(m);
      }
    });
    const spec: VirtualServiceSpec = { ...vs.spec, http: merged };
    return Object.freeze({ ...vs, spec });
  });
  return { virtualServices, problems };
}
