/**
 * The validation category: Istio's validation test tables (translated into `cases/`), its CRD
 * testdata (copied into `istio/crds/`) and the local rate limit EnvoyFilters of its rate-limit
 * tests and samples (copied into `test/fixtures/istio/ratelimit/`), each run through meshlet's
 * real validator and compared with Istio's verdict.
 *
 * - invalid: meshlet must report an error;
 * - valid: meshlet must report no error (its own advice, e.g. "not supported by meshlet", may be
 *   printed as warnings);
 * - valid with a warning: meshlet must report no error and a warning of its own (validation
 *   warnings other than the "not supported by meshlet" notices, or the analyzer findings that are
 *   validation warnings in Istio: IST0130 unreachable rule, IST0131 ineffective match).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyze } from '../../src/config/analyze/index.ts';
import { IssueList } from '../../src/config/issues.ts';
import { fromObjects, parseText, type RawDocument } from '../../src/config/load.ts';
import { KIND_VERSIONS } from '../../src/config/resource.ts';
import { validateDocuments } from '../../src/config/validate/index.ts';
import { tables } from './cases/index.ts';
import type { CaseResult, CategoryRun, UncomparedCase } from './suite.ts';
import type { Verdict } from './types.ts';

const here = dirname(fileURLToPath(import.meta.url));
const CRD_DIR = join(here, 'istio', 'crds');
const CRD_SOURCE = 'pkg/config/validation/testdata/crds';
const RATE_LIMIT_DIR = join(here, '..', 'fixtures', 'istio', 'ratelimit');

/** Analyzer codes whose findings Istio reports as validation warnings. */
const WARNING_ANALYZERS = new Set(['IST0130', 'IST0131']);
/** meshlet's "not supported by meshlet" / "not applied" notices: meshlet's own, not Istio's warnings. */
const NOTICE_CODES = new Set(['MESHLET0002']);

/** meshlet's verdict on documents, with its messages. */
export function verdictOf(docs: readonly RawDocument[], parseIssues?: IssueList): { verdict: Verdict; detail: string; skipped: boolean } {
  const issues = parseIssues ?? new IssueList();
  const { resources } = validateDocuments(docs, {}, issues);
  const validationIssues = [...issues.all];
  analyze(resources, issues);
  const errors = validationIssues.filter((i) => i.level === 'error');
  const warnings = [
    ...validationIssues.filter((i) => i.level === 'warning' && !NOTICE_CODES.has(i.code)),
    ...issues.all.slice(validationIssues.length).filter((i) => WARNING_ANALYZERS.has(i.code)),
  ];
  // Skipped with a notice: no error, nothing kept, and something said (a warning or info naming the kind).
  const skipped = resources.length === 0 && errors.length === 0 && validationIssues.some((i) => i.level !== 'error');
  const shown = (errors.length > 0 ? errors : warnings.length > 0 ? warnings : validationIssues).map((i) => `${i.level}: ${i.path === '' ? '' : `${i.path}: `}${i.message}`);
  return { verdict: errors.length > 0 ? 'invalid' : warnings.length > 0 ? 'warning' : 'valid', detail: shown.join('; '), skipped };
}

function agrees(expected: Verdict, got: Verdict): boolean {
  if (expected === 'valid') return got !== 'invalid';
  return expected === got;
}

/** The kind of a case's first resource (its group in the printed table). */
function kindOf(resources: readonly object[]): string {
  const k = (resources[0] as { kind?: unknown } | undefined)?.kind;
  return typeof k === 'string' ? k : '?';
}

function isApplied(kind: string): boolean {
  return kind in KIND_VERSIONS;
}

const LOCAL_RATE_LIMIT_TYPE = 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

/**
 * An EnvoyFilter of Istio's local rate limit task: it has patches, every one an HTTP filter,
 * route or virtual host patch, and the local rate limit filter appears in it. Decided from the
 * document, independently of meshlet's own classifier: these are compared; other EnvoyFilters are
 * counted as not applied (meshlet must skip them with a notice, never an error).
 */
export function isLocalRateLimitFilter(doc: unknown): boolean {
  const patches = (doc as { spec?: { configPatches?: unknown } } | undefined)?.spec?.configPatches;
  if (!Array.isArray(patches) || patches.length === 0) return false;
  const shapes = patches.every((p) => ['HTTP_FILTER', 'HTTP_ROUTE', 'VIRTUAL_HOST'].includes((p as { applyTo?: unknown } | null)?.applyTo as string));
  return shapes && JSON.stringify(patches).includes(LOCAL_RATE_LIMIT_TYPE);
}

/** Whether a document of `kind` is compared (a kind meshlet applies; for EnvoyFilter, a local rate limit one). */
function isCompared(kind: string, doc: unknown): boolean {
  return isApplied(kind) && (kind !== 'EnvoyFilter' || isLocalRateLimitFilter(doc));
}

function notAppliedReason(kind: string): string {
  return kind === 'EnvoyFilter' ? 'EnvoyFilter other than the local rate limit is not applied by meshlet' : `${kind} is not applied by meshlet`;
}

