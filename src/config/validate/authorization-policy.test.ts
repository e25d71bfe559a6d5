import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../../test/helpers/config.ts';

const ap = (spec: string, namespace = 'foo') => doc('security.istio.io/v1', 'AuthorizationPolicy', 'x', spec, namespace);
const indent = (text: string, by: string) => text.trim().split('\n').map((l) => `${by}${l}`).join('\n');
/** An ALLOW policy with one rule whose `from` has one source with these fields. */
const src = (fields: string) => ap(`rules:\n- from:\n  - source:\n${indent(fields, '      ')}`);
/** An ALLOW policy with one rule whose `to` has one operation with these fields. */
const op = (fields: string) => ap(`rules:\n- to:\n  - operation:\n${indent(fields, '      ')}`);
/** An ALLOW policy with one rule with one condition. */
const when = (cond: string) => ap(`rules:\n- when:\n  - ${indent(cond, '    ').trimStart()}`);
/** `yaml` with the dry-run annotation set to `value`. */
const dryRun = (yaml: string, value: string) => yaml.replace('  namespace: foo', `  namespace: foo\n  annotations: {istio.io/dry-run: "${value}"}`);

describe('AuthorizationPolicy validation', () => {
  const valid: { name: string; yaml: string }[] = [
    { name: 'a dry-run ALLOW policy', yaml: dryRun(ap('rules:\n- {}'), 'true') },
    { name: 'a dry-run DENY policy, "False" (Go\'s ParseBool spellings)', yaml: dryRun(ap('action: DENY\nrules:\n- to: [{operation: {ports: ["8080"]}}]'), 'False') },
    {
      name: 'the Istio task page httpbin policy',
      yaml: ap(`
selector:
  matchLabels:
    app: httpbin
    version: v1
action: ALLOW
rules:
- from:
  - source:
      principals: ["cluster.local/ns/default/sa/sleep"]
  - source:
      namespaces: ["test"]
  to:
  - operation:
      methods: ["GET"]
      paths: ["/info*"]
  - operation:
      methods: ["POST"]
      paths: ["/data"]
  when:
  - key: request.auth.claims[iss]
    values: ["https://accounts.google.com"]`),
    },
    { name: 'allow-all (one empty rule)', yaml: ap('rules:\n- {}') },
    {
      name: 'deny with ports (Istio advice followed)',
      yaml: ap('action: DENY\nrules:\n- from:\n  - source:\n      notNamespaces: ["foo"]\n  to:\n  - operation:\n      ports: ["8080"]\n      methods: ["POST"]'),
    },
    { name: 'deny by source only (TCP attribute)', yaml: ap('action: DENY\nrules:\n- from:\n  - source:\n      ipBlocks: ["203.0.113.0/24"]') },
    { name: 'deny on a condition only', yaml: ap('action: DENY\nrules:\n- when:\n  - key: request.headers[x-evil]\n    values: ["*"]') },
    { name: 'require a JWT', yaml: ap('action: ALLOW\nrules:\n- from:\n  - source:\n      requestPrincipals: ["*"]') },
    {
      name: 'every source field',
      yaml: src(`
principals: ["cluster.local/ns/a/sa/b", "cluster.local/*", "*/sa/b", "*"]
notPrincipals: ["x"]
requestPrincipals: ["issuer/subject"]
notRequestPrincipals: ["*"]
ipBlocks: ["10.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32", "0.0.0.0/0"]
notIpBlocks: ["192.168.0.0/16"]
remoteIpBlocks: ["::ffff:10.0.0.1", "fe80::1%eth0"]
notRemoteIpBlocks: ["::/0"]
trustDomains: ["cluster.local"]
notTrustDomains: ["*.example.com"]`),
    },
    { name: 'service accounts', yaml: src('serviceAccounts: ["default/sleep", "sleep"]\nnotServiceAccounts: ["ns/bad"]') },
    {
      name: 'every operation field',
      yaml: op(`
hosts: ["bookinfo.com", "*.example.com", "Example.COM:8080"]
notHosts: ["*"]
ports: ["0", "8080", "65535"]
notPorts: ["22"]
methods: ["GET", "HEAD", "*"]
notMethods: ["DELETE"]
paths: ["/", "/api/*", "*.png", "*", "/pkg.Service/Method", "/foo/{*}/bar", "/foo/{**}", "/a/{*}/{*}/{**}", "/v1/{*}/x.y~z"]
notPaths: ["/admin*"]`),
    },
    {
      name: 'every condition key',
      yaml: ap(`
rules:
- when:
  - {key: "request.headers[User-Agent]", values: ["curl*"]}
  - {key: source.ip, values: ["10.0.0.0/8"], notValues: ["10.1.0.0/16"]}
  - {key: remote.ip, values: ["2001:db8::1"]}
  - {key: source.namespace, values: ["default"]}
  - {key: source.principal, values: ["cluster.local/ns/default/sa/*"]}
  - {key: source.serviceAccount, values: ["default/sleep"]}
  - {key: source.trustDomain, values: ["cluster.local"]}
  - {key: request.auth.principal, values: ["iss/sub"]}
  - {key: request.auth.audiences, values: ["api"]}
  - {key: request.auth.presenter, values: ["client"]}
  - {key: "request.auth.claims[groups]", values: ["admin"]}
  - {key: "request.auth.claims[nested][key]", notValues: ["x"]}
  - {key: destination.ip, values: ["127.0.0.1"]}
  - {key: destination.port, values: ["80", "0"]}
  - {key: connection.sni, values: ["*.example.com"]}`),
    },
    { name: 'v1beta1 with dry-run annotation', yaml: 'apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata:\n  name: x\n  annotations:\n    istio.io/dry-run: "true"\nspec:\n  action: DENY\n  rules:\n  - to:\n    - operation:\n        ports: ["9000"]\n' },
  ];
  for (const c of valid) {
    it(`accepts ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(c.yaml);
      assert.deepEqual(errors, []);
      assert.deepEqual(warnings, []);
      assert.equal(resources.length, 1);
    });
  }

  it('keeps the typed policy as written', () => {
    const { resources } = validateYaml(ap('action: DENY\nrules:\n- to:\n  - operation:\n      ports: ["8080"]\n  when:\n  - key: source.ip\n    values: ["10.0.0.1"]'));
    assert.deepEqual(resources[0]?.spec, { action: 'DENY', rules: [{ to: [{ operation: { ports: ['8080'] } }], when: [{ key: 'source.ip', values: ['10.0.0.1'] }] }] });
  });

  it('removes empty lists (unset in Istio) from the typed value', () => {
    const { resources, warnings } = validateYaml(src('principals: []\nnamespaces: ["a"]'));
    assert.deepEqual(resources[0]?.spec, { rules: [{ from: [{ source: { namespaces: ['a'] } }] }] });
    assert.match(warnings[0] ?? '', /spec\.rules\[0\]\.from\[0\]\.source\.principals: an empty list has no effect \(Istio treats it as unset\)/);
  });

  const invalid: { name: string; yaml: string; error: RegExp }[] = [
    // the istio.io/dry-run annotation (Istio's validateMetadata)
    { name: 'a dry-run annotation that is not a boolean', yaml: dryRun(ap('rules:\n- {}'), 'foo'), error: /metadata\.annotations\["istio\.io\/dry-run"\]: istio\.io\/dry-run must be "true" or "false", got "foo"/ },
    { name: 'a dry-run AUDIT policy', yaml: dryRun(ap('action: AUDIT\nrules:\n- {}'), 'true'), error: /istio\.io\/dry-run works with action ALLOW or DENY only, not AUDIT/ },
    { name: 'an internal Istio annotation', yaml: ap('rules:\n- {}').replace('  namespace: foo', '  namespace: foo\n  annotations: {internal.istio.io/parents: x}'), error: /internal\.istio\.io\/parents is reserved for Istio's own generated resources/ },
    // targetRef (Istio's validatePolicyTargetReference)
    { name: 'a targetRef with a namespace', yaml: ap('targetRef:\n  group: gateway.networking.k8s.io\n  kind: Gateway\n  name: gw\n  namespace: other'), error: /spec\.targetRef\.namespace: must not be set/ },
    { name: 'a targetRef to a wrong group', yaml: ap('targetRef:\n  group: wrong-group\n  kind: Gateway\n  name: gw'), error: /spec\.targetRef: targetRef must be to one of .*; got wrong-group\/Gateway/ },
    // action and provider
    { name: 'unknown action', yaml: ap('action: REJECT\nrules:\n- {}'), error: /spec\.action: must be one of ALLOW, DENY, AUDIT, CUSTOM; got a string \("REJECT"\)/ },
    { name: 'lower-case action', yaml: ap('action: deny\nrules:\n- {}'), error: /spec\.action: must be one of/ },
    { name: 'CUSTOM without provider', yaml: ap('action: CUSTOM\nrules:\n- {}'), error: /spec\.provider: provider is required with action CUSTOM/ },
    { name: 'CUSTOM with an empty provider name', yaml: ap('action: CUSTOM\nprovider:\n  name: ""\nrules:\n- {}'), error: /spec\.provider\.name: must not be empty/ },
    { name: 'CUSTOM provider without a name', yaml: ap('action: CUSTOM\nprovider: {}\nrules:\n- {}'), error: /spec\.provider\.name: is required/ },
    { name: 'provider with ALLOW', yaml: ap('provider:\n  name: ext\nrules:\n- {}'), error: /spec\.provider: provider may only be set with action CUSTOM, got action ALLOW/ },
    { name: 'provider with DENY', yaml: ap('action: DENY\nprovider:\n  name: ext\nrules:\n- {}'), error: /provider may only be set with action CUSTOM, got action DENY/ },
    { name: 'DENY without rules', yaml: ap('action: DENY'), error: /spec: DENY action without rules is meaningless/ },
    { name: 'DENY with an empty rules list', yaml: ap('action: DENY\nrules: []'), error: /spec: DENY action without rules is meaningless/ },
    { name: 'CUSTOM without rules', yaml: ap('action: CUSTOM\nprovider:\n  name: ext'), error: /spec: CUSTOM action without rules is meaningless/ },
    { name: 'CUSTOM with principals', yaml: ap('action: CUSTOM\nprovider:\n  name: ext\nrules:\n- from:\n  - source:\n      principals: ["a"]'), error: /from\[0\]\.source\.principals: principals is not supported with action CUSTOM/ },
    { name: 'CUSTOM with requestPrincipals', yaml: ap('action: CUSTOM\nprovider:\n  name: ext\nrules:\n- from:\n  - source:\n      requestPrincipals: ["*"]'), error: /requestPrincipals is not supported with action CUSTOM/ },
    { name: 'CUSTOM with a request.auth condition', yaml: ap('action: CUSTOM\nprovider:\n  name: ext\nrules:\n- when:\n  - key: request.auth.claims[iss]\n    values: ["a"]'), error: /when\[0\]\.key: request\.auth\.claims\[iss\] is not supported with action CUSTOM/ },
    { name: 'CUSTOM with a source.principal condition', yaml: ap('action: CUSTOM\nprovider:\n  name: ext\nrules:\n- when:\n  - key: source.principal\n    values: ["a"]'), error: /source\.principal is not supported with action CUSTOM/ },
    // scope
    { name: 'selector and targetRef together', yaml: ap('selector:\n  matchLabels:\n    app: a\ntargetRef:\n  kind: Service\n  name: a\nrules:\n- {}'), error: /spec: only one of selector, targetRef, targetRefs may be set, got selector and targetRef/ },
    { name: 'targetRef and targetRefs together', yaml: ap('targetRef:\n  kind: Service\n  name: a\ntargetRefs:\n- kind: Service\n  name: b\nrules:\n- {}'), error: /only one of selector, targetRef, targetRefs may be set, got targetRef and targetRefs/ },
    { name: 'wildcard in a selector', yaml: ap('selector:\n  matchLabels:\n    app: "*"\nrules:\n- {}'), error: /spec\.selector\.matchLabels\.app: invalid label value "\*"/ },
    // rule shapes
    { name: 'rules not a list', yaml: ap('rules:\n  from: []'), error: /spec\.rules: must be a list/ },
    { name: 'null rule', yaml: ap('rules:\n- null'), error: /spec\.rules\[0\]: must be an object, got null/ },
    { name: 'unknown rule field', yaml: ap('rules:\n- form: []'), error: /spec\.rules\[0\]\.form: unknown field "form" \(did you mean "from"\?\)/ },
    { name: 'empty from', yaml: ap('rules:\n- from: []'), error: /spec\.rules\[0\]\.from: must have at least one item/ },
    { name: 'empty to', yaml: ap('rules:\n- to: []'), error: /spec\.rules\[0\]\.to: must have at least one item/ },
    { name: 'from entry without source', yaml: ap('rules:\n- from:\n  - {}'), error: /spec\.rules\[0\]\.from\[0\]\.source: is required/ },
    { name: 'to entry without operation', yaml: ap('rules:\n- to:\n  - {}'), error: /spec\.rules\[0\]\.to\[0\]\.operation: is required/ },
    { name: 'source written without the source key', yaml: ap('rules:\n- from:\n  - principals: ["a"]'), error: /from\[0\]\.principals: unknown field "principals"/ },
    { name: 'empty source', yaml: src('{}'), error: /spec\.rules\[0\]\.from\[0\]\.source: source must not be empty/ },
    { name: 'source with only empty lists', yaml: src('principals: []'), error: /source: source must not be empty/ },
    { name: 'empty operation', yaml: op('{}'), error: /spec\.rules\[0\]\.to\[0\]\.operation: operation must not be empty/ },
    { name: 'unknown source field', yaml: src('principal: ["a"]'), error: /source\.principal: unknown field "principal" \(did you mean "principals"\?\)/ },
    { name: 'unknown operation field', yaml: op('method: ["GET"]'), error: /operation\.method: unknown field "method" \(did you mean "methods"\?\)/ },
    // source values
    { name: 'empty principal', yaml: src('principals: [""]'), error: /source\.principals\[0\]: empty value not allowed/ },
    { name: 'principals not a list', yaml: src('principals: "a"'), error: /source\.principals: must be a list/ },
    { name: 'principal not a string', yaml: src('principals: [1]'), error: /source\.principals\[0\]: must be a string/ },
    { name: 'wildcard in the middle of a principal', yaml: src('principals: ["cluster.local/ns/*/sa/a"]'), error: /principals\[0\]: "cluster\.local\/ns\/\*\/sa\/a" has "\*" in the middle/ },
    { name: 'wildcards at both ends', yaml: src('namespaces: ["*test*"]'), error: /namespaces\[0\]: "\*test\*" has "\*" at both ends/ },
    { name: 'empty notPrincipals value', yaml: src('notPrincipals: [""]'), error: /notPrincipals\[0\]: empty value not allowed/ },
    { name: 'empty requestPrincipals value', yaml: src('requestPrincipals: [""]'), error: /requestPrincipals\[0\]: empty value not allowed/ },
    { name: 'bad notRequestPrincipals value', yaml: src('notRequestPrincipals: ["a**b"]'), error: /notRequestPrincipals\[0\]: .*in the middle/ },
    { name: 'empty namespace', yaml: src('namespaces: [""]'), error: /namespaces\[0\]: empty value not allowed/ },
    { name: 'bad notNamespaces value', yaml: src('notNamespaces: ["a*b"]'), error: /notNamespaces\[0\]: "a\*b" has "\*" in the middle/ },
    { name: 'empty trust domain', yaml: src('trustDomains: [""]'), error: /trustDomains\[0\]: empty value not allowed/ },
    { name: 'bad notTrustDomains value', yaml: src('notTrustDomains: ["**"]'), error: /notTrustDomains\[0\]: "\*\*" has "\*" at both ends/ },
    { name: 'serviceAccounts with principals', yaml: src('serviceAccounts: ["default/a"]\nprincipals: ["x"]'), error: /source: serviceAccounts cannot be combined with principals or namespaces in the same source, got principals/ },
    { name: 'notServiceAccounts with notNamespaces', yaml: src('notServiceAccounts: ["a"]\nnotNamespaces: ["x"]'), error: /serviceAccounts cannot be combined with principals or namespaces in the same source, got notNamespaces/ },
    { name: 'wildcard service account', yaml: src('serviceAccounts: ["default/*"]'), error: /serviceAccounts\[0\]: wildcard not allowed in service accounts/ },
    { name: 'service account with two slashes', yaml: src('serviceAccounts: ["a/b/c"]'), error: /serviceAccounts\[0\]: expected "serviceAccount" or "namespace\/serviceAccount", got "a\/b\/c"/ },
    { name: 'service account with an empty namespace', yaml: src('notServiceAccounts: ["/sa"]'), error: /notServiceAccounts\[0\]: expected "serviceAccount" or "namespace\/serviceAccount"/ },
    { name: 'empty service account', yaml: src('serviceAccounts: [""]'), error: /serviceAccounts\[0\]: empty value not allowed/ },
    { name: 'service account too long', yaml: src(`serviceAccounts: ["${'a'.repeat(321)}"]`), error: /serviceAccounts\[0\]: service account .* is longer than 320 characters/ },
    { name: 'more than 16 service accounts', yaml: src(`serviceAccounts: [${Array.from({ length: 17 }, (_, i) => `"sa${i}"`).join(', ')}]`), error: /serviceAccounts: must have at most 16 items, got 17/ },
    { name: 'bad IP', yaml: src('ipBlocks: ["10.0.0.256"]'), error: /ipBlocks\[0\]: bad IP address "10\.0\.0\.256"/ },
    { name: 'IPv4 with a leading zero', yaml: src('ipBlocks: ["10.0.0.01"]'), error: /ipBlocks\[0\]: bad IP address/ },
    { name: 'host name as IP', yaml: src('notIpBlocks: ["example.com"]'), error: /notIpBlocks\[0\]: bad IP address "example\.com"/ },
    { name: 'IPv4 prefix too long', yaml: src('remoteIpBlocks: ["10.0.0.0/33"]'), error: /remoteIpBlocks\[0\]: bad CIDR range "10\.0\.0\.0\/33": prefix length must be 0-32/ },
    { name: 'IPv6 prefix too long', yaml: src('notRemoteIpBlocks: ["2001:db8::/129"]'), error: /notRemoteIpBlocks\[0\]: bad CIDR range .*prefix length must be 0-128/ },
    { name: 'CIDR prefix not a number', yaml: src('ipBlocks: ["10.0.0.0/x"]'), error: /bad CIDR range "10\.0\.0\.0\/x"/ },
    { name: 'CIDR with a bad address', yaml: src('ipBlocks: ["10.0.0/8"]'), error: /bad CIDR range "10\.0\.0\/8": "10\.0\.0" is not an IP address/ },
    { name: 'CIDR with a zone', yaml: src('ipBlocks: ["fe80::%eth0/64"]'), error: /bad CIDR range "fe80::%eth0\/64"/ },
    { name: 'bad IPv6', yaml: src('ipBlocks: ["1::2::3"]'), error: /bad IP address "1::2::3"/ },
    { name: 'wildcard IP', yaml: src('ipBlocks: ["*"]'), error: /bad IP address "\*"/ },
    // operation values
    { name: 'port out of range', yaml: op('ports: ["65536"]'), error: /operation\.ports\[0\]: bad port "65536": must be a number 0-65535/ },
    { name: 'port as a name', yaml: op('notPorts: ["http"]'), error: /operation\.notPorts\[0\]: bad port "http"/ },
    { name: 'negative port', yaml: op('ports: ["-1"]'), error: /bad port "-1"/ },
    { name: 'wildcard port', yaml: op('ports: ["*"]'), error: /bad port "\*"/ },
    { name: 'port as a number', yaml: op('ports: [8080]'), error: /operation\.ports\[0\]: must be a string, got a number \(8080\)/ },
    { name: 'empty host', yaml: op('hosts: [""]'), error: /operation\.hosts\[0\]: empty value not allowed/ },
    { name: 'host with a middle wildcard', yaml: op('notHosts: ["a.*.com"]'), error: /notHosts\[0\]: "a\.\*\.com" has "\*" in the middle/ },
    { name: 'empty method', yaml: op('methods: [""]'), error: /operation\.methods\[0\]: empty value not allowed/ },
    { name: 'method with a middle wildcard', yaml: op('notMethods: ["G*T"]'), error: /notMethods\[0\]: "G\*T" has "\*" in the middle/ },
    { name: 'empty path', yaml: op('paths: [""]'), error: /operation\.paths\[0\]: empty value not allowed/ },
    { name: 'path with a middle wildcard', yaml: op('paths: ["/api/*/users"]'), error: /paths\[0\]: "\/api\/\*\/users" has "\*" in the middle/ },
    { name: 'path with wildcards at both ends', yaml: op('notPaths: ["*/admin/*"]'), error: /notPaths\[0\]: "\*\/admin\/\*" has "\*" at both ends/ },
    { name: 'template operator inside a segment', yaml: op('paths: ["/foo/a{*}"]'), error: /paths\[0\]: invalid path template "\/foo\/a\{\*\}": "\{" and "\}" may only appear as the whole-segment operators/ },
    { name: 'named template variable', yaml: op('paths: ["/foo/{id}"]'), error: /invalid path template "\/foo\/\{id\}"/ },
    { name: 'template operator after {**}', yaml: op('paths: ["/foo/{**}/{*}"]'), error: /invalid path template "\/foo\/\{\*\*\}\/\{\*\}": \{\*\*\} must be the last operator/ },
    { name: 'two {**}', yaml: op('notPaths: ["/{**}/x/{**}"]'), error: /\{\*\*\} must be the last operator/ },
    { name: 'template with a * suffix form', yaml: op('paths: ["/foo/{*}/bar*"]'), error: /segment "bar\*" is not a valid literal.*cannot be combined with \{\*\} or \{\*\*\}/ },
    { name: 'template not starting with /', yaml: op('paths: ["{*}/foo"]'), error: /path template "\{\*\}\/foo" must start with "\/"/ },
    { name: 'template with an empty segment', yaml: op('paths: ["/a//{*}"]'), error: /segment "" is not a valid literal/ },
    // conditions
    { name: 'condition without key', yaml: when('values: ["a"]'), error: /spec\.rules\[0\]\.when\[0\]\.key: is required/ },
    { name: 'condition with an empty key', yaml: when('key: ""\nvalues: ["a"]'), error: /when\[0\]\.key: must not be empty/ },
    { name: 'condition without values', yaml: when('key: source.ip'), error: /spec\.rules\[0\]\.when\[0\]: at least one of values or notValues must be set/ },
    { name: 'condition with empty values', yaml: when('key: source.ip\nvalues: []'), error: /when\[0\]: at least one of values or notValues must be set/ },
    { name: 'unknown key', yaml: when('key: source.user\nvalues: ["a"]'), error: /when\[0\]\.key: unknown attribute "source\.user".*; supported keys: request\.headers\[<name>\], source\.ip/ },
    { name: 'misspelt key', yaml: when('key: source.namespac\nvalues: ["a"]'), error: /unknown attribute "source\.namespac" \(did you mean "source\.namespace"\?\)/ },
    { name: 'header key without a name', yaml: when('key: request.headers\nvalues: ["a"]'), error: /bad key "request\.headers": should have the form request\.headers\[<name>\]/ },
    { name: 'header key with an empty name', yaml: when('key: request.headers[]\nvalues: ["a"]'), error: /bad key "request\.headers\[\]"/ },
    { name: 'claims key without a claim', yaml: when('key: request.auth.claims\nvalues: ["a"]'), error: /bad key "request\.auth\.claims": should have the form request\.auth\.claims\[<claim>\]/ },
    { name: 'claims key not closed', yaml: when('key: request.auth.claims[a\nvalues: ["a"]'), error: /bad key "request\.auth\.claims\[a"/ },
    { name: 'experimental key without brackets', yaml: when('key: experimental.envoy.filters.network.mysql_proxy\nvalues: ["a"]'), error: /bad key "experimental\.envoy\.filters\.network\.mysql_proxy"/ },
    { name: 'destination.namespace', yaml: when('key: destination.namespace\nvalues: ["a"]'), error: /attribute destination\.namespace is replaced by the policy's metadata\.namespace/ },
    { name: 'destination.labels', yaml: when('key: destination.labels[app]\nvalues: ["a"]'), error: /attribute destination\.labels\[app\] is replaced by the workload selector/ },
    { name: 'destination.user', yaml: when('key: destination.user\nvalues: ["a"]'), error: /deprecated attribute destination\.user: only supported in v1alpha1/ },
    { name: 'source.ip not an IP', yaml: when('key: source.ip\nvalues: ["localhost"]'), error: /when\[0\]\.values\[0\]: invalid value for key source\.ip: bad IP address "localhost"/ },
    { name: 'remote.ip bad CIDR', yaml: when('key: remote.ip\nnotValues: ["10.0.0.0/40"]'), error: /when\[0\]\.notValues\[0\]: invalid value for key remote\.ip: bad CIDR range/ },
    { name: 'destination.ip not an IP', yaml: when('key: destination.ip\nvalues: ["*"]'), error: /invalid value for key destination\.ip: bad IP address "\*"/ },
    { name: 'destination.port not numeric', yaml: when('key: destination.port\nvalues: ["http"]'), error: /invalid value for key destination\.port: bad port "http"/ },
    { name: 'destination.port out of range', yaml: when('key: destination.port\nvalues: ["70000"]'), error: /invalid value for key destination\.port: bad port "70000"/ },
    { name: 'source.serviceAccount wildcard', yaml: when('key: source.serviceAccount\nvalues: ["ns/*"]'), error: /invalid value for key source\.serviceAccount: wildcard not allowed/ },
    { name: 'empty condition value', yaml: when('key: request.headers[x]\nvalues: [""]'), error: /when\[0\]\.values\[0\]: invalid value for key request\.headers\[x\]: empty value not allowed/ },
    { name: 'condition value with a middle wildcard', yaml: when('key: request.auth.claims[groups]\nvalues: ["a*b"]'), error: /invalid value for key request\.auth\.claims\[groups\]: "a\*b" has "\*" in the middle/ },
    { name: 'condition value not a string', yaml: when('key: destination.port\nvalues: [8080]'), error: /when\[0\]\.values\[0\]: must be a string, got a number/ },
    { name: 'a key named like an Object property', yaml: when('key: constructor\nvalues: ["a"]'), error: /when\[0\]\.key: unknown attribute "constructor"/ },
    { name: 'unknown condition field', yaml: when('key: source.ip\nvalue: ["1.2.3.4"]'), error: /when\[0\]\.value: unknown field "value" \(did you mean "values"\?\)/ },
  ];
  for (const c of invalid) {
    it(`rejects ${c.name}`, () => {
      const { errors, resources } = validateYaml(c.yaml);
      assert.equal(resources.length, 0);
      assert.ok(errors.some((e) => c.error.test(e)), `expected ${c.error} in:\n${errors.join('\n')}`);
    });
  }

  const warned: { name: string; yaml: string; warning: RegExp }[] = [
    { name: 'a path without a leading / (Istio accepts it; it never matches)', yaml: op('paths: ["api/v1"]'), warning: /paths\[0\]: path "api\/v1" does not start with "\/": request paths always do, so it never matches \(write "\/api\/v1"\)/ },
    { name: 'ALLOW without rules (allow-nothing)', yaml: ap('{}'), warning: /AuthorizationPolicy foo\/x: spec: no rules: the policy matches nothing: with ALLOW this denies every request to the selected workloads/ },
    { name: 'explicit ALLOW with an empty rules list', yaml: ap('action: ALLOW\nrules: []'), warning: /spec: no rules: the policy matches nothing: with ALLOW this denies every request/ },
    { name: 'AUDIT', yaml: ap('action: AUDIT\nrules:\n- {}'), warning: /spec\.action: AUDIT only marks the requests the policy matches/ },
    { name: 'AUDIT without rules', yaml: ap('action: AUDIT'), warning: /spec: no rules: an AUDIT policy without rules matches nothing/ },
    {
      name: 'DENY with only HTTP fields in to',
      yaml: ap('action: DENY\nrules:\n- to:\n  - operation:\n      methods: ["POST"]'),
      warning: /spec\.rules\[0\]: this DENY rule uses only HTTP attributes .* Istio recommends setting ports/,
    },
    {
      name: 'DENY with only requestPrincipals in from',
      yaml: ap('action: DENY\nrules:\n- from:\n  - source:\n      notRequestPrincipals: ["*"]'),
      warning: /spec\.rules\[0\]: this DENY rule uses only HTTP attributes/,
    },
    {
      name: 'DENY with a TCP source but HTTP-only operation',
      yaml: ap('action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["a"]\n  to:\n  - operation:\n      paths: ["/x"]'),
      warning: /spec\.rules\[0\]: this DENY rule uses only HTTP attributes/,
    },
    {
      name: 'targetRefs',
      yaml: ap('targetRefs:\n- kind: Service\n  group: ""\n  name: productpage\nrules:\n- {}'),
      warning: /spec\.targetRefs: not supported by meshlet: spec\.targetRefs; meshlet runs inside workloads; use selector/,
    },
    { name: 'an empty operation list', yaml: op('methods: ["GET"]\npaths: []'), warning: /operation\.paths: an empty list has no effect/ },
    { name: 'an empty condition list', yaml: when('key: source.ip\nvalues: ["1.2.3.4"]\nnotValues: []'), warning: /when\[0\]\.notValues: an empty list has no effect/ },
    { name: 'a lower-case method', yaml: op('methods: ["get"]'), warning: /operation\.methods\[0\]: HTTP methods are case-sensitive: "get" does not match "GET"/ },
    { name: 'a path with a query', yaml: op('paths: ["/search?q=1"]'), warning: /operation\.paths\[0\]: paths are matched without the query string, so "\/search\?q=1" never matches/ },
    {
      name: 'an experimental Envoy filter key',
      yaml: when('key: experimental.envoy.filters.network.mysql_proxy[db.table]\nvalues: ["[update]"]'),
      warning: /when\[0\]\.key: not supported by meshlet: .*the policy fails closed/,
    },
    { name: 'a selector without labels', yaml: ap('selector: {}\nrules:\n- {}'), warning: /spec\.selector: selector has no matchLabels/ },
    // Principals that never match what they seem to name: in a DENY rule they silently deny nothing.
    {
      name: 'a principal written with spiffe://',
      yaml: ap('action: DENY\nrules:\n- from:\n  - source:\n      principals: ["spiffe://cluster.local/ns/foo/sa/sleep"]'),
      warning: /source\.principals\[0\]: principals are written without "spiffe:\/\/" \(Istio prepends it\), so "spiffe:\/\/cluster\.local\/ns\/foo\/sa\/sleep" never matches \(write "cluster\.local\/ns\/foo\/sa\/sleep"\)/,
    },
    { name: 'a notPrincipals value written with spiffe://', yaml: ap('rules:\n- from:\n  - source:\n      notPrincipals: ["spiffe://cluster.local/ns/foo/sa/sleep"]'), warning: /source\.notPrincipals\[0\]: principals are written without "spiffe:\/\/"/ },
    { name: 'a source.principal condition written with spiffe://', yaml: when('key: source.principal\nnotValues: ["spiffe://cluster.local/ns/foo/sa/sleep"]'), warning: /when\[0\]\.notValues\[0\]: principals are written without "spiffe:\/\/"/ },
    {
      name: 'a request principal that is an issuer alone',
      yaml: ap('action: DENY\nrules:\n- from:\n  - source:\n      requestPrincipals: ["testing@secure.istio.io"]'),
      warning: /source\.requestPrincipals\[0\]: "testing@secure\.istio\.io" has no "\/": it means issuer "testing@secure\.istio\.io" with an empty subject, so it matches no token with a subject \(write "testing@secure\.istio\.io\/\*" for any subject of that issuer\)/,
    },
    { name: 'a request.auth.principal condition that is an issuer alone', yaml: when('key: request.auth.principal\nvalues: ["issuer-1"]'), warning: /when\[0\]\.values\[0\]: "issuer-1" has no "\/"/ },
    {
      name: 'a request principal that is a URL issuer alone',
      yaml: ap('rules:\n- from:\n  - source:\n      requestPrincipals: ["https://accounts.example.com"]'),
      warning:
        /requestPrincipals\[0\]: "https:\/\/accounts\.example\.com" is split at its last "\/" into issuer "https:\/" and subject "accounts\.example\.com", so it never matches a token of issuer "https:\/\/accounts\.example\.com" \(write "https:\/\/accounts\.example\.com\/\*" for any subject of that issuer\)/,
    },
  ];
  it('says nothing about ordinary principals', () => {
    const { errors, warnings } = validateYaml(
      ap('rules:\n- from:\n  - source:\n      principals: ["cluster.local/ns/foo/sa/sleep", "*"]\n      requestPrincipals: ["testing@secure.istio.io/testing@secure.istio.io", "https://accounts.example.com/*", "https://accounts.example.com/alice", "*", "iss-prefix*", "*sub-suffix"]'),
    );
    assert.deepEqual([errors, warnings], [[], []]);
  });
  it('a CUSTOM policy naming its provider is valid without a warning (whether the provider exists is the mesh’s to say)', () => {
    const { errors, warnings, resources } = validateYaml(ap('action: CUSTOM\nprovider:\n  name: my-ext-authz\nrules:\n- to:\n  - operation:\n      paths: ["/admin/*"]'));
    assert.deepEqual([errors, warnings, resources.length], [[], [], 1]);
  });

  for (const c of warned) {
    it(`warns about ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(c.yaml);
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
      assert.ok(warnings.some((w) => c.warning.test(w)), `expected ${c.warning} in:\n${warnings.join('\n')}`);
    });
  }

  it('never throws on malformed shapes', () => {
    const shapes = [
      'rules: 5',
      'rules:\n- from: null\n  to: "x"\n  when: {}',
      'rules:\n- from:\n  - source: []\n  to:\n  - operation: 7',
      'rules:\n- when:\n  - key: 3\n    values: {a: b}\n    notValues: [null, 1]',
      'action: CUSTOM\nprovider: x\nrules:\n- from: [1, null, {source: null}]\n  when: [1, null, {key: null}]',
      'action: DENY\nrules:\n- from: [{source: {principals: 1}}]\n  to: [{operation: {ports: 1}}]',
      'action: [DENY]',
    ];
    for (const s of shapes) {
      const { errors, resources } = validateYaml(ap(s));
      assert.equal(resources.length, 0, s);
      assert.ok(errors.length > 0, s);
    }
  });

  it('reports every problem in a policy at once', () => {
    const { errors } = validateYaml(ap('action: DENY\nrules:\n- from:\n  - source: {}\n  to:\n  - operation:\n      ports: ["x"]\n  when:\n  - key: nope\n    values: ["a"]'));
    assert.equal(errors.length, 3, errors.join('\n'));
  });
});
