import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analysisFindings } from '../../../test/helpers/config.ts';

const findings = (yaml: string): string[] => analysisFindings(yaml, 'IST0149');

// The "JWT claim based routing" task: httpbin in namespace foo, routed on the `groups` claim at
// the ingress gateway (Istio refuses JWT-claim routing in a VirtualService bound to the mesh).
const HTTPBIN = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: foo}
spec:
  hosts: [httpbin.foo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.5, labels: {app: httpbin}}]
`;

function routeOn(match: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: foo}
spec:
  hosts: [httpbin]
  gateways: [istio-system/ingressgateway]
  http:
  - match:
    - ${match}
    route:
    - destination: {host: httpbin}
  - route:
    - destination: {host: httpbin}`;
}

const GROUPS = routeOn('headers: {"@request.auth.claims.groups": {exact: group1}}');

function requestAuthentication(namespace: string): string {
  return `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt-example, namespace: ${namespace}}
spec:
  jwtRules:
  - issuer: testing@secure.istio.io
    jwksUri: https://raw.githubusercontent.com/istio/istio/master/security/tools/jwt/samples/jwks.json`;
}

function config(...docs: string[]): string {
  return [HTTPBIN, ...docs].join('\n---\n');
}

const MESSAGE = "at gateway istio-system/ingressgateway needs a RequestAuthentication for the gateway's workloads (in namespace istio-system); without one no request carries validated claims, so this match never succeeds";

describe('IST0149 JWT claim based routing without RequestAuthentication', () => {
  const cases: { name: string; yaml: string; expect: string[] }[] = [
    {
      name: 'routing on the groups claim with no RequestAuthentication',
      yaml: config(GROUPS),
      expect: [`error spec.http[0].match[0].headers["@request.auth.claims.groups"]: routing on JWT claim "groups" ${MESSAGE}`],
    },
    {
      name: 'a RequestAuthentication in another namespace does not count',
      yaml: config(GROUPS, requestAuthentication('bar')),
      expect: [`error spec.http[0].match[0].headers["@request.auth.claims.groups"]: routing on JWT claim "groups" ${MESSAGE}`],
    },
    {
      name: 'a nested claim in withoutHeaders',
      yaml: config(routeOn('withoutHeaders: {"@request.auth.claims.nested.key1": {exact: valueC}}')),
      expect: [`error spec.http[0].match[0].withoutHeaders["@request.auth.claims.nested.key1"]: routing on JWT claim "nested.key1" ${MESSAGE}`],
    },
    {
      name: "a RequestAuthentication in the VirtualService's namespace does not apply to the gateway's workloads in istio-system",
      yaml: config(GROUPS, requestAuthentication('foo')),
      expect: [`error spec.http[0].match[0].headers["@request.auth.claims.groups"]: routing on JWT claim "groups" ${MESSAGE}`],
    },
    {
      name: "a Gateway named without a namespace is in the VirtualService's namespace, where a RequestAuthentication applies: clean",
      yaml: config(GROUPS.replace('istio-system/ingressgateway', 'foo-gateway'), requestAuthentication('foo')),
      expect: [],
    },
    {
      name: "a Gateway named without a namespace, no RequestAuthentication: the namespaces are the VirtualService's and istio-system",
      yaml: config(routeOn('headers: {"@request.auth.claims[groups]": {exact: group1}}').replace('istio-system/ingressgateway', 'foo-gateway')),
      expect: [
        `error spec.http[0].match[0].headers["@request.auth.claims[groups]"]: routing on JWT claim "[groups]" at gateway foo/foo-gateway needs a RequestAuthentication for the gateway's workloads (in namespace foo or istio-system); without one no request carries validated claims, so this match never succeeds`,
      ],
    },
    {
      name: 'a RequestAuthentication in the root namespace istio-system: clean',
      yaml: config(GROUPS, requestAuthentication('istio-system')),
      expect: [],
    },
    {
      name: 'routing on an ordinary header (end-user): clean',
      yaml: config(routeOn('headers: {end-user: {exact: jason}}')),
      expect: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(findings(c.yaml), c.expect);
    });
  }
});
