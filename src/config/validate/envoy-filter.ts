/**
 * Validation of `EnvoyFilter.spec` (networking.istio.io/v1alpha3). meshlet applies one kind of
 * EnvoyFilter: the local rate limit of Istio's rate-limit task (see `envoy-filter-shape.ts`).
 *
 * - An EnvoyFilter with any other patch is **skipped as a whole**, with one warning naming it
 *   and what each other patch patches; never an error. Patches of one EnvoyFilter are one unit of
 *   intent (the filter insertion, the per-route buckets and the route's descriptor actions
 *   only mean something together; a REMOVE or REPLACE beside them changes what the others do),
 *   so applying part of one would enforce a limit nobody wrote. Split the rate-limit patches
 *   into their own EnvoyFilter to have meshlet apply them; Istio treats the split the same.
 * - A local rate limit EnvoyFilter is validated as Istio validates EnvoyFilters (its CRD schema
 *   and `ValidateEnvoyFilter`) and as Envoy checks the filter's config when it arrives, so a
 *   config the sidecar would refuse is refused here, with the field path.
 * - One that uses what meshlet does not implement (a bucket per connection, metadata actions,
 *   CEL beyond one attribute, `match.proxy`, …) is skipped too, with a warning naming it.
 *
 * @module
 */
import { type FieldPath, formatPath, IssueList } from '../issues.ts';
import type { EnvoyConfigObjectMatch, EnvoyConfigObjectPatch, EnvoyFilterSpec, ListenerMatch, PatchContext, RouteConfigurationMatch } from '../types/envoy-filter.ts';
import type { GlobalRateLimitSettings } from '../types/local-rate-limit.ts';
import type { LocalRateLimitSettings, RateLimitPatch, RateLimitPolicySettings } from '../types/local-rate-limit.ts';
import { workloadSelector } from './common.ts';
import { ROUTER, subFilterAbsence } from './envoy-filter-chain.ts';
import { describePatch, isRateLimitPatch, rateLimitServiceClusters } from './envoy-filter-shape.ts';
import { globalCarrier, isGlobalRateLimit, readGlobalRateLimitAny, readRateLimitClusters } from './global-rate-limit.ts';
import { readLocalRateLimitAny } from './local-rate-limit.ts';
import { type PerFilterConfigs, readPerFilterConfigs } from './per-filter-config.ts';
import { boolean, message, nonEmptyText } from './proto-json.ts';
import { type EnvoyFilterCtx, notImplemented, routeRateLimit } from './rate-limit-actions.ts';
import { fail, int, list, map, obj, oneOf, regex, str, warn, type Ctx, type Validator } from './schema.ts';
import { SKIPPED_KIND_CODE } from './skipped-kinds.ts';

const HCM = 'envoy.filters.network.http_connection_manager';
const DEPRECATED_HCM = 'envoy.http_connection_manager';

