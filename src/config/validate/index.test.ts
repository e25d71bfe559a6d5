import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateYaml } from '../../../test/helpers/config.ts';

describe('validateDocuments: envelope', () => {
  const cases: { name: string; yaml: string; error: RegExp }[] = [
    { name: 'unknown kind', yaml: 'apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: {name: a}\n', error: /unknown kind "VirtualServce".*did you mean "VirtualService"/ },
    { name: 'unknown apiVersion', yaml: 'apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: a}\n', error: /unknown apiVersion "networking.istio.io\/v2"; VirtualService is served as networking.istio.io\/v1/ },
    { name: 'wrong group', yaml: 'apiVersion: security.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\n', error: /unknown apiVersion/ },
    { name: 'no kind', yaml: 'apiVersion: v1\nmetadata: {name: a}\n', error: /resource has no kind/ },
    { name: 'no metadata', yaml: 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nspec: {}\n', error: /metadata: is required/ },
    { name: 'bad name', yaml: 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: Bad_Name}\n', error: /metadata.name: "Bad_Name" is not a valid DNS-1123 name/ },
    { name: 'unknown top-level field', yaml: 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\nspc: {}\n', error: /unknown field "spc" \(did you mean "spec"\?\)/ },
    { name: 'scalar document', yaml: 'just a string\n', error: /must be a resource object/ },
    { name: 'malformed YAML', yaml: 'apiVersion: v1\nkind: [unclosed\n', error: /test.yaml: invalid YAML: .*\(line \d\)/ },
    { name: 'duplicate key', yaml: 'apiVersion: v1\nkind: A\nkind: B\n', error: /invalid YAML: .*[Uu]nique|duplicate/ },
  ];
  for (const c of cases) {
    it(`rejects ${c.name}`, () => {
      const { errors, resources } = validateYaml(c.yaml);
      assert.equal(resources.length, 0);
      assert.ok(errors.some((e) => c.error.test(e)), `expected ${c.error} in:\n${errors.join('\n')}`);
    });
  }

  it('one YAML syntax mistake is one error (the first the parser saw, with how many followed), not one per token after it', () => {
    // An unquoted `[` inside a flow list, as in `when: [{key: request.auth.claims[groups], …}]`.
    const yaml = 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - when: [{key: request.auth.claims[groups], values: [admin]}, {key: source.namespace, values: [x]}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: 80}}\n';
    const { errors } = validateYaml(yaml);
    assert.equal(errors.length, 2, errors.join('\n'));
    assert.match(errors[0] ?? '', /^test\.yaml: invalid YAML: .* \(and \d+ more YAML syntax error\(s\) after it in this document, most likely caused by it\) \(line 6\)$/);
    assert.match(errors[1] ?? '', /^test\.yaml: invalid YAML: .*\(line 1[01]\)$/);
  });

  it('reports duplicate names with the first location', () => {
    const one = 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a, namespace: x}\nspec: {}\n';
    const { errors, resources } = validateYaml(`${one}---\n${one}`);
    assert.equal(resources.length, 1);
    assert.match(errors[0] ?? '', /duplicate PeerAuthentication x\/a: already defined in test.yaml line 1/);
  });

  it('expands Kubernetes Lists and fills the default namespace', () => {
    const { resources, errors } = validateYaml(
      'apiVersion: v1\nkind: List\nitems:\n- apiVersion: security.istio.io/v1\n  kind: PeerAuthentication\n  metadata: {name: a}\n- apiVersion: security.istio.io/v1beta1\n  kind: PeerAuthentication\n  metadata: {name: b, namespace: shop}\n',
    );
    assert.deepEqual(errors, []);
    assert.deepEqual(resources.map((r) => r.ref), ['PeerAuthentication default/a', 'PeerAuthentication shop/b']);
  });

  it('accepts known Istio kinds meshlet does not apply, with a warning', () => {
    const { warnings, errors, resources } = validateYaml('apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {}\n');
    assert.deepEqual(errors, []);
    assert.equal(resources.length, 0);
    assert.match(warnings[0] ?? '', /skipped 1 Gateway \(networking.istio.io\/v1\): default\/gw; meshlet runs inside workloads/);
  });

  it('accepts JSON documents', () => {
    const { resources, errors } = validateYaml('{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "j"}, "spec": {}}', 'pa.json');
    assert.deepEqual(errors, []);
    assert.equal(resources.length, 1);
  });
});

describe('names that are Object.prototype members are plain names', () => {
  it('kind: constructor / toString / __proto__ is an unknown kind, not a crash', () => {
    for (const kind of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const { issues } = validateYaml(`apiVersion: networking.istio.io/v1\nkind: ${kind}\nmetadata: {name: x}\n`);
      assert.ok(issues.all.some((i) => i.level === 'error' && i.message.includes(`unknown kind "${kind}"`)), `${kind}: ${issues.all.map(String).join('; ')}`);
    }
  });

  it('a VirtualService header match on constructor or toString validates (and is matched as a header: see test/outbound/hardening)', () => {
    const { errors } = validateYaml(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r]
  http:
  - match: [{headers: {constructor: {exact: x}, tostring: {prefix: y}}}]
    route: [{destination: {host: r}}]
`);
    assert.deepEqual(errors, []);
  });
});
