/**
 * Types of the conformance suite: cases translated from Istio's own test tables and testdata,
 * each with Istio's verdict, checked against meshlet's real validator by `validation.test.ts`.
 */

/** Istio's verdict on a case. */
export type Verdict = 'valid' | 'invalid' | 'warning';

/** One case: resources and what Istio says about them. */
export interface ValidationCase {
  /** The Go row's name (or a YAML document's `metadata.name`); unique in its table. */
  readonly name: string;
  /** Line of the row (or document) in Istio's file. */
  readonly line: number;
  /** Istio's verdict: `warning` is "valid, with a warning". */
  readonly expect: Verdict;
  /** The resources validated together (usually one). */
  readonly resources: readonly object[];
  /**
   * A row that names a kind meshlet does not apply (e.g. WorkloadGroup): counted under
   * "not applied by meshlet" instead of compared, until meshlet reads the kind.
   */
  readonly notApplied?: string;
}

/** One translated Go test table, or one Istio testdata file. */
export interface ValidationTable {
  /** Istio's file, relative to the repository root. */
  readonly source: string;
  /** The Go test function (for testdata files: the file name). */
  readonly test: string;
  /** Line of the function in `source`. */
  readonly line: number;
  /** How each row's input became a resource. */
  readonly wraps: string;
  readonly cases: readonly ValidationCase[];
  /** Rows that cannot be written as a resource at all, with the reason (reported, not compared). */
  readonly untranslatable?: readonly { readonly name: string; readonly line: number; readonly why: string }[];
}

/** A Go test table left out of the comparison as a whole, with its row count and the reason. */
export interface ExcludedTable {
  readonly source: string;
  readonly test: string;
  readonly line: number;
  readonly rows: number;
  /** `not-applied`: the kind is one meshlet skips; `mesh-config`: MeshConfig/ProxyConfig, not a resource; `other`: see `why`. */
  readonly reason: 'not-applied' | 'mesh-config' | 'other';
  readonly why: string;
}

/** The Istio commit the cases were taken from. */
export const ISTIO_COMMIT = '86c9f01fd73';

/** One row of Istio's analyzer test grid (`testGrid` in analyzers_test.go). */
export interface AnalysisGridRow {
  /** The row's name (not unique in Istio's grid). */
  readonly name: string;
  /** Line of the row in analyzers_test.go. */
  readonly line: number;
  /** The analyzer as written in the row: `pkg.Type` (or a call). */
  readonly analyzer: string;
  /** Input files, relative to pkg/config/analysis/analyzers (`testdata/….yaml`). */
  readonly inputFiles: readonly string[];
  readonly meshConfigFile?: string;
  readonly meshNetworksFile?: string;
  readonly skipAll?: boolean;
  /** Istio's expected messages: the message type, its code and level, and the resource (`Kind name` or `Kind ns/name`). */
  readonly expected: readonly { readonly message: string; readonly code: string; readonly level: string; readonly origin: string }[];
}

/** One of Istio's routing test tables, read from the Go source (rows as Istio's JSON). */
export interface RoutingTable {
  readonly source: string;
  readonly test: string;
  readonly line: number;
  readonly rows: readonly ({ readonly line: number } & Record<string, unknown>)[];
}
