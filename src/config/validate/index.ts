/**
 * Validation entry point: turns raw documents into typed, validated resources, reporting
 * every problem at once (file, resource, field path) and never stopping at the first.
 *
 * @module
 */
import { type ConfigIssue, IssueList, type IssueSubject } from '../issues.ts';
import { runNow, type Steps } from '../steps.ts';
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
import { suggest } from '../../core/did-you-mean.ts';
import { int, map, obj, req, str, strWith, type Ctx, type Validator } from './schema.ts';
import { serviceEntrySpec } from './service-entry.ts';
import { sidecarSpec } from './sidecar.ts';
import { telemetrySpec } from './telemetry.ts';
import { virtualServiceSpec } from './virtual-service.ts';
import { workloadEntrySpec } from './workload-entry.ts';
import { workloadGroupSpec } from './workload-group.ts';
import { SkippedKinds } from './skipped-kinds.ts';
import { gatewayRouteKind, routeVirtualServices } from '../gateway-api/mesh-routes.ts';
import { grpcRouteSpec, httpRouteSpec } from '../gateway-api/validate.ts';
import { HEALTH_CHECKS_ANNOTATION, keptStatus, workloadEntryHealthy } from '../workloads.ts';

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
  Sidecar: sidecarSpec,
  HTTPRoute: httpRouteSpec,
  GRPCRoute: grpcRouteSpec,
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
  defaultNamespace?: string | undefined;
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

/** A validated resource before it has its place in a set (`order`), with what the duplicate check needs. */
interface Valid {
  readonly resource: Omit<AnyResource, 'order'>;
  /** `Kind/namespace/name`. */
  readonly key: string;
  readonly subject: IssueSubject;
  readonly kind: string;
}

/** What validating one document gave, and its issues: a resource, a skipped kind, or neither (it had errors). */
interface DocOutcome {
  readonly issues: readonly ConfigIssue[];
  readonly valid?: Valid;
  readonly skip?: Parameters<SkippedKinds['add']>;
}

/** Validates one document on its own (what does not depend on the other documents). */
function validateOne(doc: RawDocument, defaultNs: string): DocOutcome {
  const issues = new IssueList();
  const done = (): DocOutcome => ({ issues: issues.all });
  const v = doc.value;
  const at = (message: string) => issues.file(doc.source.file, doc.source.line, 'error', message);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    at(`each document must be a resource object, got ${Array.isArray(v) ? 'a list' : typeof v}`);
    return done();
  }
  const raw = v as Record<string, unknown>;
  const { apiVersion, kind } = raw;
  if (typeof kind !== 'string' || kind === '') {
    at('resource has no kind');
    return done();
  }
  if (typeof apiVersion !== 'string' || apiVersion === '') {
    at(`${kind} has no apiVersion`);
    return done();
  }
  const name = (raw.metadata as { name?: unknown } | undefined)?.name;
  const label = `${kind} ${typeof name === 'string' ? name : '(unnamed)'}`;
  const decision = classifyKind(apiVersion, kind);
  if (decision.action === 'error') {
    at(`${label}: ${decision.message}`);
    return done();
  }
  // An HTTPRoute or GRPCRoute with a Service parent is mesh routing (GAMMA), which meshlet applies; one attached only to Gateways is skipped.
  const k = decision.action === 'apply' ? decision.kind : gatewayRouteKind(raw, apiVersion, kind);
  if (decision.action === 'skip' && k === undefined) return { issues: [], skip: [raw, apiVersion, kind, decision, doc.source, defaultNs] };
  if (k === undefined) return done();
  const ns = typeof (raw.metadata as { namespace?: unknown } | undefined)?.namespace === 'string'
    ? ((raw.metadata as { namespace: string }).namespace)
    : defaultNs;
  const ref = `${kind} ${ns}/${typeof name === 'string' ? name : '(unnamed)'}`;
  const subject: IssueSubject = { source: doc.source, ref };
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
  if (issues.hasErrors || metadata === undefined || typedSpec === undefined) return done();
  // A WorkloadEntry keeps its status conditions (with health checks on, `Healthy` decides whether it is an endpoint); a Service its load balancer's addresses.
  const status = keptStatus(k, raw.status);
  if (k === 'WorkloadEntry' && !workloadEntryHealthy(metadata.annotations, status)) {
    const healthy = status?.conditions.find((c) => c.type === 'Healthy');
    const why = healthy === undefined ? 'its status has no Healthy condition' : `its status says Healthy "${healthy.status}"`;
    issues.at(subject, ['metadata', 'annotations', HEALTH_CHECKS_ANNOTATION], 'warning', `health checks are on and ${why}: not an endpoint of any service, as istiod keeps a health-checked WorkloadEntry out until its probe reports it healthy (a workload registered through a WorkloadGroup with a probe reports it; otherwise remove the annotation or set the condition)`);
  }
  const resource = { apiVersion, kind: k, metadata: { ...metadata, namespace: ns }, spec: typedSpec, ...(status === undefined ? {} : { status }), source: doc.source, ref } as Omit<AnyResource, 'order'>;
  return { issues: issues.all, valid: { resource, key: `${k}/${ns}/${metadata.name}`, subject, kind } };
}

