import { IssueList } from '../../src/config/issues.ts';
/** Validates YAML text as if read from `file`; returns the resources and the issues printed as strings. */
export declare function validateYaml(text: string, file?: string): {
    resources: import("../../src/index.ts").AnyResource[];
    issues: IssueList;
    errors: string[];
    warnings: string[];
};
/** Removes the common leading indentation of a template literal. */
export declare function dedent(s: string): string;
/** Builds a YAML document for a kind with the given spec (as YAML text, indented by the caller's choice). */
export declare function doc(apiVersion: string, kind: string, name: string, spec: string, namespace?: string): string;
/**
 * Validates YAML that must be valid, runs the analyzers, and prints the findings of one code
 * as `level path: message` (with `withResource`, `level resource path: message`).
 */
export declare function analysisFindings(yaml: string, code: string, withResource?: boolean): string[];
//# sourceMappingURL=config.d.ts.map