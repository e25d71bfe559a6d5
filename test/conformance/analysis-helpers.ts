/**
 * The unit tests of the helpers Istio's analyzers share for host names and export scopes
 * (pkg/config/analysis/analyzers/util/*_test.go), transcribed assertion by assertion (each keeps
 * its line), against the meshlet helpers that play the same part in its analyzers and registry:
 * `resolveHost` (short name → FQDN), `exportScope` (exportTo → all or some namespaces),
 * `isVisible` (is a host exported to a namespace) and `parseExportTo` (the
 * networking.istio.io/exportTo annotation of a Kubernetes Service).
 * Copyright Istio Authors, Apache License 2.0 (the transcribed rows).
 */
import { isVisible, parseExportTo, resolveHost } from '../../src/config/hosts.ts';
import { exportScope } from '../../src/config/analyze/context.ts';
import type { CaseResult, UncomparedCase } from './suite.ts';

const UTIL = 'pkg/config/analysis/analyzers/util';
const GROUP = 'helpers (analyzers/util)';

interface HelperCase {
  readonly test: string;
  readonly file: string;
  readonly line: number;
  /** The assertion as written in Istio's test. */
  readonly call: string;
  /** Istio's expected value, printed. */
  readonly expected: string;
  /** meshlet's value for the same input, printed. */
  readonly meshlet: () => string;
}

/** `IsExportToAllNamespaces(exportTo)`: exportScope(exportTo) is all namespaces. */
const allNs = (exportTo: string[] | undefined) => () => String(exportScope(exportTo, 'ns') === 'all');

/** `NewScopedFqdn(scope, namespace, host)`: the scope, and the host as an FQDN in `namespace`. */
const scoped = (scope: string, namespace: string, host: string) => () => `${scope}/${resolveHost(host, namespace)}`;

/** `ScopedFqdn(scope/fqdn).InScopeOf(ns)`: a host declared in its FQDN's namespace, exported to `scope`, is visible in `ns`. */
const inScope = (scopedFqdn: string, ns: string) => () => {
  const [scope, fqdn] = scopedFqdn.split('/') as [string, string];
  const owner = /^[^.]+\.([^.]+)\.svc\./.exec(fqdn)?.[1] ?? '';
  return String(isVisible([scope], owner, ns));
};

/** `getVisibleNamespacesFromExportToAnno(annotation, namespace)`: the namespaces of the annotation, `.` resolved. */
const visibleNs = (annotation: string, namespace: string) => () => {
  const list = parseExportTo(annotation) ?? ['*'];
  return JSON.stringify(list.map((e) => (e === '.' ? namespace : e)));
};

const E = `${UTIL}/exportto_test.go`;
const H = `${UTIL}/hosts_test.go`;
const S = `${UTIL}/service_lookup_test.go`;