const CONTEXTS: readonly PatchContext[] = ['ANY', 'SIDECAR_INBOUND', 'SIDECAR_OUTBOUND', 'GATEWAY', 'WAYPOINT'];
const APPLY_TO = ['INVALID', 'LISTENER', 'FILTER_CHAIN', 'NETWORK_FILTER', 'HTTP_FILTER', 'ROUTE_CONFIGURATION', 'VIRTUAL_HOST', 'HTTP_ROUTE', 'CLUSTER', 'EXTENSION_CONFIG', 'BOOTSTRAP', 'LISTENER_FILTER'] as const;
const OPERATIONS = ['INVALID', 'MERGE', 'ADD', 'REMOVE', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE', 'MERGE_AND_REPLACE_LIST'] as const;

const u32 = int({ min: 0, max: 4294967295 });

const listenerMatch = obj<ListenerMatch>({
  portNumber: u32,
  portName: str,
  name: str,
  listenerFilter: str,
  filterChain: obj({
    name: str,
    sni: str,
    transportProtocol: str,
    applicationProtocols: str,
    transportSocket: str,
    destinationPort: u32,
    filter: obj({ name: str, subFilter: obj({ name: str }) }),
  }),
});

const routeConfigurationMatch = obj<RouteConfigurationMatch>({
  portNumber: u32,
  portName: str,
  gateway: str,
  name: str,
  vhost: obj({ name: str, domainName: str, route: obj({ name: str, action: oneOf(['ANY', 'ROUTE', 'REDIRECT', 'DIRECT_RESPONSE'] as const) }) }),
});

const objectMatch = obj<EnvoyConfigObjectMatch>(
  {
    context: oneOf(CONTEXTS),
    proxy: obj({ proxyVersion: regex, metadata: map(str) }),
    listener: listenerMatch,
    routeConfiguration: routeConfigurationMatch,
    cluster: obj({ portNumber: u32, service: str, subset: str, name: str }),
    waypoint: obj({
      portNumber: int({ min: 1, max: 65535, why: '(Istio: port must be between 1-65535)' }),
      route: obj({ name: str }),
      filter: obj({ name: str, subFilter: obj({ name: str }) }),
    }),
  },
  {
    oneOf: [['listener', 'routeConfiguration', 'cluster', 'waypoint']],
    check: (m, path, ctx) => {
      if ((m.context === 'WAYPOINT') !== (m.waypoint !== undefined)) fail(ctx, path, 'only support waypointMatch when context is WAYPOINT (Istio)');
    },
  },
);

/** Fields Kubernetes prunes when they are written beside `match` instead of inside it (as a version of Istio's rate-limit task does). */
const MISPLACED_MATCH_FIELDS = ['listener', 'routeConfiguration', 'context', 'proxy', 'cluster'];

const configPatch: Validator<EnvoyConfigObjectPatch> = (v, path, ctx) => {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const raw = v as Record<string, unknown>;
    const misplaced = MISPLACED_MATCH_FIELDS.filter((k) => raw[k] !== undefined);
    if (misplaced.length > 0) {
      for (const k of misplaced) {
        warn(ctx, [...path, k], `"${k}" belongs under "match"; Kubernetes drops it as an unknown field, so Istio applies this patch without it (${k === 'context' ? 'in every context' : 'to every listener and route'}), and so does meshlet`);
      }
      v = Object.fromEntries(Object.entries(raw).filter(([k]) => !misplaced.includes(k)));
    }
  }
  if (v === null) return fail(ctx, path, 'Envoy filter: null config patch (Istio)');
  return obj<EnvoyConfigObjectPatch>({
    applyTo: oneOf(APPLY_TO),
    match: objectMatch,
    patch: obj({
      operation: oneOf(OPERATIONS),
      value: (x, p, c) => (typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Record<string, unknown>) : fail(c, p, 'must be an object')),
      filterClass: oneOf(['UNSPECIFIED', 'AUTHN', 'AUTHZ', 'STATS'] as const),
    }),
  })(v, path, ctx);
};

const targetRefs = list(
  obj({
    group: (v, p, c) => {
      const s = str(v, p, c);
      return s !== undefined && !/^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(s) ? fail(c, p, `invalid group "${s}"`) : s;
    },
    kind: { validate: nonEmptyText, required: true },
    name: { validate: nonEmptyText, required: true },
    namespace: (v, p, c) => {
      const s = str(v, p, c);
      return s !== undefined && s !== '' ? fail(c, p, 'cross namespace referencing is not currently supported (Istio)') : s;
    },
  }),
  { max: 16 },
);

const envelope = obj<EnvoyFilterSpec>(
  {
    workloadSelector: (v, path, ctx) => {
      const s = workloadSelector(v, path, ctx);
      if (s !== undefined && Object.keys(s.labels ?? {}).length === 0) {
        warn(ctx, path, 'Envoy filter: workload selector specified without labels, will be applied to all services in namespace (Istio)');
      }
      return s;
    },
    targetRefs,
    priority: int({ min: -2147483648, max: 2147483647 }),
    configPatches: list(configPatch),
  },
  {
    check: (s, path, ctx) => {
      if (s.workloadSelector !== undefined && s.targetRefs !== undefined) fail(ctx, path, 'only one of targetRefs or workloadSelector can be set (Istio)');
    },
  },
);

// ---------- reading the rate-limit patches ----------