/**
 * Validation results of documents, reused while the document is the same object: a reload
 * whose {@link ParseCache} kept a file's documents validates only the changed files' documents.
 * Validation of one document depends only on it and the default namespace; what depends on the
 * whole set (duplicates, positions, analysis) is done again on every validation. Holds the
 * documents of the last validation only (plain maps, pruned after each: weak maps of this size
 * made every young-generation GC pause of a reload tens of milliseconds longer).
 * @internal
 */
export class ValidationCache {
  #byDoc = new Map<RawDocument, { ns: string; outcome: DocOutcome; last?: AnyResource }>();
  #docOf = new Map<AnyResource, RawDocument>();
  #nextByDoc = new Map<RawDocument, { ns: string; outcome: DocOutcome; last?: AnyResource }>();
  #nextDocOf = new Map<AnyResource, RawDocument>();

  /** The document a resource of the last validation was made from (to validate a set again without validating it again). */
  docOf(resource: AnyResource): RawDocument | undefined {
    return this.#docOf.get(resource);
  }

  /** The outcome for `doc` (validated now if not known), and the resource made from it last time. */
  get(doc: RawDocument, defaultNs: string): { outcome: DocOutcome; last?: AnyResource } {
    let entry = this.#nextByDoc.get(doc) ?? this.#byDoc.get(doc);
    if (entry === undefined || entry.ns !== defaultNs) entry = { ns: defaultNs, outcome: validateOne(doc, defaultNs) };
    this.#nextByDoc.set(doc, entry);
    return entry;
  }

  /** Remembers the resource made from `doc` (reused while its position is the same). */
  made(doc: RawDocument, resource: AnyResource): void {
    const entry = this.#nextByDoc.get(doc);
    if (entry !== undefined) entry.last = resource;
    this.#nextDocOf.set(resource, doc);
  }

  /** Ends a validation: what it did not use is forgotten. */
  end(): void {
    this.#byDoc = this.#nextByDoc;
    this.#docOf = this.#nextDocOf;
    this.#nextByDoc = new Map();
    this.#nextDocOf = new Map();
  }
}

/**
 * {@link validateDocuments} as {@link Steps}: pauses after each document.
 * @internal
 */
export function* validateSteps(docs: readonly RawDocument[], options: ValidateOptions = {}, issues = new IssueList(), cache?: ValidationCache): Steps<ValidationResult> {
  const defaultNs = options.defaultNamespace ?? 'default';
  const resources: AnyResource[] = [];
  const seen = new Map<string, AnyResource>();
  const skipped = new SkippedKinds();
  for (const doc of docs) {
    const { outcome, last } = cache?.get(doc, defaultNs) ?? { outcome: validateOne(doc, defaultNs), last: undefined };
    for (const i of outcome.issues) issues.push(i);
    if (outcome.skip !== undefined) skipped.add(...outcome.skip);
    const valid = outcome.valid;
    if (valid !== undefined) {
      const first = seen.get(valid.key);
      if (first !== undefined) {
        const name = valid.resource.metadata.name;
        const ns = valid.resource.metadata.namespace;
        issues.at(valid.subject, ['metadata', 'name'], 'error', `duplicate ${valid.kind} ${ns}/${name}: already defined in ${first.source.file}${first.source.line !== undefined ? ` line ${first.source.line}` : ''}`);
      } else {
        const order = resources.length;
        // The same object as last time while the document keeps its place (compiles can tell it is unchanged).
        const resource = last !== undefined && last.order === order ? last : ({ ...valid.resource, order } as AnyResource);
        cache?.made(doc, resource);
        seen.set(valid.key, resource);
        resources.push(resource);
      }
    }
    yield;
  }
  // What istiod reports in the status of HTTPRoutes and GRPCRoutes (parents and backends not found) as warnings.
  routeVirtualServices(resources, issues);
  skipped.report(issues);
  skipped.reportEndpointsOf(resources, issues);
  cache?.end();
  return { resources, issues };
}

/**
 * Validates raw documents. A resource with any error is left out of `resources`;
 * callers that apply config must reject the whole set when `issues.hasErrors`.
 * @category Config
 */
export function validateDocuments(docs: readonly RawDocument[], options: ValidateOptions = {}, issues = new IssueList()): ValidationResult {
  return runNow(validateSteps(docs, options, issues));
}