export const HELPER_CASES: readonly HelperCase[] = [
  { test: 'TestIsExportToAllNamespaces', file: E, line: 27, call: 'IsExportToAllNamespaces(nil)', expected: 'true', meshlet: allNs(undefined) },
  { test: 'TestIsExportToAllNamespaces', file: E, line: 30, call: 'IsExportToAllNamespaces(["*"])', expected: 'true', meshlet: allNs(['*']) },
  { test: 'TestIsExportToAllNamespaces', file: E, line: 33, call: 'IsExportToAllNamespaces(["."])', expected: 'false', meshlet: allNs(['.']) },
  { test: 'TestIsExportToAllNamespaces', file: E, line: 36, call: 'IsExportToAllNamespaces([".", "*"])', expected: 'true', meshlet: allNs(['.', '*']) },
  { test: 'TestIsExportToAllNamespaces', file: E, line: 39, call: 'IsExportToAllNamespaces(["bogus"])', expected: 'false', meshlet: allNs(['bogus']) },
  { test: 'TestGetScopedFqdnHostname', file: H, line: 42, call: 'NewScopedFqdn("default", "default", "foo.default.svc.cluster.local")', expected: 'default/foo.default.svc.cluster.local', meshlet: scoped('default', 'default', 'foo.default.svc.cluster.local') },
  { test: 'TestGetScopedFqdnHostname', file: H, line: 44, call: 'NewScopedFqdn("default", "other", "foo.default.svc.cluster.local")', expected: 'default/foo.default.svc.cluster.local', meshlet: scoped('default', 'other', 'foo.default.svc.cluster.local') },
  { test: 'TestGetScopedFqdnHostname', file: H, line: 46, call: 'NewScopedFqdn("*", "default", "foo.default.svc.cluster.local")', expected: '*/foo.default.svc.cluster.local', meshlet: scoped('*', 'default', 'foo.default.svc.cluster.local') },
  { test: 'TestGetScopedFqdnHostname', file: H, line: 48, call: 'NewScopedFqdn("*", "other", "foo.default.svc.cluster.local")', expected: '*/foo.default.svc.cluster.local', meshlet: scoped('*', 'other', 'foo.default.svc.cluster.local') },
  { test: 'TestGetScopedFqdnHostname', file: H, line: 51, call: 'NewScopedFqdn("default", "default", "foo")', expected: 'default/foo.default.svc.cluster.local', meshlet: scoped('default', 'default', 'foo') },
  { test: 'TestGetScopedFqdnHostname', file: H, line: 53, call: 'NewScopedFqdn("*", "default", "foo")', expected: '*/foo.default.svc.cluster.local', meshlet: scoped('*', 'default', 'foo') },
  { test: 'TestGetScopedFqdnHostname', file: H, line: 56, call: 'NewScopedFqdn("foo", "foo", "*")', expected: 'foo/*', meshlet: scoped('foo', 'foo', '*') },
  { test: 'TestGetScopedFqdnHostname', file: H, line: 58, call: 'NewScopedFqdn("foo", "foo", "*.xyz.abc")', expected: 'foo/*.xyz.abc', meshlet: scoped('foo', 'foo', '*.xyz.abc') },
  { test: 'TestGetScopedFqdnHostname', file: H, line: 60, call: 'NewScopedFqdn("*", "foo", "*")', expected: '*/*', meshlet: scoped('*', 'foo', '*') },
  { test: 'TestGetScopedFqdnHostname', file: H, line: 62, call: 'NewScopedFqdn("*", "foo", "*.xyz.abc")', expected: '*/*.xyz.abc', meshlet: scoped('*', 'foo', '*.xyz.abc') },
  { test: 'TestGetScopedFqdnHostname', file: H, line: 65, call: 'NewScopedFqdn("foo", "foo", "xyz.abc")', expected: 'foo/xyz.abc', meshlet: scoped('foo', 'foo', 'xyz.abc') },
  { test: 'TestGetScopedFqdnHostname', file: H, line: 67, call: 'NewScopedFqdn("*", "foo", "xyz.abc")', expected: '*/xyz.abc', meshlet: scoped('*', 'foo', 'xyz.abc') },
  { test: 'TestScopedFqdn_InScopeOf', file: H, line: 92, call: '"*/reviews.bookinfo.svc.cluster.local".InScopeOf("bookinfo")', expected: 'true', meshlet: inScope('*/reviews.bookinfo.svc.cluster.local', 'bookinfo') },
  { test: 'TestScopedFqdn_InScopeOf', file: H, line: 93, call: '"*/reviews.bookinfo.svc.cluster.local".InScopeOf("foo")', expected: 'true', meshlet: inScope('*/reviews.bookinfo.svc.cluster.local', 'foo') },
  { test: 'TestScopedFqdn_InScopeOf', file: H, line: 94, call: '"./reviews.bookinfo.svc.cluster.local".InScopeOf("bookinfo")', expected: 'true', meshlet: inScope('./reviews.bookinfo.svc.cluster.local', 'bookinfo') },
  { test: 'TestScopedFqdn_InScopeOf', file: H, line: 95, call: '"./reviews.bookinfo.svc.cluster.local".InScopeOf("foo")', expected: 'false', meshlet: inScope('./reviews.bookinfo.svc.cluster.local', 'foo') },
  { test: 'TestScopedFqdn_InScopeOf', file: H, line: 96, call: '"bookinfo/reviews.bookinfo.svc.cluster.local".InScopeOf("bookinfo")', expected: 'true', meshlet: inScope('bookinfo/reviews.bookinfo.svc.cluster.local', 'bookinfo') },
  { test: 'TestScopedFqdn_InScopeOf', file: H, line: 97, call: '"bookinfo/reviews.bookinfo.svc.cluster.local".InScopeOf("foo")', expected: 'false', meshlet: inScope('bookinfo/reviews.bookinfo.svc.cluster.local', 'foo') },
  { test: 'TestGetVisibleNamespacesFromExportToAnno', file: S, line: 29, call: 'getVisibleNamespacesFromExportToAnno("", "ns")', expected: '["*"]', meshlet: visibleNs('', 'ns') },
  { test: 'TestGetVisibleNamespacesFromExportToAnno', file: S, line: 30, call: 'getVisibleNamespacesFromExportToAnno("ns", "ns")', expected: '["ns"]', meshlet: visibleNs('ns', 'ns') },
  { test: 'TestGetVisibleNamespacesFromExportToAnno', file: S, line: 31, call: 'getVisibleNamespacesFromExportToAnno(".", "ns")', expected: '["ns"]', meshlet: visibleNs('.', 'ns') },
  { test: 'TestGetVisibleNamespacesFromExportToAnno', file: S, line: 32, call: 'getVisibleNamespacesFromExportToAnno("ns1,ns2", "ns1")', expected: '["ns1","ns2"]', meshlet: visibleNs('ns1,ns2', 'ns1') },
  { test: 'TestGetVisibleNamespacesFromExportToAnno', file: S, line: 33, call: 'getVisibleNamespacesFromExportToAnno("ns1, ns2", "ns1")', expected: '["ns1","ns2"]', meshlet: visibleNs('ns1, ns2', 'ns1') },
  { test: 'TestGetVisibleNamespacesFromExportToAnno', file: S, line: 34, call: 'getVisibleNamespacesFromExportToAnno("ns1 ,ns2", "ns1")', expected: '["ns1","ns2"]', meshlet: visibleNs('ns1 ,ns2', 'ns1') },
];

