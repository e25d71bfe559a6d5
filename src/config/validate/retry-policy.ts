/**
 * Istio's `HTTPRetry`, checked: a VirtualService's `retries` (as istiod's ValidateHTTPRetry) and
 * MeshConfig's `defaultHttpRetryPolicy` (which istiod reads without validating it).
 *
 * @module
 */
import type { HTTPRetry } from '../types/networking.ts';
import { formatPath, IssueList } from '../issues.ts';
import { checkRetryOn, spacedRetryOnItems } from './retry-on.ts';
import { bool, fail, int, obj, strWith, type Validator } from './schema.ts';
import { msDuration } from './shared-networking.ts';
import { parseDuration } from '../duration.ts';

/** An Istio duration (`agent.ValidateDuration`): at least 1ms, in whole milliseconds. */
const duration = msDuration();

/** An `HTTPRetry`'s checks: a VirtualService's `retries` and MeshConfig's `defaultHttpRetryPolicy` alike. */
const retryPolicy = obj<HTTPRetry>(
  {
    attempts: int({ min: 0, max: 2147483647 }),
    perTryTimeout: duration,
    retryOn: strWith(checkRetryOn),
    retryRemoteLocalities: bool,
    retryIgnorePreviousHosts: bool,
    backoff: duration,
  },
  {
    check: (r, path, ctx, raw) => {
      if (r.retryRemoteLocalities === true) {
        // Istio gives the retry policy Envoy's previous_priorities retry priority: retries move to other locality tiers.
        const p = [...path, 'retryRemoteLocalities'];
        ctx.issues.at(ctx.subject, p, 'warning', `not supported by meshlet: ${formatPath(p)}; retries pick their endpoint as first attempts do (another one when there is one), never preferring other localities`, 'MESHLET0002');
      }
      // Istio: a policy with attempts 0 is "disabled"; perTryTimeout, retryOn and retryRemoteLocalities contradict it.
      const set = ['perTryTimeout', 'retryOn', 'retryRemoteLocalities'].filter((k) => raw[k] !== undefined && raw[k] !== null && raw[k] !== '');
      if ((r.attempts ?? 0) === 0 && set.length > 0) {
        fail(ctx, path, raw.attempts === undefined
          ? `attempts is required when ${set.join(', ')} ${set.length === 1 ? 'is' : 'are'} set (an unset attempts is 0, which disables retries)`
          : `attempts: 0 disables retries; ${set.join(', ')} must not be set with it`);
      }
    },
  },
);

/** A VirtualService's `retries`: a `retryOn` item with spaces around it is trimmed (as retry.go and Envoy do), with a warning: istiod's ValidateHTTPRetry refuses it. */
export const retries: Validator<HTTPRetry> = (value, path, ctx) => {
  const r = retryPolicy(value, path, ctx);
  const spaced = typeof r?.retryOn === 'string' ? spacedRetryOnItems(r.retryOn) : [];
  if (spaced.length > 0) {
    const items = spaced.map((s) => JSON.stringify(s)).join(', ');
    ctx.issues.at(ctx.subject, [...path, 'retryOn'], 'warning', `${items} ${spaced.length === 1 ? 'has spaces' : 'have spaces'} around it: Istio refuses this retryOn (its validation splits the list at commas only: ${JSON.stringify(spaced[0])} is not a valid retryOn policy); meshlet trims the spaces`);
  }
  return r;
};

/**
 * Checks MeshConfig's `defaultHttpRetryPolicy` (given as `name`, the option's path) as a
 * VirtualService's `retries` is checked — but for spaced `retryOn` items, which istiod's
 * ValidateMeshConfig never looks at: the errors and the warnings, each as `path: message`.
 *
 * `fromMeshConfig`: the policy is Istio's MeshConfig's, which istiod reads without validating it
 * and converts as it stands (retry.ConvertPolicy), so what only its VirtualService validation
 * would refuse is a warning here, and the policy runs as Envoy runs it: an unknown or empty
 * `retryOn` item is ignored (istiod passes it on; Envoy's parseRetryOn skips it), a `retryOn` or
 * `perTryTimeout` with `attempts` unset, 0 or negative goes with retries off (ConvertPolicy: no
 * policy for attempts <= 0). A wrong type stays an error (istiod cannot read such a MeshConfig at all).
 */
