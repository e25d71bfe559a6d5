/**
 * Validation of DestinationRule `loadBalancer` settings: simple and consistent-hash
 * balancing, locality and zone-aware settings, and warmup (slow start).
 *
 * @module
 */
import type {
  BackendUtilizationLB,
  ConsistentHashLB,
  HTTPCookie,
  LoadBalancerSettings,
  LocalityLoadBalancerSetting,
  WarmupConfiguration,
  ZoneAwareLoadBalancerSetting,
} from '../types/networking.ts';
import { IssueList } from '../issues.ts';
import { checkLabelKey, checkLabelValue } from './common.ts';
import { checkLocalityPattern, localitiesOverlap, msDuration, UINT32_MAX } from './shared-networking.ts';
import {
  bool,
  deprecated,
  durationStr,
  fail,
  int,
  list,
  map,
  nonEmpty,
  num,
  obj,
  oneOf,
  req,
  str,
  strWith,
  unsupported,
  warn,
  type Ctx,
  type Validator,
} from './schema.ts';

/** Envoy's Maglev table size must be a prime below this. */
const MAGLEV_TABLE_LIMIT = 5000011;

/** Envoy's primality test (`1`, `2` and `3` count as prime), which Istio copies. */
function isPrime(x: number): boolean {
  if (x !== 0 && x < 4) return true;
  if (x % 2 === 0) return false;
  const limit = Math.floor(Math.sqrt(x));
  for (let f = 3; f <= limit; f += 2) if (x % f === 0) return false;
  return true;
}

const maglevTableSize: Validator<number> = (v, path, ctx) => {
  const n = int({ min: 1, max: MAGLEV_TABLE_LIMIT - 1, why: `(Envoy: a prime below ${MAGLEV_TABLE_LIMIT})` })(v, path, ctx);
  if (n === undefined) return undefined;
  return isPrime(n) ? n : fail(ctx, path, `must be a prime number, got ${n} (Envoy's Maglev table size)`);
};

const httpCookie = obj<HTTPCookie>({
  name: req(nonEmpty),
  path: str,
  // 0s means a session cookie.
  ttl: msDuration({ allowZero: true }),
  attributes: list(obj<{ name: string; value?: string }>({ name: req(nonEmpty), value: str })),
}, {
  check: (c, path, ctx) => {
    // Istio: cookie attribute names must be unique.
    const seen = new Map<string, number>();
    (c.attributes ?? []).forEach((a, i) => {
      const first = seen.get(a.name);
      if (first !== undefined) fail(ctx, [...path, 'attributes', i, 'name'], `duplicate cookie attribute "${a.name}" (also attributes[${first}])`);
      else seen.set(a.name, i);
    });
  },
});

const HASH_KEYS = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] as const;

const consistentHash = obj<ConsistentHashLB>(
  {
    httpHeaderName: nonEmpty,
    httpCookie,
    useSourceIp: bool,
    httpQueryParameterName: nonEmpty,
    ringHash: obj<{ minimumRingSize?: number }>({ minimumRingSize: int({ min: 0, max: Number.MAX_SAFE_INTEGER }) }),
    maglev: obj<{ tableSize?: number }>({ tableSize: req(maglevTableSize) }),
    minimumRingSize: deprecated(int({ min: 0, max: Number.MAX_SAFE_INTEGER }), 'ringHash.minimumRingSize'),
  },
  { exactlyOne: [HASH_KEYS], oneOf: [['ringHash', 'maglev', 'minimumRingSize']] },
);

/** Checks a failover region: non-empty, no `/` (regions only) and no `*`. */
function checkRegion(s: string): string | undefined {
  if (s === '') return 'must not be empty';
  if (s.includes('/')) return `"${s}": failover names regions only (no "/")`;
  if (s.includes('*')) return `"${s}": failover regions cannot contain "*"`;
  return undefined;
}

const failoverItem = obj<{ from?: string; to?: string }>(
  { from: req(strWith(checkRegion)), to: req(strWith(checkRegion)) },
  {
    check: (f, path, ctx) => {
      if (f.from !== undefined && f.from === f.to) fail(ctx, [...path, 'to'], `must differ from "from" (${f.from}): failover must name another region`);
    },
  },
);

/** `failoverPriority` entries: a label key, or `key=value`. */
function checkPriorityLabel(s: string): string | undefined {
  const eq = s.indexOf('=');
  const key = eq === -1 ? s : s.slice(0, eq);
  return checkLabelKey(key) ?? (eq === -1 ? undefined : checkLabelValue(s.slice(eq + 1)));
}

const TOPOLOGY_LOCALITY_LABELS = ['topology.kubernetes.io/region', 'topology.kubernetes.io/zone', 'topology.istio.io/subzone'];

const distributeItem = obj<{ from?: string; to?: Record<string, number> }>(
  {
    from: req(strWith(checkLocalityPattern)),
    to: req(map(int({ min: 1, max: 100, why: '(Istio: each locality weight is 1-100)' }), { key: checkLocalityPattern })),
  },
  {
    check: (d, path, ctx) => {
      if (d.to === undefined) return;
      const keys = Object.keys(d.to);
      const total = Object.values(d.to).reduce((a, b) => a + b, 0);
      if (keys.length > 0 && total !== 100) fail(ctx, [...path, 'to'], `weights must add up to 100, got ${total}`);
      reportOverlaps(keys, [...path, 'to'], ctx, (k) => k);
    },
  },
);

