import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IssueList } from '../config/issues.ts';
import { parseText } from '../config/load.ts';
import { locateApplyText, parseFieldPath } from './apply-sources.ts';

test('parseFieldPath reads back what formatPath writes; anything else is not a path', () => {
  assert.deepEqual(parseFieldPath('spec.http[0].route[1].weight'), ['spec', 'http', 0, 'route', 1, 'weight']);
  assert.deepEqual(parseFieldPath('metadata.labels["app.kubernetes.io/name"]'), ['metadata', 'labels', 'app.kubernetes.io/name']);
  assert.deepEqual(parseFieldPath('spec'), ['spec']);
  for (const bad of ['', 'host reviews', 'spec..http', 'spec.http[x]', '[0]x']) assert.equal(parseFieldPath(bad), undefined, bad);
});

test('locateApplyText: <apply>[i] becomes the file of the i-th resource sent, with the line of the field it names', () => {
  const issues = new IssueList();
  const docs = parseText('kind: A\nmetadata: {name: a}\n---\n# b\nkind: VirtualService\nmetadata: {name: b}\nspec:\n  hosts: [b]\n  tcp: []\n', 'b.yaml', issues);
  const sources = docs.map((d) => d.source);
  assert.equal(
    locateApplyText('error IST0109: <apply>[1]: VirtualService default/b: spec.hosts[0]: host b is also claimed', sources),
    'error IST0109: b.yaml: VirtualService default/b: spec.hosts[0]: host b is also claimed (line 8)',
  );
  assert.equal(locateApplyText('<apply>[1]: VirtualService default/b: spec.tcp: not supported by meshlet: spec.tcp', sources), 'b.yaml: VirtualService default/b: spec.tcp: not supported by meshlet: spec.tcp (line 9)');
  // No field: the resource's first line.
  assert.equal(locateApplyText('<apply>[0]: A default/a: has no spec', sources), 'b.yaml: A default/a: has no spec (line 1)');
  // A field that is not there: its nearest parent that is (spec's map starts on line 8).
  assert.equal(locateApplyText('<apply>[1]: VirtualService default/b: spec.http[3].route: missing', sources), 'b.yaml: VirtualService default/b: spec.http[3].route: missing (line 8)');
  // Text without the marker, or an index past what was sent, is left alone.
  assert.equal(locateApplyText('cp/reviews.yaml: VirtualService default/reviews: spec.hosts[0]: x (line 9)', sources), 'cp/reviews.yaml: VirtualService default/reviews: spec.hosts[0]: x (line 9)');
  assert.equal(locateApplyText('<apply>[7]: VirtualService default/z: x', sources), '<apply>[7]: VirtualService default/z: x');
});