export function retryPolicyProblems(value: unknown, name: string, fromMeshConfig = false): { errors: string[]; warnings: string[] } {
  const issues = new IssueList();
  const path = name.split('.');
  retryPolicy(value, path, { issues, subject: { source: { file: '' }, ref: '' }, namespace: '' });
  const raw = value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  const root = formatPath(path);
  const subMs = (i: { path: string; message: string }): boolean => fromMeshConfig && envoyMs(i.path, path, raw) !== undefined && /duration must be >= 1ms|not a whole number of milliseconds/.test(i.message);
  const accepted = (i: { path: string; message: string }): boolean =>
    fromMeshConfig &&
    (subMs(i) ||
      (i.path === formatPath([...path, 'retryOn']) && typeof raw.retryOn === 'string') ||
      (i.path === root && /^attempts(?: is required|: 0 disables)/.test(i.message)) ||
      (i.path === formatPath([...path, 'attempts']) && Number.isInteger(raw.attempts) && (raw.attempts as number) < 0));
  const errors: string[] = [];
  const warnings: string[] = [];
  for (const i of issues.ofLevel('error')) {
    if (!accepted(i)) errors.push(`${i.path}: ${i.message}`);
    else if (subMs(i)) warnings.push(`${i.path}: ${i.message}; istiod does not validate MeshConfig's defaultHttpRetryPolicy and Envoy reads it in whole milliseconds (router config_impl.cc RetryPolicyImpl): ${envoyMsText(i.path, path, raw)}, as meshlet does`);
    else if (i.path !== formatPath([...path, 'retryOn'])) warnings.push(`${i.path}: ${i.message}; istiod does not validate MeshConfig's defaultHttpRetryPolicy and turns retries off for it (retry.ConvertPolicy), as meshlet does`);
    else warnings.push(`${i.path}: ${i.message}; istiod does not validate MeshConfig's defaultHttpRetryPolicy: Envoy ignores such items, as meshlet does`);
  }
  for (const i of issues.ofLevel('warning')) warnings.push(`${i.path}: ${i.message}`);
  return { errors, warnings };
}


/** A MeshConfig policy's `perTryTimeout` or `backoff` (at `at`) as Envoy reads it, in whole ms: undefined when it is not such a field or not a duration Envoy takes (negative; a backoff of 0, which its base_interval `gt: 0` refuses). */
function envoyMs(at: string, path: string[], raw: Record<string, unknown>): number | undefined {
  const field = at === formatPath([...path, 'perTryTimeout']) ? 'perTryTimeout' : at === formatPath([...path, 'backoff']) ? 'backoff' : undefined;
  const v = field === undefined ? undefined : raw[field];
  const ms = typeof v === 'string' ? parseDuration(v) : undefined;
  if (typeof ms !== 'number' || ms < 0 || (field === 'backoff' && ms === 0)) return undefined;
  return field === 'backoff' ? Math.max(1, Math.floor(ms)) : Math.floor(ms);
}

function envoyMsText(at: string, path: string[], raw: Record<string, unknown>): string {
  const ms = envoyMs(at, path, raw) as number;
  if (at === formatPath([...path, 'backoff'])) return `a backoff of ${ms}ms (under 1ms: 1ms)`;
  return ms === 0 ? 'under 1ms is 0, no per-try timeout' : `a per-try timeout of ${ms}ms`;
}

/**
 * A MeshConfig `defaultHttpRetryPolicy` whose `perTryTimeout` and `backoff` are durations as Envoy
 * runs them (envoy router config_impl.cc `RetryPolicyImpl`: `PROTOBUF_GET_MS_OR_DEFAULT(per_try_timeout)`
 * truncates to whole ms, 0 being none; `base_interval` under 1ms is 1ms): `r` itself when they already are.
 */
export function meshRetryPolicyAsEnvoyRunsIt(r: HTTPRetry): HTTPRetry {
  const out: Record<string, unknown> = { ...r };
  let changed = false;
  const at = (f: string) => formatPath(['p', f]);
  const raw = r as unknown as Record<string, unknown>;
  for (const f of ['perTryTimeout', 'backoff'] as const) {
    const v = raw[f];
    const ms = envoyMs(at(f), ['p'], raw);
    if (typeof v !== 'string' || ms === undefined || parseDuration(v) === ms) continue;
    changed = true;
    if (f === 'perTryTimeout' && ms === 0) delete out[f];
    else out[f] = `${ms}ms`;
  }
  return changed ? (out as HTTPRetry) : r;
}
