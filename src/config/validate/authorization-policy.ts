/**
 * Validation of `AuthorizationPolicySpec`, following Istio's `ValidateAuthorizationPolicy`
 * and `pkg/config/security`: actions and providers, sources, operations and conditions,
 * value syntax, and the warnings Istio gives (DENY rules with only HTTP attributes). Whether a
 * CUSTOM policy's provider exists is the mesh's to say (the policy engine reports one that is not
 * configured and denies what the policy matches, as Istio does).
 *
 * An empty list in a source, operation or condition means "unset" in Istio (protobuf
 * cannot tell them apart), so it is removed from the typed value, with a warning, rather
 * than left for later stages to misread as "matches nothing".
 *
 * @module
 */
import { formatPath, type FieldPath } from '../issues.ts';
import type {
  AuthorizationCondition,
  AuthorizationOperation,
  AuthorizationPolicySpec,
  AuthorizationRule,
  AuthorizationSource,
} from '../types/security.ts';
import {
  checkMatchValue,
  checkPath,
  isRelativePath,
  checkPortString,
  checkServiceAccount,
  classifyConditionKey,
  conditionValueCheck,
} from './authz-values.ts';
import { checkIpOrCidr } from './common.ts';
import { checkScope, hasItems, isSet, scopeFields } from './policy-scope.ts';
import { fail, list, nonEmpty, obj, oneOf, req, str, strWith, warn, type Ctx, type Validator } from './schema.ts';

type Action = NonNullable<AuthorizationPolicySpec['action']>;
const ACTIONS: readonly Action[] = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'];

const SOURCE_FIELDS = [
  'principals',
  'notPrincipals',
  'requestPrincipals',
  'notRequestPrincipals',
  'namespaces',
  'notNamespaces',
  'serviceAccounts',
  'notServiceAccounts',
  'ipBlocks',
  'notIpBlocks',
  'remoteIpBlocks',
  'notRemoteIpBlocks',
  'trustDomains',
  'notTrustDomains',
] as const satisfies readonly (keyof AuthorizationSource)[];

const OPERATION_FIELDS = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'] as const satisfies readonly (keyof AuthorizationOperation)[];

/** Source fields Istio rejects with action CUSTOM. */
const CUSTOM_UNSUPPORTED_SOURCE = ['namespaces', 'notNamespaces', 'serviceAccounts', 'notServiceAccounts', 'principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals'] as const;

/** Source fields that a TCP connection can be matched on (everything but request principals). */
const TCP_SOURCE_FIELDS = SOURCE_FIELDS.filter((f) => f !== 'requestPrincipals' && f !== 'notRequestPrincipals');

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function items(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** Removes fields given as `[]` (unset in Istio) from `value`, warning about each. */
function dropEmptyLists<T extends object>(value: T, raw: Record<string, unknown>, fields: readonly (keyof T & string)[], path: FieldPath, ctx: Ctx): void {
  for (const f of fields) {
    const r = raw[f];
    if (Array.isArray(r) && r.length === 0) {
      warn(ctx, [...path, f], 'an empty list has no effect (Istio treats it as unset)');
      delete value[f];
    }
  }
}

const values = (check: (s: string) => string | undefined): Validator<string[]> => list(strWith(check));

const methodValue: Validator<string> = (v, path, ctx) => {
  const s = strWith(checkMatchValue)(v, path, ctx);
  if (s !== undefined && s !== s.toUpperCase()) warn(ctx, path, `HTTP methods are case-sensitive: "${s}" does not match "${s.toUpperCase()}"`);
  return s;
};

const pathValue: Validator<string> = (v, path, ctx) => {
  const s = strWith(checkPath)(v, path, ctx);
  if (s?.includes('?')) warn(ctx, path, `paths are matched without the query string, so "${s}" never matches`);
  if (s !== undefined && isRelativePath(s)) warn(ctx, path, `path "${s}" does not start with "/": request paths always do, so it never matches (write "/${s}")`);
  return s;
};

/**
 * A principal that never matches what it looks like it names (Istio accepts it, and a DENY rule
 * with it silently denies nothing): a peer principal written with `spiffe://` (Istio prepends
 * it), a request principal with no `/` and no `*` (issuer alone: the subject must be empty) or
 * that is a URL issuer alone (split at the scheme's `/`).
 */
function principalTrap(kind: 'principal' | 'requestPrincipal', s: string): string | undefined {
  if (kind === 'principal' && s.toLowerCase().startsWith('spiffe://')) {
    return `principals are written without "spiffe://" (Istio prepends it), so "${s}" never matches (write "${s.slice('spiffe://'.length)}")`;
  }
  if (kind !== 'requestPrincipal' || s.includes('*')) return undefined;
  if (!s.includes('/')) {
    return `"${s}" has no "/": it means issuer "${s}" with an empty subject, so it matches no token with a subject (write "${s}/*" for any subject of that issuer)`;
  }
  // A URL issuer alone (https://accounts.example.com): its last "/" is the scheme's.
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/]+$/i.test(s)) {
    const i = s.lastIndexOf('/');
    return `"${s}" is split at its last "/" into issuer "${s.slice(0, i)}" and subject "${s.slice(i + 1)}", so it never matches a token of issuer "${s}" (write "${s}/*" for any subject of that issuer)`;
  }
  return undefined;
}

