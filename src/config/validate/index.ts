/**
 * Validation entry point: turns raw documents into typed, validated resources, reporting
 * every problem at once (file, resource, field path) and never stopping at the first.
 *
 * @module
 */
import { IssueList, type IssueSubject } from '../issues.ts';
import type { RawDocument } from '../load.ts';
import type { AnyResource, Kind, SpecByKind } from '../resource.ts';
import type { ObjectMeta } from '../types/common.ts';
import { classifyKind } from './api-kinds.ts';
import { checkAnnotations } from './annotations.ts';
import { authorizationPolicySpec } from './authorization-policy.ts';
import { checkDnsLabel, checkDnsSubdomain, labels as labelsValidator } from './common.ts';
import { destinationRuleSpec } from './destination-rule.ts';
import { envoyFilterSpec } from './envoy-filter.ts';
import { checkServiceMetadata, kubeServiceSpec } from './kube-service.ts';
import { peerAuthenticationSpec } from './peer-authentication.ts';
import { requestAuthenticationSpec } from './request-authentication.ts';
import { int, map, obj, req, str, strWith, suggest, type Ctx, type Validator } from './schema.ts';
import { serviceEntrySpec } from './service-entry.ts';
import { telemetrySpec } from './telemetry.ts';
import { virtualServiceSpec } from './virtual-service.ts';
import { workloadEntrySpec } from './workload-entry.ts';
import { workloadGroupSpec } from './workload-group.ts';
import { SkippedKinds } from './skipped-kinds.ts';

const SPEC_VALIDATORS: { readonly [K in Kind]: Validator<SpecByKind[K]> } = {
  VirtualService: virtualServiceSpec,
  DestinationRule: destinationRuleSpec,
  ServiceEntry: serviceEntrySpec,
  WorkloadEntry: workloadEntrySpec,
  WorkloadGroup: workloadGroupSpec,
  Service: kubeServiceSpec,
  PeerAuthentication: peerAuthenticationSpec,
  RequestAuthentication: requestAuthenticationSpec,
  AuthorizationPolicy: authorizationPolicySpec,
  Telemetry: telemetrySpec,
  EnvoyFilter: envoyFilterSpec,
};

const metadataValidator = obj<ObjectMeta>({
  name: req(strWith(checkDnsSubdomain)),
  namespace: strWith(checkDnsLabel),
  labels: labelsValidator,
  annotations: map(str),
  creationTimestamp: strWith((s) => (Number.isNaN(Date.parse(s)) ? `"${s}" is not an RFC 3339 time` : undefined)),
  resourceVersion: str,
  uid: str,
  generation: int({ min: 0 }),
});