function contextNote(ctx: Ctx, path: FieldPath, context: PatchContext, match: EnvoyConfigObjectMatch | undefined): void {
  const p = [...path, 'match', 'context'];
  if (context === 'SIDECAR_OUTBOUND') {
    const rc = match?.routeConfiguration;
    const vhost = rc?.vhost?.name;
    if (vhost?.startsWith('inbound|') === true) {
      warn(ctx, [...path, 'match', 'routeConfiguration', 'vhost', 'name'], `a virtual host named "${vhost}" exists only in SIDECAR_INBOUND route configurations (outbound ones are named <host>:<port>, allow_any or block_all), so this patch never applies, in Istio or in meshlet`);
    } else if (rc?.name?.startsWith('inbound|') === true) {
      warn(ctx, [...path, 'match', 'routeConfiguration', 'name'], `a route configuration named "${rc.name}" is an inbound one (outbound route configurations are named after the port, "9080"), so this patch never applies, in Istio or in meshlet`);
    }
  } else if (context === 'GATEWAY' || context === 'WAYPOINT') {
    ctx.issues.at(ctx.subject, p, 'info', `context ${context}: meshlet runs inside workloads, never as a ${context === 'GATEWAY' ? 'gateway' : 'waypoint'}, so this patch never applies`, 'MESHLET0002');
  } else if (context === 'ANY') {
    ctx.issues.at(ctx.subject, match === undefined ? [...path] : p, 'info', 'no context: Istio applies this patch to inbound and outbound traffic, and so does meshlet: to the requests its servers admit and to the calls the app makes through the mesh', 'MESHLET0002');
  }
}

/** Istio's `ValidateEnvoyFilter` rules for a listener-class patch, and what meshlet can match on. */
function checkListenerMatch(ctx: Ctx, path: FieldPath, m: ListenerMatch, context: PatchContext): void {
  const fc = m.filterChain;
  const f = fc?.filter;
  if (f !== undefined) {
    const fp = [...path, 'filterChain', 'filter'];
    if (f.name === undefined || f.name === '') fail(ctx, fp, 'Envoy filter: filter match has no name to match on (Istio)');
    else if (f.subFilter !== undefined && f.name !== HCM && f.name !== DEPRECATED_HCM) fail(ctx, fp, `Envoy filter: subfilter match requires filter match with ${HCM} (Istio)`);
    else if (f.subFilter !== undefined && (f.subFilter.name === undefined || f.subFilter.name === '')) fail(ctx, [...fp, 'subFilter'], 'Envoy filter: subfilter match has no name to match on (Istio)');
    if (f.name === DEPRECATED_HCM) {
      warn(ctx, [...fp, 'name'], `using deprecated filter name "${DEPRECATED_HCM}"; use "${HCM}" instead. Istio matches names exactly, so this patch matches no HTTP connection manager: it never applies, in Istio or in meshlet`);
    } else if (f.name !== undefined && f.name !== '' && f.name !== HCM) {
      warn(ctx, [...fp, 'name'], `an HTTP_FILTER patch under network filter "${f.name}" matches no HTTP connection manager; it never applies`);
    }
    if (f.subFilter?.name === 'envoy.router') warn(ctx, [...fp, 'subFilter', 'name'], `using deprecated filter name "envoy.router"; use "${ROUTER}" instead. Istio matches names exactly, so this patch never applies`);
  }
  for (const k of ['portName', 'listenerFilter'] as const) {
    if (m[k] !== undefined) notImplemented(ctx, [...path, k], `listener ${k} matches`);
  }
  for (const k of ['name', 'sni', 'applicationProtocols', 'transportSocket'] as const) {
    if (fc?.[k] !== undefined) notImplemented(ctx, [...path, 'filterChain', k], `filter chain ${k} matches`);
  }
  if (fc?.transportProtocol !== undefined && fc.transportProtocol !== 'tls' && fc.transportProtocol !== 'raw_buffer') {
    warn(ctx, [...path, 'filterChain', 'transportProtocol'], `inbound filter chains have transport protocol "tls" or "raw_buffer"; "${fc.transportProtocol}" matches none, so this patch never applies`);
  } else if (context === 'SIDECAR_OUTBOUND' && fc?.transportProtocol === 'tls') {
    warn(ctx, [...path, 'filterChain', 'transportProtocol'], 'outbound HTTP filter chains have transport protocol "raw_buffer" (a call the app makes over TLS is carried as TCP); "tls" matches none, so this patch never applies');
  }
  if (context === 'SIDECAR_OUTBOUND' && fc?.destinationPort !== undefined && fc.destinationPort !== 0) {
    warn(ctx, [...path, 'filterChain', 'destinationPort'], 'outbound HTTP filter chains match no destination port (istiod builds an outbound listener per port: match it with listener.portNumber), so this patch never applies');
  }
  if (context === 'SIDECAR_OUTBOUND' && m.name !== undefined && m.name !== '' && !/^0\.0\.0\.0_\d+$/.test(m.name)) {
    warn(ctx, [...path, 'name'], `outbound HTTP listeners are named 0.0.0.0_<port>; "${m.name}" names none, so this patch never applies`);
  }
}

