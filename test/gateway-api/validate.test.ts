/**
 * Validation of HTTPRoutes and GRPCRoutes attached to Services: what the Gateway API's CRD
 * schema and CEL rules refuse, and what istiod refuses to convert, is an error naming the field
 * and its line; what istiod reports in the route's status (a parent or backend that does not
 * exist, a Gateway parent meshlet cannot apply) is a warning; a route attached only to Gateways
 * is skipped as before.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load-config.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-gamma-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SERVICE = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
`;

async function issuesOf(yaml: string): Promise<string[]> {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, SERVICE + yaml);
  const { issues } = await loadConfig(file, { analysis: 'off' });
  return issues.all.map((i) => `${i.level} ${i.path} line ${i.line}: ${i.message}`);
}

const route = (rules: string, parents = '[{group: "", kind: Service, name: reviews}]') => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: ${parents}
  rules:
${rules}`;

describe('HTTPRoute validation', () => {
  const cases: { name: string; rules: string; want: RegExp; parents?: string }[] = [
    { name: 'a Service backend without a port', rules: '  - backendRefs: [{name: reviews}]', want: /^error spec\.rules\[0\]\.backendRefs\[0\]\.port line 12: is required when the backend is a Service/ },
    { name: 'a backend named by its host name', rules: '  - backendRefs: [{name: reviews.default.svc.cluster.local, port: 9080}]', want: /^error spec\.rules\[0\]\.backendRefs\[0\]\.name line 12: .*is a host name/ },
    { name: 'a Hostname backend with a namespace', rules: '  - backendRefs: [{group: networking.istio.io, kind: Hostname, name: ext.example.com, namespace: default, port: 80}]', want: /^error spec\.rules\[0\]\.backendRefs\[0\]\.namespace line 12: may not be set with kind Hostname/ },
    { name: 'a relative path', rules: '  - matches: [{path: {type: PathPrefix, value: api}}]\n    backendRefs: [{name: reviews, port: 9080}]', want: /^error spec\.rules\[0\]\.matches\[0\]\.path\.value line 12: must be an absolute path/ },
    { name: 'a bad regex', rules: '  - matches: [{headers: [{type: RegularExpression, name: x, value: "("}]}]\n    backendRefs: [{name: reviews, port: 9080}]', want: /^error spec\.rules\[0\]\.matches\[0\]\.headers\[0\]\.value line 12:/ },
    { name: 'a filter type without its field', rules: '  - filters: [{type: URLRewrite}]\n    backendRefs: [{name: reviews, port: 9080}]', want: /^error spec\.rules\[0\]\.filters\[0\]\.urlRewrite line 12: is required when type is URLRewrite/ },
    { name: 'a misspelt field', rules: '  - backendRef: [{name: reviews, port: 9080}]', want: /^error spec\.rules\[0\]\.backendRef line 12: unknown field "backendRef" \(did you mean "backendRefs"\?\)/ },
    { name: 'a non Gateway API duration', rules: '  - timeouts: {request: 1.5s}\n    backendRefs: [{name: reviews, port: 9080}]', want: /^error spec\.rules\[0\]\.timeouts\.request line 12: "1\.5s" is not a Gateway API duration/ },
    { name: 'backendRequest longer than request', rules: '  - timeouts: {request: 1s, backendRequest: 2s}\n    backendRefs: [{name: reviews, port: 9080}]', want: /^error spec\.rules\[0\]\.timeouts\.backendRequest line 12: must not be longer than request/ },
    { name: 'ReplacePrefixMatch without a PathPrefix match', rules: '  - matches: [{path: {type: Exact, value: /a}}]\n    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]\n    backendRefs: [{name: reviews, port: 9080}]', want: /^error spec\.rules\[0\]\.filters\[0\] line 13: ReplacePrefixMatch needs/ },
    // The CRD's PreciseHostname pattern; Envoy refuses NUL/CR/LF in a rewritten or redirected path.
    { name: 'a redirect hostname with CR/LF', rules: '  - filters: [{type: RequestRedirect, requestRedirect: {hostname: "evil.example\\r\\nset-cookie: a=b"}}]', want: /^error spec\.rules\[0\]\.filters\[0\]\.requestRedirect\.hostname line 12: .*is not a host name/ },
    { name: 'a rewrite hostname with a port', rules: '  - filters: [{type: URLRewrite, urlRewrite: {hostname: "a.example:80"}}]\n    backendRefs: [{name: reviews, port: 9080}]', want: /^error spec\.rules\[0\]\.filters\[0\]\.urlRewrite\.hostname line 12: .*is not a host name/ },
    { name: 'a redirect path with a LF', rules: '  - filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: "/a\\nb"}}}]', want: /^error spec\.rules\[0\]\.filters\[0\]\.requestRedirect\.path\.replaceFullPath line 12: .*has a NUL, CR or LF/ },
    { name: 'a rewrite prefix with a CR', rules: '  - matches: [{path: {type: PathPrefix, value: /a}}]\n    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: "/b\\r"}}}]\n    backendRefs: [{name: reviews, port: 9080}]', want: /^error spec\.rules\[0\]\.filters\[0\]\.urlRewrite\.path\.replacePrefixMatch line 13: .*has a NUL, CR or LF/ },
    { name: 'an ExtensionRef filter', rules: '  - filters: [{type: ExtensionRef, extensionRef: {group: x, kind: Y, name: z}}]\n    backendRefs: [{name: reviews, port: 9080}]', want: /^error spec\.rules\[0\]\.filters\[0\]\.type line 12: ExtensionRef filters are not supported/ },
    { name: 'a backend that does not exist', rules: '  - backendRefs: [{name: ratings, port: 9080}]', want: /^warning spec\.rules\[0\]\.backendRefs\[0\] line 12: backend Service default\/ratings not found: .*500/ },
    { name: 'a parent Service that does not exist', rules: '  - backendRefs: [{name: reviews, port: 9080}]', parents: '[{group: "", kind: Service, name: nope}]', want: /^warning spec\.parentRefs\[0\] line 10: not applied: parent Service default\/nope not found/ },
    { name: 'a Gateway parent beside a Service parent', rules: '  - backendRefs: [{name: reviews, port: 9080}]', parents: '[{name: gw}, {group: "", kind: Service, name: reviews}]', want: /^warning spec\.parentRefs\[0\] line 10: not applied: Gateway default\/gw is a gateway parent and meshlet is not a gateway/ },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const got = await issuesOf(route(c.rules, c.parents));
      assert.ok(got.some((i) => c.want.test(i)), got.join('\n'));
    });
  }

  it('a bad value is one error, not also "is required"', async () => {
    const got = await issuesOf(route('  - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: v2}}}]\n    backendRefs: [{name: reviews, port: 9080}]'));
    assert.deepEqual(got.filter((i) => i.startsWith('error')), ['error spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch line 12: must be an absolute path starting with "/", got "v2"']);
  });

  // istiod's TestCreateHeadersFilter: newline, carriage return, NUL, other control characters and DEL refused; tab allowed.
  for (const [name, value, ok] of [['newline', '\\n', false], ['carriage return', '\\r', false], ['NUL', '\\0', false], ['control character', '\\x01', false], ['DEL', '\\x7f', false], ['tab', '\\t', true]] as const) {
    it(`a header filter value with a ${name} is ${ok ? 'accepted' : 'an error'} (istiod's TestCreateHeadersFilter)`, async () => {
      const got = await issuesOf(route(`  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-foo, value: "bar${value}baz"}]}}]\n    backendRefs: [{name: reviews, port: 9080}]`));
      const errors = got.filter((i) => i.startsWith('error'));
      if (ok) assert.deepEqual(errors, []);
      else assert.ok(errors.some((i) => /requestHeaderModifier\.set\[0\]\.value line 12: contains invalid characters/.test(i)), got.join('\n'));
    });
  }

  it('hostnames on a route with a Service parent: an info that they do not apply', async () => {
    const got = await issuesOf(route('  - backendRefs: [{name: reviews, port: 9080}]').replace('  rules:', '  hostnames: [reviews.example.com]\n  rules:'));
    assert.ok(got.some((i) => /^info spec\.hostnames line 11: hostnames do not apply to Service parents/.test(i)), got.join('\n'));
  });

  it('a route attached only to Gateways is skipped with a notice, as before', async () => {
    const got = await issuesOf(route('  - backendRefs: [{name: reviews, port: 9080}]', '[{name: gw}]'));
    assert.ok(got.some((i) => /skipped 1 HTTPRoute .*default\/r; these routes are attached to no Service/.test(i)), got.join('\n'));
  });

  it('a GRPCRoute match needs a service or a method', async () => {
    const got = await issuesOf(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - matches: [{method: {type: Exact}}]
    backendRefs: [{name: reviews, port: 9080}]`);
    assert.ok(got.some((i) => /^error spec\.rules\[0\]\.matches\[0\]\.method line 12: one of service or method must be set/.test(i)), got.join('\n'));
  });
});
