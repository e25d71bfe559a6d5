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
  const accepted = (i: { path: string; message: string }): boolean =>
    fromMeshConfig &&
    ((i.path === formatPath([...path, 'retryOn']) && typeof raw.retryOn === 'string') ||
      (i.path === root && /^attempts(?: is required|: 0 disables)/.test(i.message)) ||
      (i.path === formatPath([...path, 'attempts']) && Number.isInteger(raw.attempts) && (raw.attempts as number) < 0));
  const errors: string[] = [];
  const warnings: string[] = [];
  for (const i of issues.ofLevel('error')) {
    if (!accepted(i)) errors.push(`${i.path}: ${i.message}`);
    else if (i.path !== formatPath([...path, 'retryOn'])) warnings.push(`${i.path}: ${i.message}; istiod does not validate MeshConfig's defaultHttpRetryPolicy and turns retries off for it (retry.ConvertPolicy), as meshlet does`);
    else warnings.push(`${i.path}: ${i.message}; istiod does not validate MeshConfig's defaultHttpRetryPolicy: Envoy ignores such items, as meshlet does`);
  }
  for (const i of issues.ofLevel('warning')) warnings.push(`${i.path}: ${i.message}`);
  return { errors, warnings };
}