/**
 * `local_rate_limit_per_downstream_connection` outside the inbound side: the app's calls reach the
 * mesh in-process, over no downstream connection (a sidecar's would be the app's connection to it),
 * so meshlet applies it to `SIDECAR_INBOUND` patches only.
 */
function perConnectionOutside(ctx: Ctx, path: FieldPath, context: PatchContext, configs: Iterable<LocalRateLimitSettings | undefined>): void {
  if (context === 'SIDECAR_INBOUND') return;
  for (const c of configs) {
    if (c?.perDownstreamConnection !== true) continue;
    notImplemented(ctx, [...path, 'match', 'context'], `local_rate_limit_per_downstream_connection (a bucket per downstream connection) for ${context === 'SIDECAR_OUTBOUND' ? 'outbound calls' : 'any context, which includes outbound calls'}: the app's calls have no downstream connection; meshlet applies it in SIDECAR_INBOUND patches`);
    return;
  }
}

function readFilterPatch(cp: EnvoyConfigObjectPatch, value: Record<string, unknown>, path: FieldPath, ctx: Ctx, context: PatchContext, inserted: ReadonlySet<string>, clusters: ReadonlyMap<string, string>): RateLimitPatch | undefined {
  const op = cp.patch?.operation;
  const vp = [...path, 'patch', 'value'];
  const listener = cp.match?.listener;
  const subFilter = listener?.filterChain?.filter?.subFilter?.name;
  // istiod appends these after the router (listener_patch.go); Envoy then refuses the whole listener.
  const afterRouter =
    op === 'ADD' ? 'ADD appends the HTTP filter after the router (istiod)'
    : op === 'INSERT_AFTER' && subFilter === ROUTER ? `INSERT_AFTER ${ROUTER} puts the filter after the router`
    : op === 'INSERT_AFTER' && (subFilter === undefined || subFilter === '') ? 'INSERT_AFTER without a subFilter appends the filter after the router (istiod)'
    : undefined;
  if (afterRouter !== undefined) {
    return fail(ctx, [...path, 'patch', 'operation'], `${afterRouter}, and Envoy rejects the listener: "terminal filter named ${ROUTER} of type envoy.extensions.filters.http.router.v3.Router must be the last filter in a http filter chain" (the sidecar NACKs the listener update). Use INSERT_BEFORE ${ROUTER}`);
  }
  if (op !== 'INSERT_BEFORE' && op !== 'INSERT_AFTER' && op !== 'INSERT_FIRST') {
    notImplemented(ctx, [...path, 'patch', 'operation'], `operation ${op} on an HTTP filter; use INSERT_BEFORE, INSERT_AFTER or INSERT_FIRST`);
    return undefined;
  }
  if (listener !== undefined) checkListenerMatch(ctx, [...path, 'match', 'listener'], listener, context);
  if ((op === 'INSERT_BEFORE' || op === 'INSERT_AFTER') && subFilter !== undefined && subFilter !== '' && subFilter !== 'envoy.router' && !inserted.has(subFilter)) {
    const absent = subFilterAbsence(subFilter, context);
    if (absent !== undefined) {
      warn(
        ctx,
        [...path, 'match', 'listener', 'filterChain', 'filter', 'subFilter', 'name'],
        `${absent}, so Istio inserts nothing ${op === 'INSERT_BEFORE' ? 'before' : 'after'} it — unless another EnvoyFilter's patch inserts a filter of that name first (in meshlet, only a local rate limit filter: it skips other EnvoyFilters); otherwise this patch limits nothing`,
      );
    }
  }
  const f = message<{ name: string; typed_config: LocalRateLimitSettings | GlobalRateLimitSettings; is_optional?: boolean; disabled?: boolean }>({
    name: { validate: nonEmptyText, required: true },
    typed_config: { validate: (x, p, c) => (isGlobalRateLimit(x) ? readGlobalRateLimitAny(x, p, c, clusters) : readLocalRateLimitAny(x, p, c, false)), required: true },
    is_optional: boolean,
    disabled: (x, p, c) => {
      const b = boolean(x, p, c);
      if (b === true) notImplemented(c, p, 'a disabled filter (enabled per route through FilterConfig)');
      return b;
    },
  })(value, vp, ctx);
  if (f?.name === undefined || f.typed_config === undefined) return undefined;
  const t = f.typed_config;
  if ('domain' in t) return { applyTo: 'HTTP_FILTER', context, operation: op, listener, filterName: f.name, config: globalCarrier(t), global: t };
  perConnectionOutside(ctx, path, context, [t]);
  return { applyTo: 'HTTP_FILTER', context, operation: op, listener, filterName: f.name, config: t };
}