const principalValues =
  (kind: 'principal' | 'requestPrincipal'): Validator<string[]> =>
  (v, path, ctx) => {
    const out = values(checkMatchValue)(v, path, ctx);
    out?.forEach((s, i) => {
      const trap = principalTrap(kind, s);
      if (trap !== undefined) warn(ctx, [...path, i], trap);
    });
    return out;
  };

const source = obj<AuthorizationSource>(
  {
    principals: principalValues('principal'),
    notPrincipals: principalValues('principal'),
    requestPrincipals: principalValues('requestPrincipal'),
    notRequestPrincipals: principalValues('requestPrincipal'),
    namespaces: values(checkMatchValue),
    notNamespaces: values(checkMatchValue),
    serviceAccounts: list(strWith(checkServiceAccount), { max: 16 }),
    notServiceAccounts: list(strWith(checkServiceAccount), { max: 16 }),
    ipBlocks: values(checkIpOrCidr),
    notIpBlocks: values(checkIpOrCidr),
    remoteIpBlocks: values(checkIpOrCidr),
    notRemoteIpBlocks: values(checkIpOrCidr),
    trustDomains: values(checkMatchValue),
    notTrustDomains: values(checkMatchValue),
  },
  {
    check: (src, path, ctx, raw) => {
      dropEmptyLists(src, raw, SOURCE_FIELDS, path, ctx);
      if (!SOURCE_FIELDS.some((f) => hasItems(raw[f]))) {
        fail(ctx, path, 'source must not be empty: set at least one field (principals, requestPrincipals, namespaces, serviceAccounts, ipBlocks, remoteIpBlocks, trustDomains or their not* forms), or leave out this "from" entry');
      }
      const sa = ['serviceAccounts', 'notServiceAccounts'].some((f) => hasItems(raw[f]));
      const other = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces'].filter((f) => hasItems(raw[f]));
      if (sa && other.length > 0) fail(ctx, path, `serviceAccounts cannot be combined with principals or namespaces in the same source, got ${other.join(', ')}`);
    },
  },
);

const operation = obj<AuthorizationOperation>(
  {
    hosts: values(checkMatchValue),
    notHosts: values(checkMatchValue),
    ports: values(checkPortString),
    notPorts: values(checkPortString),
    methods: list(methodValue),
    notMethods: list(methodValue),
    paths: list(pathValue),
    notPaths: list(pathValue),
  },
  {
    check: (op, path, ctx, raw) => {
      dropEmptyLists(op, raw, OPERATION_FIELDS, path, ctx);
      if (!OPERATION_FIELDS.some((f) => hasItems(raw[f]))) {
        fail(ctx, path, 'operation must not be empty: set at least one field (hosts, ports, methods, paths or their not* forms), or leave out this "to" entry');
      }
    },
  },
);

const condition = obj<AuthorizationCondition>(
  { key: req(nonEmpty), values: list(str), notValues: list(str) },
  {
    check: (cond, path, ctx, raw) => {
      dropEmptyLists(cond, raw, ['values', 'notValues'], path, ctx);
      if (!hasItems(raw.values) && !hasItems(raw.notValues)) fail(ctx, path, 'at least one of values or notValues must be set');
      if (typeof raw.key !== 'string' || raw.key === '') return;
      const kind = classifyConditionKey(raw.key);
      if ('error' in kind) {
        fail(ctx, [...path, 'key'], kind.error);
        return;
      }
      if (kind.experimental === true) {
        ctx.issues.at(
          ctx.subject,
          [...path, 'key'],
          'warning',
          `not supported by meshlet: ${formatPath([...path, 'key'])} (${raw.key}); meshlet has no Envoy filter metadata, so the condition cannot be evaluated and the policy fails closed (an ALLOW rule with it never matches, a DENY rule with it always does)`,
          'MESHLET0002',
        );
      }
      const check = conditionValueCheck(kind.kind);
      const trapKind = raw.key === 'source.principal' ? 'principal' : raw.key === 'request.auth.principal' ? 'requestPrincipal' : undefined;
      for (const field of ['values', 'notValues'] as const) {
        items(raw[field]).forEach((v, i) => {
          if (typeof v !== 'string') return; // already reported
          const problem = check(v);
          if (problem !== undefined) fail(ctx, [...path, field, i], `invalid value for key ${raw.key}: ${problem}`);
          const trap = trapKind === undefined ? undefined : principalTrap(trapKind, v);
          if (trap !== undefined) warn(ctx, [...path, field, i], trap);
        });
      }
    },
  },
);