/** Reports localities that overlap an earlier one in the same list. */
function reportOverlaps(localities: readonly string[], path: (string | number)[], ctx: Ctx, seg: (i: number, l: string) => string | number): void {
  localities.forEach((l, i) => {
    const earlier = localities.slice(0, i).find((e) => localitiesOverlap(e, l));
    if (earlier !== undefined) fail(ctx, [...path, seg(i, l)], `locality "${l}" overlaps "${earlier}"`);
  });
}

const localityLbSetting = obj<LocalityLoadBalancerSetting>(
  {
    distribute: list(distributeItem),
    failover: list(failoverItem),
    failoverPriority: list(strWith(checkPriorityLabel)),
    enabled: bool,
  },
  {
    check: (s, path, ctx) => {
      const distribute = s.distribute ?? [];
      const failover = s.failover ?? [];
      if (distribute.length > 0 && failover.length > 0) fail(ctx, path, 'distribute and failover cannot both be set');
      if (failover.length > 0) {
        for (const label of s.failoverPriority ?? []) {
          if (TOPOLOGY_LOCALITY_LABELS.includes(label)) {
            fail(ctx, [...path, 'failoverPriority'], `cannot use the locality label "${label}" together with failover`);
          }
        }
      }
      const froms = distribute.map((d) => d.from).filter((f): f is string => f !== undefined);
      reportOverlaps(froms, [...path, 'distribute'], ctx, (i) => i);
    },
  },
);

const zoneAwareLbSetting = obj<ZoneAwareLoadBalancerSetting>({
  enabled: bool,
  failover: list(failoverItem),
  // Istio: region, zone and subzone routing are automatic with zone-aware balancing.
  failoverPriority: list(strWith((s) => (TOPOLOGY_LOCALITY_LABELS.includes(s) ? `"${s}" must not be used: zone-aware balancing handles region, zone and subzone by itself` : checkPriorityLabel(s)))),
  minClusterSize: int({ min: 0, max: UINT32_MAX }),
});

const backendUtilization = obj<BackendUtilizationLB>({
  errorUtilizationPenaltyPercent: int({ min: 0, max: UINT32_MAX }),
  metricNamesForComputingUtilization: list(str),
  weightExpirationPeriod: durationStr({ minMs: 0 }),
  weightStabilizationPeriod: durationStr({ minMs: 0 }),
  weightUpdatePeriod: durationStr({ minMs: 0 }),
});

const warmup = obj<WarmupConfiguration>({
  duration: req(msDuration()),
  minimumPercent: num({ min: 0, max: 100 }),
  aggression: num({ min: 1, why: '(Istio: aggression must be at least 1)' }),
});

const SIMPLE = ['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST'] as const;

/** Validates `loadBalancer` (destination, subset and port level). */
export const loadBalancerSettings: Validator<LoadBalancerSettings> = obj<LoadBalancerSettings>(
  {
    simple: oneOf(SIMPLE),
    consistentHash,
    localityLbSetting,
    zoneAwareLbSetting: unsupported(zoneAwareLbSetting, 'zone-aware balancing (Istio 1.31 alpha) is not implemented; use localityLbSetting'),
    warmupDurationSecs: deprecated(msDuration(), 'warmup.duration'),
    warmup,
    backendUtilization: unsupported(backendUtilization, 'utilization-based balancing needs ORCA load reports, which meshlet does not read; the default balancer is used'),
  },
  {
    oneOf: [
      ['simple', 'consistentHash', 'backendUtilization'],
      ['localityLbSetting', 'zoneAwareLbSetting'],
    ],
    check: (lb, path, ctx) => {
      if (lb.simple === 'LEAST_CONN') warn(ctx, [...path, 'simple'], 'LEAST_CONN is deprecated; use LEAST_REQUEST (meshlet treats them the same)');
      const slowStart = lb.warmup !== undefined || lb.warmupDurationSecs !== undefined;
      const slowStartLb = lb.simple === undefined || ['UNSPECIFIED', 'ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN'].includes(lb.simple);
      if (slowStart && (!slowStartLb || lb.consistentHash !== undefined)) {
        warn(ctx, path, 'warmup applies only to ROUND_ROBIN and LEAST_REQUEST balancing; it is ignored here');
      }
    },
  },
);

/** Whether a `loadBalancer` asks for locality failover (which needs outlier detection to do anything). */
export function wantsFailover(lb: LoadBalancerSettings | undefined): boolean {
  return [lb?.localityLbSetting, lb?.zoneAwareLbSetting].some((l) => (l?.failover?.length ?? 0) > 0 || (l?.failoverPriority?.length ?? 0) > 0);
}

/**
 * Checks a MeshConfig `localityLbSetting` (istiod validates it as a DestinationRule's):
 * the problems as `path: message` lines, none when it is valid.
 */
export function localityLbSettingProblems(value: unknown): string[] {
  const issues = new IssueList();
  localityLbSetting(value, ['localityLbSetting'], { issues, subject: { source: { file: '' }, ref: '' }, namespace: '' });
  return issues.ofLevel('error').map((i) => `${i.path}: ${i.message}`);
}
