import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IssueList } from './issues.ts';
import { parseText } from './load.ts';

/** Parses `text` twice: as JSON (the fast path) and as YAML (forced by a comment line first, so YAML lines are one more). */
function both(text: string) {
  const jsonIssues = new IssueList();
  const yamlIssues = new IssueList();
  const json = parseText(text, 'f.json', jsonIssues);
  const yaml = parseText(`#\n${text}`, 'f.json', yamlIssues);
  return { json, yaml, jsonIssues: jsonIssues.all.map((i) => [i.level, i.line, i.message]), yamlIssues: yamlIssues.all.map((i) => [i.level, (i.line as number) - 1, i.message]) };
}

const VS = (name: string) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name, labels: { 'app.kubernetes.io/name': 'x' } },
  spec: { hosts: [`${name}.example`], http: [{ match: [{ uri: { prefix: '/a' } }], route: [{ destination: { host: 'x\u00e9"\\', subset: 'v1' }, weight: 100 }] }] },
});

test('JSON files give the documents, lines and field locations the YAML parser gives', () => {
  const cases: [string, string][] = [
    ['one resource, indented', JSON.stringify(VS('a'), null, 2)],
    ['one resource, one line', JSON.stringify(VS('a'))],
    ['a List, indented', JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [VS('a'), VS('b'), VS('c')] }, null, 2)],
    ['a List on one line', JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [VS('a'), VS('b')] })],
    ['a typed List, items after other members, odd spacing', `{ "kind" : "VirtualServiceList" ,\n  "metadata": {},\n\t"items" : [\n ${JSON.stringify(VS('a'), null, 1)} ,\n${JSON.stringify(VS('b'))}\n ] }`],
    ['an empty List', '{"kind":"List","items":[]}'],
  ];
  const paths: (string | number)[][] = [[], ['metadata'], ['metadata', 'name'], ['metadata', 'labels', 'app.kubernetes.io/name'], ['spec', 'http', 0, 'route', 0, 'destination', 'host'], ['spec', 'http', 0, 'route', 0, 'weight'], ['spec', 'http', 3], ['spec', 'missing', 'deeper'], ['spec', 'hosts', 0]];
  for (const [name, text] of cases) {
    const r = both(text);
    assert.deepEqual(r.json.map((d) => d.value), r.yaml.map((d) => d.value), `${name}: values`);
    assert.deepEqual(r.jsonIssues, r.yamlIssues, `${name}: issues`);
    assert.deepEqual(r.json.map((d) => d.source.line), r.yaml.map((d) => (d.source.line as number) - 1), `${name}: lines`);
    for (const [i, d] of r.json.entries()) {
      for (const p of paths) assert.equal(d.source.locate?.(p), (r.yaml[i]?.source.locate?.(p) as number) - 1, `${name}: doc ${i} at ${JSON.stringify(p)}`);
    }
  }
});

test('JSON files: a repeated key (also spelled with escapes) is the YAML error with its line, and drops the file; invalid JSON is left to the YAML parser', () => {
  const cases: [string, string][] = [
    ['repeated at the top', '{"kind": "A",\n "kind": "B"}'],
    ['repeated deep in a List item', `{"kind":"List","items":[\n${JSON.stringify(VS('a'))},\n{"kind":"X","metadata":{"name":"b",\n"name":"c"}}]}`],
    ['the same key spelled with an escape', '{"a":1,\n"\\u0061":2}'],
    ['not JSON (YAML flow syntax)', '{kind: A, spec: {x: 1}}'],
    ['broken JSON', '{"kind": "A", "spec": {'],
  ];
  for (const [name, text] of cases) {
    const r = both(text);
    assert.deepEqual(r.json.map((d) => d.value), r.yaml.map((d) => d.value), `${name}: values`);
    assert.deepEqual(r.jsonIssues, r.yamlIssues, `${name}: issues`);
  }
  assert.deepEqual(both('{"a":1,\n"a":2}').jsonIssues, [['error', 2, 'invalid YAML: Map keys must be unique']]);
});