/** Runs the translated Go tables. */
function runTables(results: CaseResult[], uncompared: UncomparedCase[]): void {
  for (const t of tables) {
    for (const c of t.cases) {
      const id = `validation/${t.test}/${c.name}`;
      const docs = fromObjects(c.resources, `${t.test}:${c.line}`);
      if (c.notApplied !== undefined && !isApplied(c.notApplied)) {
        const { skipped } = verdictOf(docs);
        uncompared.push({ id, category: 'validation', reason: `${c.notApplied} is not applied by meshlet`, skippedWithNotice: skipped });
        continue;
      }
      const { verdict, detail } = verdictOf(docs);
      results.push({
        id,
        category: 'validation',
        group: kindOf(c.resources),
        expected: c.expect,
        got: verdict,
        agree: agrees(c.expect, verdict),
        source: `${t.source}:${c.line}`,
        detail,
      });
    }
    for (const u of t.untranslatable ?? []) {
      uncompared.push({ id: `validation/${t.test}/${u.name}`, category: 'validation', reason: `not expressible as a resource: ${u.why}` });
    }
  }
}

/** One YAML document of a testdata file, parsed on its own (as the loader would read it as a file). */
interface TestdataDoc {
  readonly text: string;
  readonly line: number;
}

function splitDocuments(text: string): TestdataDoc[] {
  const lines = text.split('\n');
  const out: TestdataDoc[] = [];
  let start = 0;
  for (let i = 0; i <= lines.length; i++) {
    if (i === lines.length || /^---\s*$/.test(lines[i] as string)) {
      const chunk = lines.slice(start, i).join('\n');
      if (/^\S/m.test(chunk.replace(/^#.*$/gm, ''))) out.push({ text: chunk, line: start + 1 });
      start = i + 1;
    }
  }
  return out;
}

/** Runs Istio's CRD testdata files. */
function runCrds(results: CaseResult[], uncompared: UncomparedCase[]): void {
  for (const file of readdirSync(CRD_DIR).filter((f) => f.endsWith('.yaml')).sort()) {
    const text = readFileSync(join(CRD_DIR, file), 'utf8');
    for (const d of splitDocuments(text)) {
      const issues = new IssueList();
      const docs = parseText(d.text, `${file}:${d.line}`, issues);
      // Istio's expectation is the document's `_err` (read from the text: a document may not parse).
      const expected: Verdict = /^_err:/m.test(d.text) ? 'invalid' : 'valid';
      for (const doc of docs) delete (doc.value as Record<string, unknown>)._err;
      const name = /^ {2}name: *["']?([^"'\s]+)/m.exec(d.text)?.[1] ?? `line ${d.line}`;
      const kind = /^kind: *(\S+)/m.exec(d.text)?.[1] ?? '?';
      const id = `validation/crds/${file}/${name}`;
      const { verdict, detail, skipped } = verdictOf(docs, issues);
      if (!isCompared(kind, docs[0]?.value)) {
        uncompared.push({ id, category: 'validation', reason: notAppliedReason(kind), skippedWithNotice: skipped });
        continue;
      }
      results.push({
        id,
        category: 'validation',
        group: kind,
        expected,
        got: verdict,
        agree: agrees(expected, verdict),
        source: `${CRD_SOURCE}/${file} (copy line ${d.line})`,
        detail,
      });
    }
  }
}

/**
 * Runs the local rate limit EnvoyFilters of Istio's rate-limit integration tests and samples.
 * Istio applies each of them (its tests then see the 429s), so its verdict is valid. (Istio's
 * webhook adds one warning to every EnvoyFilter — "EnvoyFilter exposes internal implementation
 * details that may change at any time" — which, as Istio's own TestValidateEnvoyFilter does by
 * calling validateEnvoyFilter directly, is left out of the verdict.)
 */
function runRateLimitTestdata(results: CaseResult[], uncompared: UncomparedCase[]): void {
  for (const file of readdirSync(RATE_LIMIT_DIR).filter((f) => f.endsWith('.yaml')).sort()) {
    const text = readFileSync(join(RATE_LIMIT_DIR, file), 'utf8');
    const origin = /^# Copied unchanged from Istio \([^)]*\): (\S+)/m.exec(text)?.[1] ?? file;
    for (const d of splitDocuments(text)) {
      const issues = new IssueList();
      const docs = parseText(d.text, `${file}:${d.line}`, issues);
      const name = /^ {2}name: *["']?([^"'\s]+)/m.exec(d.text)?.[1] ?? `line ${d.line}`;
      const id = `validation/ratelimit/${file}/${name}`;
      const { verdict, detail, skipped } = verdictOf(docs, issues);
      if (!isCompared('EnvoyFilter', docs[0]?.value)) {
        uncompared.push({ id, category: 'validation', reason: notAppliedReason('EnvoyFilter'), skippedWithNotice: skipped });
        continue;
      }
      results.push({ id, category: 'validation', group: 'EnvoyFilter', expected: 'valid', got: verdict, agree: agrees('valid', verdict), source: `${origin} (copy line ${d.line})`, detail });
    }
  }
}

/** Runs the whole validation category. */
export function runValidation(): CategoryRun {
  const results: CaseResult[] = [];
  const uncompared: UncomparedCase[] = [];
  runTables(results, uncompared);
  runCrds(results, uncompared);
  runRateLimitTestdata(results, uncompared);
  return { category: 'validation', results, uncompared };
}
