import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../../test/helpers/config.ts';

const pa = (spec: string, namespace = 'foo') => doc('security.istio.io/v1', 'PeerAuthentication', 'x', spec, namespace);

describe('PeerAuthentication validation', () => {
  const valid: { name: string; yaml: string }[] = [
    { name: 'empty spec (namespace-wide, inherit)', yaml: pa('{}') },
    { name: 'mesh-wide STRICT in the root namespace', yaml: pa('mtls:\n  mode: STRICT', 'istio-system') },
    { name: 'namespace-wide PERMISSIVE', yaml: pa('mtls:\n  mode: PERMISSIVE') },
    {
      name: 'workload STRICT with a port-level DISABLE (Istio task page)',
      yaml: pa('selector:\n  matchLabels:\n    app: finance\nmtls:\n  mode: STRICT\nportLevelMtls:\n  8080:\n    mode: DISABLE'),
    },
    { name: 'UNSET port inherits', yaml: pa('selector:\n  matchLabels:\n    app: a\nportLevelMtls:\n  "1":\n    mode: UNSET\n  "65535": {}') },
    { name: 'v1beta1', yaml: doc('security.istio.io/v1beta1', 'PeerAuthentication', 'x', 'mtls:\n  mode: DISABLE') },
  ];
  for (const c of valid) {
    it(`accepts ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(c.yaml);
      assert.deepEqual(errors, []);
      assert.deepEqual(warnings, []);
      assert.equal(resources.length, 1);
    });
  }

  it('keeps port keys as strings in the typed spec', () => {
    const { resources } = validateYaml(pa('selector:\n  matchLabels:\n    app: a\nportLevelMtls:\n  8080:\n    mode: DISABLE'));
    assert.deepEqual(resources[0]?.spec, { selector: { matchLabels: { app: 'a' } }, portLevelMtls: { '8080': { mode: 'DISABLE' } } });
  });

  const invalid: { name: string; yaml: string; error: RegExp }[] = [
    { name: 'unknown mode', yaml: pa('mtls:\n  mode: MUTUAL'), error: /spec\.mtls\.mode: must be one of UNSET, DISABLE, PERMISSIVE, STRICT; got a string \("MUTUAL"\)/ },
    { name: 'lower-case mode', yaml: pa('mtls:\n  mode: strict'), error: /spec\.mtls\.mode: must be one of/ },
    { name: 'unknown mtls field', yaml: pa('mtls:\n  mode: STRICT\n  strict: true'), error: /spec\.mtls\.strict: unknown field "strict"/ },
    { name: 'unknown spec field', yaml: pa('mtlsMode: STRICT'), error: /spec\.mtlsMode: unknown field "mtlsMode"/ },
    { name: 'selector with labels (networking style)', yaml: pa('selector:\n  labels:\n    app: a'), error: /spec\.selector\.labels: unknown field "labels"/ },
    { name: 'bad label value', yaml: pa('selector:\n  matchLabels:\n    app: "a*"'), error: /spec\.selector\.matchLabels\.app: invalid label value "a\*"/ },
    {
      name: 'portLevelMtls without a selector',
      yaml: pa('mtls:\n  mode: STRICT\nportLevelMtls:\n  8080:\n    mode: DISABLE'),
      error: /spec\.portLevelMtls: portLevelMtls is only allowed with a selector .*cannot have port level mTLS/,
    },
    {
      name: 'portLevelMtls with a selector without labels',
      yaml: pa('selector: {}\nportLevelMtls:\n  8080:\n    mode: DISABLE'),
      error: /spec\.portLevelMtls: portLevelMtls is only allowed with a selector/,
    },
    { name: 'empty portLevelMtls', yaml: pa('selector:\n  matchLabels:\n    app: a\nportLevelMtls: {}'), error: /spec\.portLevelMtls: portLevelMtls, if set, must have at least one port/ },
    { name: 'port 0', yaml: pa('selector:\n  matchLabels:\n    app: a\nportLevelMtls:\n  0:\n    mode: DISABLE'), error: /spec\.portLevelMtls\["0"\]: port 0 must be in range 1\.\.65535/ },
    { name: 'port too large', yaml: pa('selector:\n  matchLabels:\n    app: a\nportLevelMtls:\n  65536:\n    mode: DISABLE'), error: /port 65536 must be in range 1\.\.65535/ },
    { name: 'port name instead of number', yaml: pa('selector:\n  matchLabels:\n    app: a\nportLevelMtls:\n  http:\n    mode: DISABLE'), error: /spec\.portLevelMtls\.http: port "http" must be a port number/ },
    { name: 'bad port-level mode', yaml: pa('selector:\n  matchLabels:\n    app: a\nportLevelMtls:\n  8080:\n    mode: OFF'), error: /spec\.portLevelMtls\["8080"\]\.mode: must be one of/ },
    { name: 'port-level value not an object', yaml: pa('selector:\n  matchLabels:\n    app: a\nportLevelMtls:\n  8080: DISABLE'), error: /spec\.portLevelMtls\["8080"\]: must be an object/ },
    { name: 'port-level null value', yaml: pa('selector:\n  matchLabels:\n    app: a\nportLevelMtls:\n  8080:'), error: /spec\.portLevelMtls\["8080"\]: has no value \(null\)/ },
  ];
  for (const c of invalid) {
    it(`rejects ${c.name}`, () => {
      const { errors, resources } = validateYaml(c.yaml);
      assert.equal(resources.length, 0);
      assert.ok(errors.some((e) => c.error.test(e)), `expected ${c.error} in:\n${errors.join('\n')}`);
    });
  }

  const warned: { name: string; yaml: string; warning: RegExp }[] = [
    {
      name: 'a selector policy in the root namespace (ignored by Istio)',
      yaml: pa('selector:\n  matchLabels:\n    app: a\nmtls:\n  mode: STRICT', 'istio-system'),
      warning: /PeerAuthentication istio-system\/x: spec\.selector: a PeerAuthentication with a selector in the root namespace \(istio-system\) is ignored by Istio/,
    },
    { name: 'a selector without labels', yaml: pa('selector: {}\nmtls:\n  mode: STRICT'), warning: /spec\.selector: selector has no matchLabels, so it selects every workload in the namespace/ },
  ];
  for (const c of warned) {
    it(`warns about ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(c.yaml);
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
      assert.ok(warnings.some((w) => c.warning.test(w)), `expected ${c.warning} in:\n${warnings.join('\n')}`);
    });
  }

  it('reports every problem at once, with lines', () => {
    const { errors } = validateYaml(pa('mtls:\n  mode: NOPE\nportLevelMtls:\n  99999:\n    mode: NOPE'));
    assert.equal(errors.length, 3, errors.join('\n'));
    assert.match(errors[0] ?? '', /^test\.yaml: PeerAuthentication foo\/x: spec\.mtls\.mode: .* \(line 8\)$/);
  });
});