/** Helper tests not compared, with why. */
export const HELPERS_NOT_COMPARED: readonly { readonly test: string; readonly file: string; readonly line: number; readonly rows: number; readonly why: string }[] = [
  {
    test: 'TestGetResourceNameFromHost',
    file: H,
    line: 25,
    rows: 4,
    why: 'turns a host into the namespace/name of a Kubernetes resource, for looking DestinationRules up by resource name; meshlet matches DestinationRules by host (its effect is compared through the virtualServiceDestinationRules row)',
  },
  { test: 'TestScopedFqdn_GetScopeAndFqdn', file: H, line: 70, rows: 3, why: "splits Istio's internal scope/host string, which meshlet does not have" },
];

/** Runs the helper rows. */
export function runAnalysisHelpers(results: CaseResult[], uncompared: UncomparedCase[]): void {
  for (const c of HELPER_CASES) {
    const got = c.meshlet();
    results.push({
      id: `analysis/${c.test}/${c.call}`,
      category: 'analysis',
      group: GROUP,
      expected: c.expected,
      got,
      agree: got === c.expected,
      source: `${c.file}:${c.line}`,
      detail: got,
    });
  }
  for (const n of HELPERS_NOT_COMPARED) {
    for (let i = 1; i <= n.rows; i++) uncompared.push({ id: `analysis/${n.test}/${i}`, category: 'analysis', reason: `${n.test}: ${n.why}` });
  }
}
