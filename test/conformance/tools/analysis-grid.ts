/**
 * Regenerates the analysis category's inputs from Istio's sources:
 *
 * - every row of `testGrid` in pkg/config/analysis/analyzers/analyzers_test.go becomes an entry
 *   of `test/conformance/cases/analysis-grid.ts` (name, line, analyzer, input files, expected
 *   messages with their codes and levels from pkg/config/analysis/msg/messages.yaml);
 * - the testdata files of the rows whose analyzer is compared (analysis-scope.ts) are copied
 *   verbatim into `test/conformance/istio/analyzers/`, with a header naming source and commit;
 * - the resources Istio's analyzer test adds to every row (`AddDefaultResources`: the default
 *   ingress gateway Service and Pod, pkg/config/analysis/local/defaults.go) are written, rendered
 *   as Istio renders them, to `istio/analyzers/defaults.yaml`.
 *
 * Usage: node test/conformance/tools/analysis-grid.ts [path-to-istio-git-dir]
 * (default: /work/.mirror/istio+istio/repo). The commit read is ISTIO_COMMIT.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { scopeOf } from '../analysis-scope.ts';
import { ISTIO_COMMIT } from '../types.ts';
import { type GoExpr, GoParser, lineAt } from './go-literal.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const gitDir = process.argv[2] ?? '/work/.mirror/istio+istio/repo';
const FULL_COMMIT = execFileSync('git', ['-C', gitDir, 'rev-parse', ISTIO_COMMIT], { encoding: 'utf8' }).trim();
const TEST = 'pkg/config/analysis/analyzers/analyzers_test.go';
const TESTDATA = 'pkg/config/analysis/analyzers';
const MESSAGES = 'pkg/config/analysis/msg/messages.yaml';
const DEFAULTS = 'pkg/config/analysis/local/defaults.go';

function show(path: string): string {
  return execFileSync('git', ['-C', gitDir, 'show', `${FULL_COMMIT}:${path}`], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

type Composite = Extract<GoExpr, { k: 'composite' }>;

function str(e: GoExpr | undefined): string {
  if (e?.k !== 'str') throw new Error(`expected a string, got ${JSON.stringify(e)}`);
  return e.v;
}

function strings(e: GoExpr | undefined): string[] {
  if (e?.k !== 'composite') throw new Error(`expected []string, got ${JSON.stringify(e)}`);
  return e.elems.map((el) => str(el.value));
}

/** The analyzer of a row as written: `&pkg.Type{}` → `pkg.Type`, a call as `fn(arg)`. */
function analyzerName(e: GoExpr | undefined): string {
  if (e?.k === 'addr' && e.a.k === 'composite' && e.a.type.t === 'named') return e.a.type.name;
  if (e?.k === 'call') return `${e.fn}(${e.args.map((a) => (a.k === 'ident' ? a.name : '?')).join(', ')})`;
  throw new Error(`unknown analyzer expression ${JSON.stringify(e)}`);
}

interface Message {
  readonly name: string;
  readonly code: string;
  readonly level: string;
}

function readMessages(): Map<string, Message> {
  const doc = parse(show(MESSAGES)) as { messages: { name: string; code: string; level: string }[] };
  return new Map(doc.messages.map((m) => [m.name, { name: m.name, code: m.code, level: m.level.toLowerCase() }]));
}

interface GridRow {
  name: string;
  line: number;
  analyzer: string;
  inputFiles: string[];
  meshConfigFile?: string;
  meshNetworksFile?: string;
  skipAll?: boolean;
  expected: { message: string; code: string; level: string; origin: string }[];
}

