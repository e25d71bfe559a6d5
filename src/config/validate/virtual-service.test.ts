import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../../test/helpers/config.ts';

const vs = (spec: string, name = 'reviews') => doc('networking.istio.io/v1', 'VirtualService', name, spec);

const ROUTE = `route:
  - destination: {host: reviews, subset: v1}`;

describe('VirtualService validation', () => {
  it('names file, resource and field path: the issue example', () => {
    const { errors } = validateYaml(
      vs(`hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
- route:
  - destination: {host: reviews, subset: v1}
    weight: -1
  - destination: {host: reviews, subset: v2}
    weight: 50`),
      'reviews.yaml',
    );
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0] as string, /^reviews\.yaml: VirtualService default\/reviews: spec\.http\[1\]\.route\[0\]\.weight: must be >= 0, got -1 \(line 13\)$/);
  });

  it('reports every problem at once', () => {
    const { errors } = validateYaml(
      vs(`hosts: [reviews]
http:
- timeout: 3
  retries: {attempts: 3, retryOn: "5xx,bogus", perTryTimeout: 2x}
  route:
  - destination: {host: reviews}
    weight: 10
  - destination: {host: "bad host!"}
    weight: 10`),
    );
    assert.equal(errors.length, 4, errors.join('\n'));
  });

  const invalid: [string, string, RegExp][] = [
    ['no hosts', `http:\n- ${ROUTE}`, /spec.hosts: at least one host is required/],
    ['mesh wildcard host', `hosts: ["*"]\nhttp:\n- ${ROUTE}`, /wildcard host \* is not allowed/],
    ['IP host for mesh', `hosts: [10.0.0.1]\nhttp:\n- ${ROUTE}`, /is an IP address/],
    ['no rules', 'hosts: [reviews]', /http, tcp or tls must be provided/],
    ['rule without action', 'hosts: [reviews]\nhttp:\n- timeout: 1s', /route, redirect, directResponse or delegate is required/],
    ['route and redirect', `hosts: [reviews]\nhttp:\n- redirect: {uri: /x}\n  ${ROUTE}`, /only one of route, redirect/],
    ['redirect with rewrite', 'hosts: [reviews]\nhttp:\n- redirect: {uri: /x}\n  rewrite: {uri: /y}', /rewrite cannot be combined with redirect/],
    ['redirect with fault', 'hosts: [reviews]\nhttp:\n- redirect: {uri: /x}\n  fault: {abort: {httpStatus: 500, percentage: {value: 1}}}', /fault cannot be combined/],
    ['redirect code', 'hosts: [reviews]\nhttp:\n- redirect: {uri: /x, redirectCode: 305}', /redirectCode: must be one of 301, 302, 303, 307, 308/],
    ['redirect scheme', 'hosts: [reviews]\nhttp:\n- redirect: {uri: /x, scheme: ftp}', /scheme must be http or https/],
    ['redirect uri and prefixRewrite', 'hosts: [reviews]\nhttp:\n- redirect: {uri: /x, prefixRewrite: /y}', /only one of uri, prefixRewrite/],
    ['prefixRewrite with exact match', 'hosts: [reviews]\nhttp:\n- match: [{uri: {exact: /a}}]\n  redirect: {prefixRewrite: /y}', /prefixRewrite needs every uri match of the rule to be a prefix match/],
    ['direct response status', 'hosts: [reviews]\nhttp:\n- directResponse: {status: 700}', /status: must be <= 599/],
    ['direct response body oneof', 'hosts: [reviews]\nhttp:\n- directResponse: {status: 200, body: {string: a, bytes: YQ==}}', /only one of string, bytes/],
    ['direct response bytes', 'hosts: [reviews]\nhttp:\n- directResponse: {status: 200, body: {bytes: "not base64!"}}', /must be base64/],
    ['zero total weight', `hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: a}\n    weight: 0\n  - destination: {host: b}\n    weight: 0`, /total weight of the destinations must be > 0/],
    ['destination without host', 'hosts: [reviews]\nhttp:\n- route:\n  - destination: {subset: v1}', /destination.host: is required/],
    ['bad subset name', 'hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: V_1}', /subset: "V_1" is not a valid DNS-1123 label/],
    ['port out of range', 'hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, port: {number: 70000}}', /port.number: must be <= 65535/],
    ['timeout unit', `hosts: [reviews]\nhttp:\n- timeout: 10\n  ${ROUTE}`, /timeout: must be a string/],
    ['timeout syntax', `hosts: [reviews]\nhttp:\n- timeout: 10sec\n  ${ROUTE}`, /invalid duration "10sec"/],
    ['timeout below 1ms', `hosts: [reviews]\nhttp:\n- timeout: 500us\n  ${ROUTE}`, /duration must be >= 1ms/],
    ['retryOn token', `hosts: [reviews]\nhttp:\n- retries: {attempts: 2, retryOn: "5xx,connect-failur"}\n  ${ROUTE}`, /"connect-failur" is not a retry policy/],
    ['retryOn status code', `hosts: [reviews]\nhttp:\n- retries: {attempts: 2, retryOn: "599"}\n  ${ROUTE}`, /"599" is not a known HTTP status code/],
    ['attempts 0 with fields', `hosts: [reviews]\nhttp:\n- retries: {attempts: 0, perTryTimeout: 1s}\n  ${ROUTE}`, /attempts: 0 disables retries/],
    ['negative attempts', `hosts: [reviews]\nhttp:\n- retries: {attempts: -1}\n  ${ROUTE}`, /attempts: must be >= 0/],
    ['fault without kind', `hosts: [reviews]\nhttp:\n- fault: {}\n  ${ROUTE}`, /fault must have a delay, an abort, or both/],
    ['fault percentage', `hosts: [reviews]\nhttp:\n- fault: {abort: {httpStatus: 500, percentage: {value: 101}}}\n  ${ROUTE}`, /percentage.value: must be <= 100/],
    ['fault tiny percentage', `hosts: [reviews]\nhttp:\n- fault: {abort: {httpStatus: 500, percentage: {value: 0.00001}}}\n  ${ROUTE}`, /must be 0 or at least 0.0001/],
    ['fault http status', `hosts: [reviews]\nhttp:\n- fault: {abort: {httpStatus: 100, percentage: {value: 1}}}\n  ${ROUTE}`, /httpStatus: must be >= 200/],
    ['fault grpc status by number', `hosts: [reviews]\nhttp:\n- fault: {abort: {grpcStatus: "14", percentage: {value: 1}}}\n  ${ROUTE}`, /grpcStatus: must be one of OK, CANCELLED/],
    ['fault exponential delay', `hosts: [reviews]\nhttp:\n- fault: {delay: {exponentialDelay: 1s, percentage: {value: 1}}}\n  ${ROUTE}`, /exponentialDelay is not supported/],
    ['mirror and mirrors', `hosts: [reviews]\nhttp:\n- mirror: {host: a}\n  mirrors: [{destination: {host: b}}]\n  ${ROUTE}`, /only one of mirror, mirrors/],
    ['mirrors with mirrorPercentage', `hosts: [reviews]\nhttp:\n- mirrors: [{destination: {host: b}}]\n  mirrorPercentage: {value: 5}\n  ${ROUTE}`, /mirrorPercentage cannot be combined with mirrors/],
    ['empty prefix on a header', `hosts: [reviews]\nhttp:\n- match: [{headers: {x: {prefix: ""}}}]\n  ${ROUTE}`, /prefix must not be empty/],
    ['two kinds in a StringMatch', `hosts: [reviews]\nhttp:\n- match: [{uri: {exact: /a, prefix: /b}}]\n  ${ROUTE}`, /only one of exact, prefix, regex/],
    ['invalid regex', `hosts: [reviews]\nhttp:\n- match: [{uri: {regex: "/a(["}}]\n  ${ROUTE}`, /uri.regex: invalid RE2 regex/],
    ['backreference (not RE2)', `hosts: [reviews]\nhttp:\n- match: [{uri: {regex: "(a)\\\\1"}}]\n  ${ROUTE}`, /invalid RE2 regex/],
    ['lookahead (not RE2)', `hosts: [reviews]\nhttp:\n- match: [{uri: {regex: "(?=a)b"}}]\n  ${ROUTE}`, /invalid RE2 regex/],
    ['huge regex', `hosts: [reviews]\nhttp:\n- match: [{uri: {regex: "${'a'.repeat(1100)}"}}]\n  ${ROUTE}`, /regex is 1100 characters long; the limit is 1024/],
    ['bad header name', `hosts: [reviews]\nhttp:\n- match: [{headers: {"x y": {exact: a}}}]\n  ${ROUTE}`, /invalid header name "x y"/],
    ['bad sourceLabels', `hosts: [reviews]\nhttp:\n- match: [{sourceLabels: {"-bad": x}}]\n  ${ROUTE}`, /invalid label key "-bad"/],
    ['header op pseudo-header', `hosts: [reviews]\nhttp:\n- headers: {request: {set: {":path": /x}}}\n  ${ROUTE}`, /pseudo-header ":path" is not allowed/],
    ['remove Host', `hosts: [reviews]\nhttp:\n- headers: {request: {remove: [host]}}\n  ${ROUTE}`, /Host header cannot be removed/],
    ['Host on a response', `hosts: [reviews]\nhttp:\n- headers: {response: {set: {host: x}}}\n  ${ROUTE}`, /Host header cannot be set on a response/],
    ['authority rewritten twice', `hosts: [reviews]\nhttp:\n- rewrite: {authority: a}\n  headers: {request: {set: {host: b}}}\n  ${ROUTE}`, /authority is rewritten twice/],
    ['empty rewrite', `hosts: [reviews]\nhttp:\n- rewrite: {}\n  ${ROUTE}`, /rewrite must specify uri, uriRegexRewrite or authority/],
    ['rewrite uri and regex', `hosts: [reviews]\nhttp:\n- rewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}\n  ${ROUTE}`, /only one of uri, uriRegexRewrite/],
    ['unknown field with suggestion', `hosts: [reviews]\nhttp:\n- retires: {attempts: 3}\n  ${ROUTE}`, /unknown field "retires" \(did you mean "retries"\?\)/],
    ['wrong type', `hosts: reviews\nhttp:\n- ${ROUTE}`, /spec.hosts: must be a list, got a string/],
    ['exportTo', `hosts: [reviews]\nexportTo: ["Not_A_Namespace"]\nhttp:\n- ${ROUTE}`, /not a valid DNS-1123 label/],
    ['exportTo "*" with others', `hosts: [reviews]\nexportTo: ["*", shop]\nhttp:\n- ${ROUTE}`, /"\*" \(everyone\) cannot be combined/],
    ['exportTo "." and its own namespace', `hosts: [reviews]\nexportTo: [".", default]\nhttp:\n- ${ROUTE}`, /"default" duplicates item 0/],
    ['exportTo "~" outside ServiceEntry', `hosts: [reviews]\nexportTo: ["~"]\nhttp:\n- ${ROUTE}`, /allowed only in ServiceEntry/],
  ];
  for (const [name, spec, expected] of invalid) {
    it(`rejects ${name}`, () => {
      const { errors, resources } = validateYaml(vs(spec));
      assert.equal(resources.length, 0, 'a resource with errors is left out');
      assert.ok(errors.some((e) => expected.test(e)), `expected ${expected} in:\n${errors.join('\n')}`);
    });
  }

  const valid: [string, string][] = [
    ['Bookinfo reviews test-v2', `hosts: [reviews]\nhttp:\n- match:\n  - headers:\n      end-user: {exact: jason}\n  route:\n  - destination: {host: reviews, subset: v2}\n- ${ROUTE}`],
    ['weights not adding to 100', `hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: v1}\n    weight: 1\n  - destination: {host: reviews, subset: v3}\n    weight: 3`],
    ['single destination with weight 0', `hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n    weight: 0`],
    ['every match kind', `hosts: [reviews]\nhttp:\n- match:\n  - uri: {prefix: /api}\n    ignoreUriCase: true\n    method: {exact: GET}\n    scheme: {exact: http}\n    authority: {regex: "reviews(:9080)?"}\n    headers: {x-canary: {}, x-b3: {regex: "*"}}\n    withoutHeaders: {x-skip: {exact: "1"}}\n    queryParams: {debug: {exact: ""}}\n    port: 9080\n    sourceLabels: {app: productpage}\n    sourceNamespace: default\n  ${ROUTE}`],
    ['durations', `hosts: [reviews]\nhttp:\n- timeout: 1.5s\n  retries: {attempts: 3, perTryTimeout: 300ms, retryOn: "5xx,gateway-error,503,retriable-4xx", backoff: 1h}\n  ${ROUTE}`],
    ['zero timeout (disabled)', `hosts: [reviews]\nhttp:\n- timeout: 0s\n  ${ROUTE}`],
    ['attempts 0 alone', `hosts: [reviews]\nhttp:\n- retries: {attempts: 0}\n  ${ROUTE}`],
    ['fault delay and abort', `hosts: [ratings]\nhttp:\n- fault:\n    delay: {fixedDelay: 7s, percentage: {value: 100}}\n    abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.1}}\n  ${ROUTE}`],
    ['redirect', 'hosts: [reviews]\nhttp:\n- match: [{uri: {prefix: /old}}]\n  redirect: {prefixRewrite: /new, redirectCode: 308, derivePort: FROM_REQUEST_PORT}'],
    ['direct response', 'hosts: [reviews]\nhttp:\n- directResponse: {status: 503, body: {string: "down for maintenance"}}\n  headers: {response: {set: {content-type: text/plain}}}'],
    ['mirrors', `hosts: [reviews]\nhttp:\n- mirrors:\n  - destination: {host: reviews, subset: v2}\n    percentage: {value: 10}\n  ${ROUTE}`],
    ['host rewrite via header', `hosts: [reviews]\nhttp:\n- headers: {request: {set: {host: reviews.internal}, add: {x-a: b}, remove: [x-c]}}\n  ${ROUTE}`],
    ['regex rewrite', `hosts: [reviews]\nhttp:\n- rewrite: {uriRegexRewrite: {match: "^/v1/(.*)$", rewrite: "/v2/\\\\1"}}\n  ${ROUTE}`],
    ['FQDN and wildcard hosts', `hosts: [reviews.default.svc.cluster.local, "*.example.com"]\nhttp:\n- ${ROUTE}`],
  ];
  for (const [name, spec] of valid) {
    it(`accepts ${name}`, () => {
      const { errors, resources } = validateYaml(vs(spec));
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
    });
  }

  const warned: [string, string, RegExp][] = [
    ['corsPolicy', `hosts: [reviews]\nhttp:\n- corsPolicy: {allowOrigins: [{exact: "https://a.example"}]}\n  ${ROUTE}`, /not supported by meshlet: spec\.http\[0\]\.corsPolicy/],
    ['tcp routes', 'hosts: [reviews]\ntcp:\n- route: [{destination: {host: reviews}}]', /not supported by meshlet: spec\.tcp/],
    ['gateway-only VirtualService', `hosts: [reviews]\ngateways: [bookinfo-gateway]\nhttp:\n- ${ROUTE}`, /bound only to gateways/],
    ['fault with no percentage', `hosts: [reviews]\nhttp:\n- fault: {abort: {httpStatus: 500}}\n  ${ROUTE}`, /no request is aborted/],
    ['deprecated mirrorPercent', `hosts: [reviews]\nhttp:\n- mirror: {host: reviews}\n  mirrorPercent: 5\n  ${ROUTE}`, /deprecated; use mirrorPercentage/],
    ['JWT claim routing', `hosts: [reviews]\nhttp:\n- match: [{headers: {"@request.auth.claims.group": {exact: admin}}}]\n  ${ROUTE}`, /JWT-claim routing works on Istio gateways only/],
  ];
  for (const [name, spec, expected] of warned) {
    it(`warns about ${name}`, () => {
      const { errors, warnings, resources } = validateYaml(vs(spec));
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
      assert.ok(warnings.some((w) => expected.test(w)), `expected ${expected} in:\n${warnings.join('\n')}`);
    });
  }
});
