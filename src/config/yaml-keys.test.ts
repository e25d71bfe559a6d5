import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { IssueList } from './issues.ts';
import { parseText } from './load.ts';
import { COLLECTION_KEY_MESSAGE, duplicateKeys } from './yaml-keys.ts';

/** Errors parseText reports for `text`, as `line: message`. */
function errorsOf(text: string): string[] {
  const issues = new IssueList();
  parseText(text, 'f.yaml', issues);
  return issues.ofLevel('error').map((i) => `${i.line}: ${i.message}`);
}

const DUP = 'invalid YAML: Map keys must be unique';

test('duplicate keys: reported with the line of the later key, as the yaml package reports them; equal as it decides', () => {
  const cases: { name: string; yaml: string; errors: string[] }[] = [
    { name: 'top level', yaml: 'kind: A\napiVersion: v1\nkind: B\n', errors: [`3: ${DUP}`] },
    { name: 'three times', yaml: 'a: 1\na: 2\nb: 0\na: 3\n', errors: [`2: ${DUP}`, `4: ${DUP}`] },
    { name: 'nested block map', yaml: 'kind: A\nspec:\n  x: 1\n  y: 2\n  x: 3\n', errors: [`5: ${DUP}`] },
    { name: 'flow map', yaml: 'kind: A\nspec: {x: 1, y: 2, x: 3}\n', errors: [`2: ${DUP}`] },
    { name: 'maps in a list', yaml: 'items:\n  - a: 1\n    a: 2\n  - a: 1\n    b: 2\n', errors: [`3: ${DUP}`] },
    { name: 'nested before a later outer duplicate: document order', yaml: 'a:\n  x: 1\n  x: 2\nb: 1\na: 3\n', errors: [`3: ${DUP}`, `5: ${DUP}`] },
    { name: 'quoted and plain spellings of one string', yaml: 'a: 1\n"a": 2\n', errors: [`2: ${DUP}`] },
    { name: 'null keys (~ and empty)', yaml: '~: 1\n? \n: 2\n', errors: [`2: ${DUP}`] },
    { name: 'second document only', yaml: 'a: 1\n---\nb: 1\nb: 2\n', errors: [`4: ${DUP}`] },
    // Not duplicates: keys of different maps, a number and a string, different types.
    { name: 'same key in sibling maps', yaml: 'a: {x: 1}\nb: {x: 1}\n', errors: [] },
    { name: 'number and string', yaml: '1: a\n"1": b\n', errors: [] },
    { name: 'boolean and string', yaml: 'true: a\n"true": b\n', errors: [] },
    { name: 'the same key in two documents', yaml: 'a: 1\n---\na: 1\n', errors: [] },
    { name: 'NaN keys (never equal)', yaml: '.nan: 1\n.nan: 2\n', errors: [] },
  ];
  for (const c of cases) {
    assert.deepEqual(errorsOf(c.yaml), c.errors, c.name);
    // The same verdict as the yaml package's own (quadratic) check.
    const theirs = parseAllDocuments(c.yaml, { uniqueKeys: true }).flatMap((d) => (Array.isArray(d) ? [] : d.errors.filter((e) => e.code === 'DUPLICATE_KEY')));
    assert.equal(theirs.length, c.errors.length, `${c.name}: the yaml package finds ${theirs.length}`);
  }
  // Collection keys are never equal (the yaml package compares them by identity).
  const docs = parseAllDocuments('? [a]\n: 1\n? [a]\n: 2\n', { uniqueKeys: false });
  const doc = Array.isArray(docs) ? docs[0] : docs;
  assert.ok(doc !== undefined);
  assert.deepEqual(duplicateKeys(doc), []);
});

test('duplicate keys: a document with one is refused as a whole, the others in the file are kept', () => {
  const issues = new IssueList();
  const docs = parseText('kind: A\n---\nkind: B\nkind: C\n---\nkind: D\n', 'f.yaml', issues);
  assert.deepEqual(docs.map((d) => (d.value as { kind: string }).kind), ['A', 'D']);
  assert.equal(issues.ofLevel('error').length, 1);
});

/** A legal ConfigMap-like resource whose `data` holds `n` distinct keys in maps of `perMap` keys (one map when `perMap` is n). */
function bigMap(n: number, perMap = n): string {
  const lines = ['apiVersion: v1', 'kind: ConfigMap', 'metadata: {name: big}', 'data:'];
  for (let i = 0; i < n; i++) {
    if (perMap < n && i % perMap === 0) lines.push(`  group-${i / perMap}:`);
    lines.push(`${perMap < n ? '    ' : '  '}key-${i}: value-${i}`);
  }
  return `${lines.join('\n')}\n`;
}