function readGrid(messages: Map<string, Message>): GridRow[] {
  const src = show(TEST);
  const start = src.indexOf('var testGrid = ');
  if (start < 0) throw new Error('no testGrid');
  const litStart = start + 'var testGrid = '.length;
  const p = new GoParser(src.slice(litStart));
  const type = p.parseType();
  const lit = p.parseComposite(type) as Composite;
  return lit.elems.map((el) => {
    const row = el.value as Composite;
    const f = new Map(row.elems.map((e) => [(e.key as { name: string }).name, e.value]));
    const expected = ((f.get('expected') as Composite | undefined)?.elems ?? []).map((m) => {
      const [type, origin] = (m.value as Composite).elems;
      if (type?.value.k !== 'ident') throw new Error(`expected msg.<Type> in an expected message, got ${JSON.stringify(type)}`);
      const name = type.value.name.replace(/^msg\./, '');
      const msg = messages.get(name);
      if (msg === undefined) throw new Error(`unknown message ${name}`);
      return { message: name, code: msg.code, level: msg.level, origin: str(origin?.value) };
    });
    const out: GridRow = {
      name: str(f.get('name')),
      line: lineAt(src, litStart + row.pos),
      analyzer: analyzerName(f.get('analyzer')),
      inputFiles: strings(f.get('inputFiles')),
      expected,
    };
    if (f.has('meshConfigFile')) out.meshConfigFile = str(f.get('meshConfigFile'));
    if (f.has('meshNetworksFile')) out.meshNetworksFile = str(f.get('meshNetworksFile'));
    if (f.has('skipAll')) out.skipAll = (f.get('skipAll') as { name: string }).name === 'true';
    return out;
  });
}

function header(source: string): string {
  return `# Copied verbatim from istio/istio ${source} at commit ${FULL_COMMIT}\n# (Copyright Istio Authors, Apache License 2.0). Only these header lines were added.\n`;
}

/** The default resources Istio's analyzer test adds (`AddDefaultResources`), rendered for istio-system/istio-ingressgateway. */
function defaults(): string {
  const go = show(DEFAULTS);
  const m = /const defaultIstioIngressGateway = `([^`]*)`/.exec(go);
  if (m === null) throw new Error('no defaultIstioIngressGateway');
  const rendered = (m[1] as string).replaceAll('{{.namespace}}', 'istio-system').replaceAll('{{.ingressService}}', 'istio-ingressgateway');
  if (rendered.includes('{{')) throw new Error('unrendered template field in defaults.go');
  return (
    `# Rendered from istio/istio ${DEFAULTS} (the defaultIstioIngressGateway template) at commit ${FULL_COMMIT}\n` +
    '# (Copyright Istio Authors, Apache License 2.0) with namespace istio-system and ingressService istio-ingressgateway,\n' +
    "# as Istio's analyzer test adds them to every row (AddDefaultResources). Only these header lines were added.\n" +
    rendered.replace(/^\n/, '')
  );
}

function main(): void {
  const messages = readMessages();
  const grid = readGrid(messages);
  const outDir = join(root, 'istio', 'analyzers');
  mkdirSync(join(outDir, 'testdata'), { recursive: true });
  const copied = new Set<string>();
  for (const row of grid) {
    if (!scopeOf(row.analyzer).compared) continue;
    for (const f of row.inputFiles) {
      if (copied.has(f)) continue;
      copied.add(f);
      writeFileSync(join(outDir, f), header(`${TESTDATA}/${f}`) + show(`${TESTDATA}/${f}`));
    }
  }
  writeFileSync(join(outDir, 'defaults.yaml'), defaults());
  const rows = grid.map((r) => `  ${JSON.stringify(r)},`);
  writeFileSync(
    join(root, 'cases', 'analysis-grid.ts'),
    [
      '/**',
      ` * Istio's analyzer test grid: every row of testGrid in ${TEST} (istio/istio commit ${FULL_COMMIT.slice(0, 11)}),`,
      ` * with each expected message's code and level from ${MESSAGES}.`,
      ' * Generated by test/conformance/tools/analysis-grid.ts from the Go source: regenerate, do not edit.',
      ' * Copyright Istio Authors, Apache License 2.0.',
      ' */',
      "import type { AnalysisGridRow } from '../types.ts';",
      '',
      `export const GRID_SOURCE = ${JSON.stringify(TEST)};`,
      '',
      'export const grid: readonly AnalysisGridRow[] = [',
      ...rows,
      '];',
      '',
    ].join('\n'),
  );
  console.log(`${grid.length} grid rows, ${copied.size} testdata files copied from ${FULL_COMMIT}`);
}

main();