function readRoutePatch(cp: EnvoyConfigObjectPatch, value: Record<string, unknown>, path: FieldPath, ctx: Ctx, context: PatchContext): RateLimitPatch | undefined {
  const applyTo = cp.applyTo as 'HTTP_ROUTE' | 'VIRTUAL_HOST';
  const op = cp.patch?.operation;
  if (op !== 'MERGE') {
    notImplemented(ctx, [...path, 'patch', 'operation'], `operation ${op} on ${applyTo === 'HTTP_ROUTE' ? 'a route' : 'a virtual host'} (meshlet applies MERGE)`);
    return undefined;
  }
  const vp = [...path, 'patch', 'value'];
  let rateLimits: RateLimitPolicySettings[] = [];
  let include: boolean | undefined;
  let configs: PerFilterConfigs | undefined;
  if (applyTo === 'HTTP_ROUTE') {
    const r = message<{ typed_per_filter_config?: PerFilterConfigs; route?: { rate_limits?: RateLimitPolicySettings[]; include_vh_rate_limits?: boolean } }>({
      typed_per_filter_config: readPerFilterConfigs,
      route: message({ rate_limits: list(routeRateLimit), include_vh_rate_limits: boolean }),
    })(value, vp, ctx);
    configs = r?.typed_per_filter_config;
    rateLimits = r?.route?.rate_limits ?? [];
    include = r?.route?.include_vh_rate_limits;
  } else {
    const r = message<{ typed_per_filter_config?: PerFilterConfigs; rate_limits?: RateLimitPolicySettings[] }>({
      typed_per_filter_config: readPerFilterConfigs,
      rate_limits: list(routeRateLimit),
    })(value, vp, ctx);
    configs = r?.typed_per_filter_config;
    rateLimits = r?.rate_limits ?? [];
  }
  perConnectionOutside(ctx, path, context, configs?.local.values() ?? []);
  const rc = cp.match?.routeConfiguration;
  if (rc?.vhost?.route !== undefined && applyTo === 'VIRTUAL_HOST') {
    warn(ctx, [...path, 'match', 'routeConfiguration', 'vhost', 'route'], 'a route match has no effect on a VIRTUAL_HOST patch (Istio matches the virtual host only)');
  }
  return { applyTo, context, routeConfiguration: rc, perFilterConfig: configs?.local ?? new Map(), perRouteGlobal: configs?.global ?? new Map(), rateLimits, includeVhRateLimits: include };
}

/**
 * Istio's `ValidateEnvoyFilter` rules for one patch, then the patch read as a rate-limit patch;
 * `inserted`: the names of the filters the EnvoyFilter's earlier patches insert.
 */
function readPatch(cp: EnvoyConfigObjectPatch, path: FieldPath, ctx: Ctx, inserted: ReadonlySet<string>, clusters: ReadonlyMap<string, string>): RateLimitPatch | undefined {
  if (cp.applyTo === undefined || cp.applyTo === 'INVALID') return fail(ctx, [...path, 'applyTo'], 'Envoy filter: missing applyTo (Istio)');
  if (cp.patch === undefined) return fail(ctx, [...path, 'patch'], 'Envoy filter: missing patch (Istio)');
  if (cp.patch.operation === undefined || cp.patch.operation === 'INVALID') return fail(ctx, [...path, 'patch', 'operation'], 'Envoy filter: missing patch operation (Istio)');
  const value = cp.patch.value;
  if (value === undefined) return fail(ctx, [...path, 'patch', 'value'], 'Envoy filter: missing patch value for non-remove operation (Istio)');
  // A global rate limit filter's cluster (read by readRateLimitClusters).
  if (cp.applyTo === 'CLUSTER') return undefined;
  const match = cp.match;
  if (match?.proxy !== undefined) notImplemented(ctx, [...path, 'match', 'proxy'], 'match.proxy (meshlet is not an Istio proxy: it has no proxy version or proxy metadata)');
  if (cp.patch.filterClass !== undefined && cp.patch.filterClass !== 'UNSPECIFIED') {
    ctx.issues.at(ctx.subject, [...path, 'patch', 'filterClass'], 'info', 'filterClass is not read by istiod for EnvoyFilter patches (pilot uses no FilterClass): the operation and subFilter place the filter, in Istio and in meshlet', 'MESHLET0002');
  }
  const context = match?.context ?? 'ANY';
  if (cp.applyTo === 'HTTP_FILTER') {
    if (match?.routeConfiguration !== undefined || match?.cluster !== undefined) {
      return fail(ctx, [...path, 'match'], 'Envoy filter: applyTo for listener class objects cannot have non listener match (Istio)');
    }
    contextNote(ctx, path, context, match);
    return readFilterPatch(cp, value, path, ctx, context, inserted, clusters);
  }
  if (match?.listener !== undefined || match?.cluster !== undefined) {
    return fail(ctx, [...path, 'match'], 'Envoy filter: applyTo for http route class objects cannot have non route configuration match (Istio)');
  }
  contextNote(ctx, path, context, match);
  return readRoutePatch(cp, value, path, ctx, context);
}