const rule = obj<AuthorizationRule>({
  from: list(obj<{ source: AuthorizationSource }>({ source: req(source) }), { min: 1 }),
  to: list(obj<{ operation: AuthorizationOperation }>({ operation: req(operation) }), { min: 1 }),
  when: list(condition),
});

/** Source fields and condition keys that Istio's validator rejects with action CUSTOM. */
function checkCustomRule(r: Record<string, unknown>, path: FieldPath, ctx: Ctx): void {
  items(r.from).forEach((from, j) => {
    const src = record(record(from)?.source);
    if (src === undefined) return;
    for (const f of CUSTOM_UNSUPPORTED_SOURCE) {
      if (hasItems(src[f])) fail(ctx, [...path, 'from', j, 'source', f], `${f} is not supported with action CUSTOM (Istio)`);
    }
  });
  items(r.when).forEach((w, k) => {
    const key = record(w)?.key;
    if (typeof key !== 'string') return;
    if (['source.namespace', 'source.serviceAccount', 'source.principal'].includes(key) || key.startsWith('request.auth.')) {
      fail(ctx, [...path, 'when', k, 'key'], `${key} is not supported with action CUSTOM (Istio)`);
    }
  });
}

/**
 * Istio's advice: on a TCP port an HTTP-only attribute cannot be checked, and a DENY rule
 * then drops it and matches more (all) traffic. Same test as Istio's validator.
 */
function checkDenyHttpOnly(r: Record<string, unknown>, path: FieldPath, ctx: Ctx): void {
  const sources = items(r.from).map((f) => record(record(f)?.source)).filter((s) => s !== undefined);
  const operations = items(r.to).map((t) => record(record(t)?.operation)).filter((o) => o !== undefined);
  const tcpInFrom = sources.some((s) => TCP_SOURCE_FIELDS.some((f) => hasItems(s[f])));
  const tcpInTo = operations.some((o) => hasItems(o.ports) || hasItems(o.notPorts));
  if ((sources.length > 0 && operations.length === 0 && !tcpInFrom) || (operations.length > 0 && !tcpInTo)) {
    warn(
      ctx,
      path,
      'this DENY rule uses only HTTP attributes (requestPrincipals, hosts, methods, paths) and no ports, so on TCP (non-HTTP) ports it denies all traffic; Istio recommends setting ports in the operation',
    );
  }
}

/** Validates an AuthorizationPolicySpec. */
export const authorizationPolicySpec: Validator<AuthorizationPolicySpec> = obj<AuthorizationPolicySpec>(
  {
    ...scopeFields,
    rules: list(rule),
    action: oneOf(ACTIONS),
    provider: obj<{ name: string }>({ name: req(nonEmpty) }),
  },
  {
    check: (spec, path, ctx, raw) => {
      checkScope(raw, path, ctx);
      if (isSet(raw.action) && spec.action === undefined) return; // a bad action is reported; the rest depends on it
      const action = spec.action ?? 'ALLOW';
      const rawRules = items(raw.rules);
      const noRules = !hasItems(raw.rules);
      const meaningless = `${action} action without rules is meaningless as it will never be triggered; add an empty rule {} if you want it triggered for every request`;
      switch (action) {
        case 'ALLOW':
          if (noRules) {
            warn(ctx, path, 'no rules: the policy matches nothing: with ALLOW this denies every request to the selected workloads (Istio\'s allow-nothing policy; write rules: [{}] to allow everything)');
          }
          break;
        case 'DENY':
          if (noRules) fail(ctx, path, meaningless);
          break;
        case 'AUDIT':
          if (noRules) warn(ctx, path, 'no rules: an AUDIT policy without rules matches nothing');
          warn(ctx, [...path, 'action'], 'AUDIT only marks the requests the policy matches for auditing; it never allows or denies a request');
          break;
        case 'CUSTOM':
          if (noRules) fail(ctx, path, meaningless);
          // Whether the provider exists is the mesh's to say (its extensionProviders): the policy engine
          // reports one that is not configured, and its requests are denied, as in Istio.
          if (!isSet(raw.provider)) fail(ctx, [...path, 'provider'], 'provider is required with action CUSTOM');
          break;
      }
      if (action !== 'CUSTOM' && isSet(raw.provider)) fail(ctx, [...path, 'provider'], `provider may only be set with action CUSTOM, got action ${action}`);
      rawRules.forEach((r, i) => {
        const rec = record(r);
        if (rec === undefined) return;
        if (action === 'CUSTOM') checkCustomRule(rec, [...path, 'rules', i], ctx);
        if (action === 'DENY') checkDenyHttpOnly(rec, [...path, 'rules', i], ctx);
      });
    },
  },
);