// Fields Kubernetes adds to stored objects; accepted and ignored.
const IGNORED_METADATA = ['managedFields', 'ownerReferences', 'finalizers', 'selfLink', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generateName'];

/**
 * Options for {@link validateDocuments}.
 * @category Config
 */
export interface ValidateOptions {
  /** Namespace for resources without `metadata.namespace`. @defaultValue 'default' */
  defaultNamespace?: string;
}

/**
 * The result of validation: the resources that are valid, and every issue found.
 * @category Config
 */
export interface ValidationResult {
  /** Valid resources, in load order. Resources with errors are left out. */
  readonly resources: AnyResource[];
  readonly issues: IssueList;
}

/** Checks of a kind's metadata beyond the common ones (a Service's name is a DNS-1035 label, …). */
const METADATA_CHECKS: { readonly [K in Kind]?: (metadata: ObjectMeta, ctx: Ctx) => void } = {
  Service: checkServiceMetadata,
};

/**
 * Validates raw documents. A resource with any error is left out of `resources`;
 * callers that apply config must reject the whole set when `issues.hasErrors`.
 * @category Config
 */
export function validateDocuments(docs: readonly RawDocument[], options: ValidateOptions = {}, issues = new IssueList()): ValidationResult {
  const defaultNs = options.defaultNamespace ?? 'default';
  const resources: AnyResource[] = [];
  const seen = new Map<string, AnyResource>();
  const skipped = new SkippedKinds();
  docs.forEach((doc) => {
    const v = doc.value;
    const at = (message: string) => issues.file(doc.source.file, doc.source.line, 'error', message);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      at(`each document must be a resource object, got ${Array.isArray(v) ? 'a list' : typeof v}`);
      return;
    }
    const raw = v as Record<string, unknown>;
    const { apiVersion, kind } = raw;
    if (typeof kind !== 'string' || kind === '') {
      at('resource has no kind');
      return;
    }
    if (typeof apiVersion !== 'string' || apiVersion === '') {
      at(`${kind} has no apiVersion`);
      return;
    }
    const name = (raw.metadata as { name?: unknown } | undefined)?.name;
    const label = `${kind} ${typeof name === 'string' ? name : '(unnamed)'}`;
    const decision = classifyKind(apiVersion, kind);
    if (decision.action === 'error') {
      at(`${label}: ${decision.message}`);
      return;
    }
    if (decision.action === 'skip') {
      skipped.add(raw, apiVersion, kind, decision, doc.source, defaultNs);
      return;
    }
    const k = decision.kind;
    const ns = typeof (raw.metadata as { namespace?: unknown } | undefined)?.namespace === 'string'
      ? ((raw.metadata as { namespace: string }).namespace)
      : defaultNs;
    const ref = `${kind} ${ns}/${typeof name === 'string' ? name : '(unnamed)'}`;
    const subject: IssueSubject = { source: doc.source, ref };
    const before = issues.all.length;
    const ctx: Ctx = { issues, subject, namespace: ns, metadata: typeof raw.metadata === 'object' && raw.metadata !== null ? (raw.metadata as Ctx['metadata']) : undefined };
    for (const key of Object.keys(raw)) {
      if (!['apiVersion', 'kind', 'metadata', 'spec', 'status'].includes(key)) {
        issues.at(subject, [key], 'error', `unknown field "${key}"${suggest(key, ['spec', 'metadata'])}`);
      }
    }
    let metadata: ObjectMeta | undefined;
    if (raw.metadata === undefined || raw.metadata === null) {
      issues.at(subject, ['metadata'], 'error', 'is required (with at least a name)');
    } else {
      const m = raw.metadata as Record<string, unknown>;
      const cleaned = typeof m === 'object' && !Array.isArray(m)
        ? Object.fromEntries(Object.entries(m).filter(([key]) => !IGNORED_METADATA.includes(key)))
        : m;
      metadata = metadataValidator(cleaned, ['metadata'], ctx);
      if (metadata !== undefined) METADATA_CHECKS[k]?.(metadata, ctx);
    }
    const spec = raw.spec === undefined || raw.spec === null ? {} : raw.spec;
    const typedSpec = (SPEC_VALIDATORS[k] as Validator<unknown>)(spec, ['spec'], ctx);
    checkAnnotations(k, apiVersion, spec, ctx);
    const hasErrors = issues.all.slice(before).some((i) => i.level === 'error');
    if (hasErrors || metadata === undefined || typedSpec === undefined) return;
    const resource = {
      apiVersion,
      kind: k,
      metadata: { ...metadata, namespace: ns },
      spec: typedSpec,
      source: doc.source,
      ref,
      order: resources.length,
    } as AnyResource;
    const key = `${k}/${ns}/${metadata.name}`;
    const first = seen.get(key);
    if (first !== undefined) {
      issues.at(subject, ['metadata', 'name'], 'error', `duplicate ${kind} ${ns}/${metadata.name}: already defined in ${first.source.file}${first.source.line !== undefined ? ` line ${first.source.line}` : ''}`);
      return;
    }
    seen.set(key, resource);
    resources.push(resource);
  });
  skipped.report(issues);
  return { resources, issues };
}
