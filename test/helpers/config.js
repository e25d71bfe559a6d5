/**
 * Test helpers for config: validate YAML text and look at the issues as strings.
 */
import assert from 'node:assert/strict';
import { analyze } from "../../src/config/analyze/index.js";
import { IssueList } from "../../src/config/issues.js";
import { parseText } from "../../src/config/load.js";
import { validateDocuments } from "../../src/config/validate/index.js";
/** Validates YAML text as if read from `file`; returns the resources and the issues printed as strings. */
export function validateYaml(text, file = 'test.yaml') {
    const issues = new IssueList();
    const docs = parseText(text, file, issues);
    const result = validateDocuments(docs, {}, issues);
    const errors = issues.ofLevel('error').map(String);
    const warnings = issues.ofLevel('warning').map(String);
    return { resources: result.resources, issues, errors, warnings };
}
/** Removes the common leading indentation of a template literal. */
export function dedent(s) {
    const lines = s.replace(/^\n/, '').split('\n');
    const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)?.[0].length ?? 0));
    return lines.map((l) => l.slice(indent)).join('\n');
}
/** Builds a YAML document for a kind with the given spec (as YAML text, indented by the caller's choice). */
export function doc(apiVersion, kind, name, spec, namespace = 'default') {
    const indented = spec
        .trim()
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n');
    return `apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec:\n${indented}\n`;
}
/**
 * Validates YAML that must be valid, runs the analyzers, and prints the findings of one code
 * as `level path: message` (with `withResource`, `level resource path: message`).
 */
export function analysisFindings(yaml, code, withResource = false) {
    const { resources, issues, errors } = validateYaml(yaml);
    assert.deepEqual(errors, [], 'fixture must validate');
    analyze(resources, issues);
    return issues.all
        .filter((i) => i.code === code)
        .map((i) => `${i.level} ${withResource ? `${i.resource} ` : ''}${i.path}: ${i.message}`);
}
//# sourceMappingURL=config.js.map