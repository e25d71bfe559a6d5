/**
 * Checks for the string values inside AuthorizationPolicy rules: match values (exact,
 * `prefix*`, `*suffix`, `*`), paths with URI templates, IPs and CIDRs, port strings,
 * service accounts, and condition keys. Each check returns a problem or nothing; the
 * rules are Istio's (`pkg/config/security`), made stricter where a value could only
 * ever be a mistake.
 *
 * @module
 */
import { suggest } from '../../core/did-you-mean.ts';
import { checkIpOrCidr } from './common.ts';

const FORMS = 'exact "abc", prefix "abc*", suffix "*abc" or "*" (any non-empty value)';

/** Checks a rule string value: exact, `abc*`, `*abc` or `*`; a `*` anywhere else is an error. */
export function checkMatchValue(s: string): string | undefined {
  if (s === '') return 'empty value not allowed';
  if (s === '*') return undefined;
  if (s.length > 1 && s.startsWith('*') && s.endsWith('*')) return `"${s}" has "*" at both ends; a value may be ${FORMS}`;
  const inner = s.slice(s.startsWith('*') ? 1 : 0, s.endsWith('*') ? -1 : undefined);
  return inner.includes('*') ? `"${s}" has "*" in the middle; a value may be ${FORMS}` : undefined;
}

/** Envoy's valid path-template literal (RFC 3986 pchar), as Istio checks it. */
const TEMPLATE_LITERAL = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;

function checkPathTemplate(path: string): string | undefined {
  if (!path.startsWith('/')) return `path template "${path}" must start with "/"`;
  let matchAnySeen = false;
  for (const seg of path.replace(/^\/+|\/+$/g, '').split('/')) {
    if (seg === '{*}' || seg === '{**}') {
      if (matchAnySeen) return `invalid path template "${path}": {**} must be the last operator`;
      matchAnySeen = seg === '{**}';
      continue;
    }
    if (/[{}]/.test(seg)) {
      return `invalid path template "${path}": "{" and "}" may only appear as the whole-segment operators {*} and {**}, got segment "${seg}"`;
    }
    if (!TEMPLATE_LITERAL.test(seg)) {
      const star = seg.includes('*') ? '; the "*" prefix/suffix forms cannot be combined with {*} or {**}' : '';
      return `invalid path template "${path}": segment "${seg}" is not a valid literal (letters, digits and -._~%!$&'()+,;:@=)${star}`;
    }
  }
  return undefined;
}

/**
 * Checks a `paths` value: a path, optionally in prefix form (`/api/*`), a suffix form
 * (`*.png`), `*`, or a URI template using `{*}` / `{**}` as whole segments. A path without a
 * leading `/` is valid (as in Istio) but never matches; see {@link isRelativePath}.
 */
export function checkPath(s: string): string | undefined {
  if (s === '') return 'empty value not allowed';
  if (s.includes('{') || s.includes('}')) return checkPathTemplate(s);
  return checkMatchValue(s);
}

/** True for a plain path that cannot match a request path, which always starts with "/" (Istio accepts it). */
export function isRelativePath(s: string): boolean {
  return s !== '' && !s.startsWith('/') && !s.startsWith('*') && !s.includes('{');
}


/** Checks a port given as a string (`ports`, `destination.port`): a number 0-65535. */
export function checkPortString(s: string): string | undefined {
  return /^\d{1,5}$/.test(s) && Number(s) <= 65535 ? undefined : `bad port "${s}": must be a number 0-65535`;
}

/** Checks a `serviceAccounts` value: `sa` or `namespace/sa`, no wildcards (Istio's `CheckServiceAccount`). */
export function checkServiceAccount(s: string): string | undefined {
  if (s === '') return 'empty value not allowed';
  if (s.includes('*')) return `wildcard not allowed in service accounts, got "${s}"`;
  if (s.length > 320) return `service account "${s.slice(0, 40)}…" is longer than 320 characters`;
  const parts = s.split('/');
  if (parts.length > 2 || parts.some((p) => p === '')) return `expected "serviceAccount" or "namespace/serviceAccount", got "${s}"`;
  return undefined;
}

/** How the values of a condition key are checked. */
export type ConditionValueKind = 'ip' | 'port' | 'serviceAccount' | 'string';

/** The result of {@link classifyConditionKey}: a value kind, or a problem. */
export type ConditionKeyResult = { kind: ConditionValueKind; experimental?: true } | { error: string };

const PLAIN_KEYS: Readonly<Record<string, ConditionValueKind>> = {
  'source.ip': 'ip',
  'remote.ip': 'ip',
  'source.namespace': 'string',
  'source.principal': 'string',
  'source.serviceAccount': 'serviceAccount',
  'source.trustDomain': 'string',
  'request.auth.principal': 'string',
  'request.auth.audiences': 'string',
  'request.auth.presenter': 'string',
  'destination.ip': 'ip',
  'destination.port': 'port',
  'connection.sni': 'string',
};

/** Every key form meshlet accepts in `when`, for messages. */
export const CONDITION_KEY_FORMS: readonly string[] = [
  'request.headers[<name>]',
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.principal',
  'source.serviceAccount',
  'source.trustDomain',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'request.auth.claims[<claim>]',
  'destination.ip',
  'destination.port',
  'connection.sni',
  'experimental.envoy.filters.*[<key>]',
];

const HEADER_KEY = /^request\.headers\[[^[\]\s]+\]$/;
const CLAIM_KEY = /^request\.auth\.claims(\[[^[\]]+\])+$/;
const EXPERIMENTAL_KEY = /^experimental\.envoy\.filters\.[^[\]]+(\[[^[\]]+\])+$/;

/**
 * Classifies a `when` key. Unknown keys are errors, as in Istio's validator (at run time
 * Istio would drop the rule instead).
 */
export function classifyConditionKey(key: string): ConditionKeyResult {
  if (Object.hasOwn(PLAIN_KEYS, key)) return { kind: PLAIN_KEYS[key] as ConditionValueKind };
  if (HEADER_KEY.test(key) || CLAIM_KEY.test(key)) return { kind: 'string' };
  if (EXPERIMENTAL_KEY.test(key)) return { kind: 'string', experimental: true };
  if (key.startsWith('request.headers')) return { error: `bad key "${key}": should have the form request.headers[<name>]` };
  if (key.startsWith('request.auth.claims')) return { error: `bad key "${key}": should have the form request.auth.claims[<claim>] (nested: [a][b])` };
  if (key.startsWith('experimental.envoy.filters.')) return { error: `bad key "${key}": should have the form experimental.envoy.filters.<filter>[<key>]` };
  if (key === 'destination.namespace') return { error: 'attribute destination.namespace is replaced by the policy\'s metadata.namespace' };
  if (key.startsWith('destination.labels')) return { error: `attribute ${key} is replaced by the workload selector` };
  if (key === 'destination.name' || key === 'destination.user') return { error: `deprecated attribute ${key}: only supported in v1alpha1` };
  const known = [...Object.keys(PLAIN_KEYS), 'request.headers', 'request.auth.claims'];
  return { error: `unknown attribute "${key}"${suggest(key, known)}; supported keys: ${CONDITION_KEY_FORMS.join(', ')}` };
}

/** The check for one value of a condition whose key has this kind. */
export function conditionValueCheck(kind: ConditionValueKind): (s: string) => string | undefined {
  switch (kind) {
    case 'ip':
      return checkIpOrCidr;
    case 'port':
      return (s) => (s === '' ? 'empty value not allowed' : checkPortString(s));
    case 'serviceAccount':
      return checkServiceAccount;
    case 'string':
      return checkMatchValue;
  }
}