test('duplicate keys: a 40,000-key map is checked with one look at each key (the yaml package compares each key with every earlier one: 800 million comparisons)', () => {
  const docs = parseAllDocuments(bigMap(40_000), { uniqueKeys: false });
  const doc = Array.isArray(docs) ? docs[0] : docs;
  assert.ok(doc !== undefined);
  let looks = 0;
  assert.deepEqual(duplicateKeys(doc, () => looks++), []);
  // 4 top-level keys, the metadata map's one key is skipped (a map of one cannot repeat), 40,000 data keys.
  assert.equal(looks, 40_004);
});

test('duplicate keys: parseText of one 20,000-key map costs about what the same keys in 20 maps of 1,000 cost (compared in one run; a generous bound)', () => {
  // Work here is CPU time, so it is compared as a ratio inside one run, never against a fixed
  // limit: the same text size, nodes and heap, only the size of the maps differs. Linear work
  // gives a ratio near 1; the quadratic check this replaces made it about 5 (200 million key
  // comparisons against 10 million). The best of three interleaved runs filters out pauses.
  const one = bigMap(20_000);
  const many = bigMap(20_000, 1000);
  const cpuMs = (): number => {
    const u = process.threadCpuUsage();
    return (u.user + u.system) / 1000;
  };
  const best = { one: Number.POSITIVE_INFINITY, many: Number.POSITIVE_INFINITY };
  for (let round = 0; round < 3; round++) {
    for (const which of ['one', 'many'] as const) {
      const issues = new IssueList();
      const t0 = cpuMs();
      const docs = parseText(which === 'one' ? one : many, 'big.yaml', issues);
      best[which] = Math.min(best[which], cpuMs() - t0);
      assert.equal(docs.length, 1);
      assert.equal(issues.all.length, 0, issues.all.join('\n'));
    }
  }
  const ratio = best.one / best.many;
  assert.ok(ratio < 2, `one map of 20,000 keys took ${ratio.toFixed(2)}× the CPU time of 20 maps of 1,000 (${best.one.toFixed(0)} vs ${best.many.toFixed(0)} ms)`);
});

test('a map or list as a map key (an unrendered {{ .Name }} template) is an error with its line, not a process warning', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(w.message);
  };
  process.on('warning', onWarning);
  try {
    const KEY = `invalid YAML: ${COLLECTION_KEY_MESSAGE}`;
    const cases: { name: string; yaml: string; errors: string[] }[] = [
      { name: 'a template as a value', yaml: 'kind: VirtualService\nmetadata:\n  name: {{ .Name }}\n', errors: [`3: ${KEY}`] },
      { name: 'a template as a key', yaml: 'kind: Service\nspec:\n  selector:\n    {{ .Label }}: x\n', errors: [`4: ${KEY}`] },
      { name: 'an explicit list key', yaml: 'kind: A\n? [a, b]\n: 1\n', errors: [`2: ${KEY}`] },
      { name: 'in a later document only', yaml: 'kind: A\n---\nkind: B\nspec: {{ x }}\n', errors: [`4: ${KEY}`] },
      { name: 'scalar keys of every type are fine', yaml: 'kind: A\n1: a\ntrue: b\n~: c\n', errors: [] },
      { name: 'a map as a value is fine', yaml: 'kind: A\nspec: {a: {b: 1}}\n', errors: [] },
    ];
    for (const c of cases) assert.deepEqual(errorsOf(c.yaml), c.errors, c.name);
  } finally {
    await new Promise((resolve) => setImmediate(resolve));
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings, []);
});

test('merge keys (<<: *anchor) are merged as kubectl reads them; the map\'s own keys win, before or after the merge', () => {
  const issues = new IssueList();
  const docs = parseText(
    'kind: DestinationRule\nspec:\n  subsets:\n  - name: v1\n    labels: &base {app: reviews, version: v1}\n  - name: v2\n    labels:\n      <<: *base\n      version: v2\n  - name: v3\n    labels:\n      version: v3\n      <<: [*base, {tier: gold}]\n',
    'f.yaml',
    issues,
  );
  assert.deepEqual(issues.all, []);
  const first = docs[0];
  assert.ok(first !== undefined);
  const subsets = (first.value as { spec: { subsets: { labels: Record<string, string> }[] } }).spec.subsets;
  assert.deepEqual(
    subsets.map((s) => s.labels),
    [
      { app: 'reviews', version: 'v1' },
      { app: 'reviews', version: 'v2' },
      { version: 'v3', app: 'reviews', tier: 'gold' },
    ],
  );
  // A merge of something that is not a map is an error, as in kubectl.
  assert.match(errorsOf('kind: A\nspec:\n  <<: 5\n').join('\n'), /invalid YAML: Merge sources must be maps/);
});
