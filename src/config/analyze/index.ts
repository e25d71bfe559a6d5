/**
 * Config analysis, like `istioctl analyze`: checks across resources that validation (one
 * resource at a time) cannot make, reported with Istio's analyzer codes where Istio has one
 * (`IST0101`, `IST0109`, `IST0110`, `IST0111`, `IST0112`, `IST0118`, `IST0128`, `IST0129`,
 * `IST0130`, `IST0131`, `IST0149`, `IST0150`, `IST0173`, `IST0174`, `IST0177`) and `MESHLET…` codes for meshlet's own
 * (`MESHLET0102`: a delegate that cannot be merged, which Istio only logs; `MESHLET0104`: a VirtualService
 * host written `<name>.<namespace>`, which Istio does not expand).
 *
 * @example
 * const issues = new IssueList();
 * const { resources } = validateDocuments(docs, {}, issues);
 * analyze(resources, issues);
 * for (const i of issues.all) console.log(`${i.level} [${i.code}] ${i}`);
 *
 * @module
 */
import type { IssueList } from '../issues.ts';
import type { RegistryCache } from '../registry.ts';
import type { AnyResource } from '../resource.ts';
import { runNow, type Steps } from '../steps.ts';
import { caCertificateAnalyzer } from './ca-certificates.ts';
import { conflictingHostsAnalyzer } from './conflicting-hosts.ts';
import { createContext, type Analyzer } from './context.ts';
import { delegateAnalyzer } from './delegates.ts';
import { destinationRuleAnalyzer } from './destination-rules.ts';
import { destinationAnalyzer } from './destinations.ts';
import { jwtClaimAnalyzer } from './jwt-claims.ts';
import { matchOrderAnalyzer } from './match-order.ts';
import { portNameAnalyzer } from './port-names.ts';
import { serviceEntryProtocolAnalyzer } from './service-entry-protocols.ts';
import { sidecarSelectorAnalyzer } from './sidecar-selectors.ts';
import { virtualServiceHostAnalyzer } from './virtual-service-hosts.ts';

export type { AnalysisContext, Analyzer } from './context.ts';
export { isCatchAllMatch, isCatchAllRule } from './match-order.ts';

/** Every analyzer, in the order they run. */
export const ANALYZERS: readonly Analyzer[] = Object.freeze([
  destinationAnalyzer,
  matchOrderAnalyzer,
  conflictingHostsAnalyzer,
  jwtClaimAnalyzer,
  destinationRuleAnalyzer,
  caCertificateAnalyzer,
  delegateAnalyzer,
  portNameAnalyzer,
  serviceEntryProtocolAnalyzer,
  sidecarSelectorAnalyzer,
  virtualServiceHostAnalyzer,
]);

/**
 * Runs every analyzer over validated resources and adds the findings to `issues`.
 * Findings never throw; errors among them (e.g. `IST0101`) mean traffic will fail at run time.
 * @category Config
 */
export function analyze(resources: readonly AnyResource[], issues: IssueList): void {
  runNow(analyzeSteps(resources, issues));
}

/**
 * {@link analyze} as {@link Steps}: pauses between resources.
 * @internal
 */
export function* analyzeSteps(resources: readonly AnyResource[], issues: IssueList, registryCache?: RegistryCache): Steps<void> {
  const ctx = yield* createContext(resources, registryCache);
  for (const a of ANALYZERS) yield* a.analyze(ctx, issues);
}
