/**
 * YAML or JSON text given where `config` takes paths — what a test that inlines its Istio YAML
 * writes first — is refused saying what it is and what to do, named by its first line, not as
 * "<the whole text>: no such file or directory".
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMesh } from '../../src/index.ts';

const YAML = 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews}\nspec: {hosts: [reviews], ports: [{number: 80, name: http, protocol: HTTP}], resolution: STATIC}\n';

for (const [what, config] of [
  ['a YAML string', YAML],
  ['YAML strings in an array', [YAML, `---\n${YAML}`]],
  ['a JSON string', JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'a' } })],
] as const) {
  test(`createMesh({ config: ${what} }) says it is text, not a path`, async () => {
    await assert.rejects(createMesh({ service: 'productpage', config }), (e: Error) => {
      assert.match(e.message, /is YAML or JSON text, not a path: `config` takes file or directory paths, or resource objects/);
      assert.doesNotMatch(e.message, /no such file or directory|spec: \{hosts/);
      return true;
    });
  });
}

test('a path that does not exist is still "no such file or directory"', async () => {
  await assert.rejects(createMesh({ service: 'productpage', config: './no-such-mesh-dir' }), /no-such-mesh-dir: no such file or directory/);
});

for (const [what, path, shown] of [
  ['a path read from a file or variable, with its line break', '/no/such/meshlet/config\n', /\/no\/such\/meshlet\/config\n: no such file or directory \(the path ends with white space or a line break\)/],
  ['a path starting with [', '[abc].yaml', /\[abc\]\.yaml: no such file or directory$/m],
  ['a Windows-looking path with a colon', 'C:meshlet', /C:meshlet: no such file or directory/],
] as const) {
  test(`${what} that does not exist is a missing path, not text`, async () => {
    await assert.rejects(createMesh({ service: 'productpage', config: path }), (e: Error) => {
      assert.match(e.message, shown);
      assert.doesNotMatch(e.message, /is YAML or JSON text/);
      return true;
    });
  });
}

test('a short first line is named without an ellipsis', async () => {
  await assert.rejects(createMesh({ service: 'productpage', config: 'kind: Service\nmetadata: {name: a}\n' }), (e: Error) => {
    assert.match(e.message, /kind: Service: is YAML or JSON text/);
    assert.doesNotMatch(e.message, /…/);
    return true;
  });
});
