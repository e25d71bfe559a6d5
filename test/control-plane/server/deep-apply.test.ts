/**
 * An apply whose resource nests lists and maps thousands of levels deep (an EnvoyFilter `value`
 * is free-form) was answered 500 `internal error`: the store's write recursed past the stack. It
 * is refused when read, as any config file is, with a 400 that says why.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { IssueList } from '../../../src/config/issues.ts';
import { parseText } from '../../../src/config/load.ts';
import { MAX_NESTING } from '../../../src/config/nesting.ts';
import { api, startTestServer, type TestServer } from './helpers.ts';

const deepFilter = (levels: number) =>
  `{"apiVersion":"networking.istio.io/v1alpha3","kind":"EnvoyFilter","metadata":{"name":"deep","namespace":"default"},"spec":{"configPatches":[{"applyTo":"HTTP_FILTER","patch":{"operation":"MERGE","value":{"a":${'{"b":'.repeat(levels)}1${'}'.repeat(levels)}}}}]}}`;

describe('deeply nested config', { timeout: 60_000 }, () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  it('an apply nested 5,000 levels deep is 400, naming the limit; nothing is stored', async () => {
    const r = await api(s.url, 'POST', '/v1/resources', { token: s.admin, text: deepFilter(5000) });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.deepEqual(r.body.error.issues, [`request: lists and maps nested deeper than ${MAX_NESTING} levels: refused (line 1)`]);
    assert.equal(s.cp.status().configVersion, (await api(s.url, 'GET', '/v1/resources', { token: s.admin })).body.version);
    assert.equal((await api(s.url, 'GET', '/v1/resources?kind=EnvoyFilter', { token: s.admin })).body.resources.length, 0);
  });

  it('files: JSON, YAML and List items deeper than the limit are refused; at the limit they are read', () => {
    const yaml = (levels: number) => `apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: d, namespace: default}\nspec:\n  x: ${'['.repeat(levels)}${']'.repeat(levels)}\n`;
    // The document itself is one level, spec a second: `levels` more make levels + 2.
    for (const text of [deepFilter(MAX_NESTING), yaml(MAX_NESTING - 1), `{"apiVersion":"v1","kind":"List","items":[${deepFilter(MAX_NESTING)}]}`]) {
      const issues = new IssueList();
      assert.equal(parseText(text, 'f.yaml', issues).length, 0);
      assert.match(issues.all.map(String).join('\n'), /f\.yaml: lists and maps nested deeper than 512 levels: refused/);
    }
    const issues = new IssueList();
    assert.equal(parseText(yaml(MAX_NESTING - 2), 'f.yaml', issues).length, 1);
    assert.equal(issues.all.length, 0);
    // Deep enough to overflow the YAML parser's own recursion: said as the limit, not as a stack overflow.
    for (const levels of [5_000, 50_000]) {
      const deep = new IssueList();
      assert.equal(parseText(yaml(levels), 'f.yaml', deep).length, 0);
      assert.match(deep.all.map(String).join('\n'), /f\.yaml.*nested too deep to parse \(lists and maps may nest 512 levels\)/);
    }
  });
});