/** Reads every patch of a local rate limit EnvoyFilter (all of them are rate-limit shapes). */
function readPatches(spec: EnvoyFilterSpec, path: FieldPath, ctx: Ctx): RateLimitPatch[] {
  const out: RateLimitPatch[] = [];
  const inserted = new Set<string>();
  const clusters = readRateLimitClusters(spec.configPatches ?? [], [...path, 'configPatches'], ctx);
  (spec.configPatches ?? []).forEach((cp, i) => {
    const p = readPatch(cp, [...path, 'configPatches', i], ctx, inserted, clusters);
    if (p === undefined) return;
    out.push(p);
    if ('filterName' in p) inserted.add(p.filterName);
  });
  return out;
}

/** Why an EnvoyFilter is skipped, said once. */
function skip(ctx: Ctx, path: FieldPath, reasons: readonly string[], someRateLimit: boolean): undefined {
  const lead = someRateLimit
    ? 'skipped: meshlet applies an EnvoyFilter only when it can apply every patch as Envoy would (put the local rate limit patches in an EnvoyFilter of their own)'
    : 'skipped: meshlet applies only the rate limit EnvoyFilters of Istio\'s rate-limit task (local, and global with its rate limit service cluster); there is no Envoy to patch';
  ctx.issues.at(ctx.subject, [...path, 'configPatches'], 'warning', `${lead}; ${reasons.join('; ')}`, SKIPPED_KIND_CODE);
  return undefined;
}

/**
 * Validates an EnvoyFilterSpec: the spec, as written, of a local rate limit EnvoyFilter; undefined
 * (with a warning, no error) for an EnvoyFilter meshlet skips.
 */
export const envoyFilterSpec: Validator<EnvoyFilterSpec> = (v, path, ctx) => {
  const rawPatches = typeof v === 'object' && v !== null ? (v as { configPatches?: unknown }).configPatches : undefined;
  const patches = Array.isArray(rawPatches) ? rawPatches : [];
  const rls = rateLimitServiceClusters(patches);
  const others = patches.map((p, i) => ({ p, i })).filter(({ p }) => !isRateLimitPatch(p, rls));
  if (others.length > 0) {
    return skip(ctx, path, others.map(({ p, i }) => `configPatches[${i}] patches ${describePatch(p)}`), others.length < patches.length);
  }
  const fctx: EnvoyFilterCtx = { ...ctx, notImplemented: [] };
  const spec = envelope(v, path, fctx);
  if (spec === undefined) return undefined;
  if (spec.targetRefs !== undefined && spec.targetRefs.length > 0) {
    warn(ctx, [...path, 'targetRefs'], 'targetRefs attach an EnvoyFilter to gateways and waypoints; Istio ignores such an EnvoyFilter for sidecars, and meshlet, which runs inside workloads, never applies it');
  }
  if (patches.length === 0) {
    ctx.issues.at(ctx.subject, [...path, 'configPatches'], 'info', 'this EnvoyFilter has no patches; it changes nothing', 'MESHLET0002');
  }
  readPatches(spec, path, fctx);
  if (fctx.notImplemented.length > 0) {
    return skip(ctx, path, fctx.notImplemented.map((n) => `${formatPath(n.path)} uses ${n.what}, which meshlet does not implement`), true);
  }
  return spec;
};

/**
 * The rate-limit patches of an EnvoyFilter spec that validated (see {@link envoyFilterSpec}), read
 * with their defaults, in order. Validation is not repeated in effect: problems are not expected
 * and not reported.
 */
export function rateLimitPatches(spec: EnvoyFilterSpec): RateLimitPatch[] {
  const ctx: EnvoyFilterCtx = { issues: new IssueList(), subject: { source: { file: '' }, ref: '' }, namespace: '', notImplemented: [] };
  return readPatches(spec, ['spec'], ctx);
}
