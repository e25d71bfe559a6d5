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
    ['mesh wildcard host', `hosts: ["*"]\nhttp:\n- ${ROUTE}`, /wildcard host \* is not allowed/],
    ['no rules', 'hosts: [reviews]', /http, tcp or tls must be provided/],
    ['rule without action', 'hosts: [reviews]\nhttp:\n- timeout: 1s', /route, redirect, directResponse or delegate is required/],
    ['route and redirect', `hosts: [reviews]\nhttp:\n- redirect: {uri: /x}\n  ${ROUTE}`, /route: route cannot be combined with redirect/],
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
    ['empty prefix on a header', `hosts: [reviews]\nhttp:\n- match: [{headers: {x: {prefix: ""}}}]\n  ${ROUTE}`, /prefix must not be empty/],
    ['two kinds in a StringMatch', `hosts: [reviews]\nhttp:\n- match: [{uri: {exact: /a, prefix: /b}}]\n  ${ROUTE}`, /only one of exact, prefix, regex/],
    ['invalid regex', `hosts: [reviews]\nhttp:\n- match: [{uri: {regex: "/a(["}}]\n  ${ROUTE}`, /uri.regex: invalid RE2 regex/],
    ['backreference (not RE2)', `hosts: [reviews]\nhttp:\n- match: [{uri: {regex: "(a)\\\\1"}}]\n  ${ROUTE}`, /invalid RE2 regex/],
    ['lookahead (not RE2)', `hosts: [reviews]\nhttp:\n- match: [{uri: {regex: "(?=a)b"}}]\n  ${ROUTE}`, /invalid RE2 regex/],
    ['huge regex', `hosts: [reviews]\nhttp:\n- match: [{uri: {regex: "${'a'.repeat(1100)}"}}]\n  ${ROUTE}`, /regex is 1100 characters long; the limit is 1024/],
    ['bad header name', `hosts: [reviews]\nhttp:\n- match: [{headers: {"x y": {exact: a}}}]\n  ${ROUTE}`, /invalid header name "x y"/],
    ['bad sourceLabels', `hosts: [reviews]\nhttp:\n- match: [{sourceLabels: {"-bad": x}}]\n  ${ROUTE}`, /invalid label key "-bad"/],
    ['header op pseudo-header', `hosts: [reviews]\nhttp:\n- headers: {request: {set: {":path": /x}}}\n  ${ROUTE}`, /pseudo-header ":path" cannot be set/],
    ['remove Host', `hosts: [reviews]\nhttp:\n- headers: {request: {remove: [host]}}\n  ${ROUTE}`, /Host header cannot be removed/],
    ['Host on a response', `hosts: [reviews]\nhttp:\n- headers: {response: {set: {host: x}}}\n  ${ROUTE}`, /Host header cannot be removed or set on a response/],
    ['authority rewritten twice', `hosts: [reviews]\nhttp:\n- rewrite: {authority: a}\n  headers: {request: {set: {host: b}}}\n  ${ROUTE}`, /authority is rewritten twice/],
    ['empty rewrite', `hosts: [reviews]\nhttp:\n- rewrite: {}\n  ${ROUTE}`, /rewrite must specify uri, uriRegexRewrite or authority/],
    ['rewrite uri and regex', `hosts: [reviews]\nhttp:\n- rewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}\n  ${ROUTE}`, /only one of uri, uriRegexRewrite/],
    ['unknown field with suggestion', `hosts: [reviews]\nhttp:\n- retires: {attempts: 3}\n  ${ROUTE}`, /unknown field "retires" \(did you mean "retries"\?\)/],
    ['wrong type', `hosts: reviews\nhttp:\n- ${ROUTE}`, /spec.hosts: must be a list, got a string/],
    ['exportTo', `hosts: [reviews]\nexportTo: ["Not_A_Namespace"]\nhttp:\n- ${ROUTE}`, /not a valid DNS-1123 label/],
    ['exportTo "*" with others', `hosts: [reviews]\nexportTo: ["*", shop]\nhttp:\n- ${ROUTE}`, /"\*" \(everyone\) cannot be combined/],
    ['exportTo "." and its own namespace', `hosts: [reviews]\nexportTo: [".", default]\nhttp:\n- ${ROUTE}`, /"default" duplicates item 0/],
    ['exportTo "~" outside ServiceEntry', `hosts: [reviews]\nexportTo: ["~"]\nhttp:\n- ${ROUTE}`, /allowed only in ServiceEntry/],
    // Istio's rules that meshlet once did not apply (pkg/config/validation, commit 86c9f01f).
    ['a delegate with gateways', `gateways: [mesh]\nhttp:\n- ${ROUTE}`, /a delegate VirtualService \(one without hosts\) must not have gateways/],
    ['a delegate with TCP routes', 'tcp:\n- route: [{destination: {host: reviews}}]', /must not have TCP routes/],
    ['a delegate that delegates again', 'http:\n- delegate: {name: other}', /cannot delegate again/],
    ['a root rule with a route too', `hosts: [reviews]\nhttp:\n- delegate: {name: reviews-child}\n  ${ROUTE}`, /a rule with delegate must not have route/],
    ['overlapping wildcard hosts', `hosts: ["*.foo.bar", "*.bar"]\nhttp:\n- ${ROUTE}`, /duplicate hosts in one VirtualService: "\*\.foo\.bar" and "\*\.bar" overlap/],
    ['a host and a wildcard covering it', `hosts: [a.example.com, "*.example.com"]\nhttp:\n- ${ROUTE}`, /duplicate hosts/],
    ['a wildcard inside a host', `hosts: ["foo.*.com"]\nhttp:\n- ${ROUTE}`, /a wildcard is allowed only at the start of the first label/],
    ['a malformed gateway name', `hosts: [reviews]\ngateways: ["b@dgateway"]\nhttp:\n- ${ROUTE}`, /invalid gateway name "b@dgateway"/],
    ['a gateway namespace wildcard', `hosts: [reviews]\ngateways: ["ns1/*"]\nhttp:\n- ${ROUTE}`, /invalid gateway name "ns1\/\*": name/],
    ['a malformed match gateway', `hosts: [reviews]\nhttp:\n- match: [{gateways: ["*/gw"]}]\n  ${ROUTE}`, /invalid gateway name "\*\/gw": namespace/],
    ['JWT-claim routing on the mesh', `hosts: [reviews]\nhttp:\n- match: [{headers: {"@request.auth.claims.group": {exact: admin}}}]\n  ${ROUTE}`, /JWT claim based routing is only supported on gateways/],
    ['JWT-claim routing on mesh and a gateway', `hosts: [reviews]\ngateways: [mesh, istio-system/gw]\nhttp:\n- match: [{withoutHeaders: {"@request.auth.claims[group]": {exact: admin}}}]\n  ${ROUTE}`, /JWT claim based routing is only supported on gateways/],
    ['a sub-millisecond timeout', `hosts: [reviews]\nhttp:\n- timeout: 1.0005s\n  ${ROUTE}`, /not a whole number of milliseconds/],
    ['a zero timeout (Istio: must be >= 1ms)', `hosts: [reviews]\nhttp:\n- timeout: 0s\n  ${ROUTE}`, /duration must be >= 1ms/],
    ['a sub-millisecond fault delay', `hosts: [reviews]\nhttp:\n- fault: {delay: {fixedDelay: 3.000000042s, percentage: {value: 5}}}\n  ${ROUTE}`, /not a whole number of milliseconds/],
    ['a sub-millisecond perTryTimeout', `hosts: [reviews]\nhttp:\n- retries: {attempts: 3, perTryTimeout: 2.000000001s}\n  ${ROUTE}`, /not a whole number of milliseconds/],
    ['an empty redirect', 'hosts: [reviews]\nhttp:\n- redirect: {}', /redirect must specify uri, prefixRewrite, authority, scheme or port/],
    // Envoy's RedirectAction and RouteAction refuse NUL/CR/LF in these (HTTP_HEADER_VALUE); Istio passes them on.
    ['a CR/LF in redirect.authority', 'hosts: [reviews]\nhttp:\n- redirect: {authority: "evil.example\\r\\nset-cookie: a=b"}', /redirect\.authority: .* has a NUL, CR or LF/],
    ['a LF in redirect.uri', 'hosts: [reviews]\nhttp:\n- redirect: {uri: "/a\\nb"}', /redirect\.uri: .* has a NUL, CR or LF/],
    ['a CR in redirect.prefixRewrite', 'hosts: [reviews]\nhttp:\n- match: [{uri: {prefix: /a}}]\n  redirect: {prefixRewrite: "/b\\r"}', /redirect\.prefixRewrite: .* has a NUL, CR or LF/],
    ['a CR/LF in rewrite.authority', `hosts: [reviews]\nhttp:\n- rewrite: {authority: "a\\r\\nx-injected: 1"}\n  ${ROUTE}`, /rewrite\.authority: .* has a NUL, CR or LF/],
    ['a NUL in rewrite.uri', `hosts: [reviews]\nhttp:\n- rewrite: {uri: "/a\\0"}\n  ${ROUTE}`, /rewrite\.uri: .* has a NUL, CR or LF/],
    ['a LF in uriRegexRewrite.rewrite', `hosts: [reviews]\nhttp:\n- rewrite: {uriRegexRewrite: {match: "^/a", rewrite: "/b\\n"}}\n  ${ROUTE}`, /uriRegexRewrite\.rewrite: .* has a NUL, CR or LF/],
    ['regex "*" in a header match', `hosts: [reviews]\nhttp:\n- match: [{headers: {x-b3: {regex: "*"}}}]\n  ${ROUTE}`, /for "is present" write \{\}/],
    ['an empty regex', `hosts: [reviews]\nhttp:\n- match: [{method: {regex: ""}}]\n  ${ROUTE}`, /method.regex: regex must not be empty/],
    ['an unknown pseudo-header match', `hosts: [reviews]\nhttp:\n- match: [{headers: {":foo": {exact: a}}}]\n  ${ROUTE}`, /":foo" is not a pseudo-header/],
    ['a header name with a quote', `hosts: [reviews]\nhttp:\n- match: [{headers: {'a"b': {exact: a}}}]\n  ${ROUTE}`, /invalid header name "a\\?"b"/],
    ['an unescaped % in a header value', `hosts: [reviews]\nhttp:\n- headers: {response: {add: {x-p: "abcd%oijasodifj"}}}\n  ${ROUTE}`, /unterminated "%" formatter/],
    ['a trailing % in a header value', `hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n    headers: {request: {set: {x-p: "%START_TIME%%"}}}`, /ends with an unescaped "%"/],
    ['an empty CORS header', `hosts: [reviews]\nhttp:\n- corsPolicy: {exposeHeaders: [""]}\n  ${ROUTE}`, /header name must not be empty/],
    ['an empty CORS origin', `hosts: [reviews]\nhttp:\n- corsPolicy: {allowOrigins: [{exact: ""}]}\n  ${ROUTE}`, /an allowed origin must have a non-empty exact, prefix or regex/],
    ['a fractional CORS maxAge', `hosts: [reviews]\nhttp:\n- corsPolicy: {maxAge: 1.5s}\n  ${ROUTE}`, /maxAge is accurate only to whole seconds/],
    ['a TCP rule without a route', 'hosts: [reviews]\ntcp:\n- match: [{port: 999}]', /TCP route is required/],
    ['a TLS rule without a route', 'hosts: [reviews]\ntls:\n- match: [{port: 999, sniHosts: [reviews]}]', /TLS route is required/],
    ['a bare * TCP destination', 'hosts: [reviews]\ntcp:\n- route: [{destination: {host: "*"}}]', /a bare "\*" is not a destination host/],
    ['TCP weights adding up to 0', 'hosts: [reviews]\ntcp:\n- route:\n  - destination: {host: a}\n    weight: 0\n  - destination: {host: b}\n    weight: 0', /total weight of the destinations must be > 0/],
    ['an SNI host outside the hosts', 'hosts: [reviews]\ntls:\n- match: [{sniHosts: [ratings]}]\n  route: [{destination: {host: ratings}}]', /SNI host "ratings" is not covered by any host/],
    ['mirror_percent and mirrorPercent both', `hosts: [reviews]\nhttp:\n- mirror: {host: a}\n  mirrorPercent: 5\n  mirror_percent: 5\n  ${ROUTE}`, /"mirror_percent" is another spelling of "mirrorPercent"; give only one/],
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
    ['every match kind', `hosts: [reviews]\nhttp:\n- match:\n  - uri: {prefix: /api}\n    ignoreUriCase: true\n    method: {exact: GET}\n    scheme: {exact: http}\n    authority: {regex: "reviews(:9080)?"}\n    headers: {x-canary: {}, ":method": {exact: GET}, "x.odd~token!": {exact: a}}\n    withoutHeaders: {x-skip: {exact: "1"}, x-b3: {regex: "*"}}\n    queryParams: {debug: {exact: ""}}\n    port: 9080\n    sourceLabels: {app: productpage}\n    sourceNamespace: default\n  ${ROUTE}`],
    ['durations', `hosts: [reviews]\nhttp:\n- timeout: 1.5s\n  retries: {attempts: 3, perTryTimeout: 300ms, retryOn: "5xx,gateway-error,503,retriable-4xx", backoff: 1h}\n  ${ROUTE}`],
    ['attempts 0 alone', `hosts: [reviews]\nhttp:\n- retries: {attempts: 0}\n  ${ROUTE}`],
    ['fault delay and abort', `hosts: [ratings]\nhttp:\n- fault:\n    delay: {fixedDelay: 7s, percentage: {value: 100}}\n    abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.1}}\n  ${ROUTE}`],
    ['redirect', 'hosts: [reviews]\nhttp:\n- match: [{uri: {prefix: /old}}]\n  redirect: {prefixRewrite: /new, redirectCode: 308, derivePort: FROM_REQUEST_PORT}'],
    ['direct response', 'hosts: [reviews]\nhttp:\n- directResponse: {status: 503, body: {string: "down for maintenance"}}\n  headers: {response: {set: {content-type: text/plain}}}'],
    ['mirrors', `hosts: [reviews]\nhttp:\n- mirrors:\n  - destination: {host: reviews, subset: v2}\n    percentage: {value: 10}\n  ${ROUTE}`],
    ['host rewrite via header', `hosts: [reviews]\nhttp:\n- headers: {request: {set: {host: reviews.internal}, add: {x-a: b}, remove: [x-c]}}\n  ${ROUTE}`],
    ['regex rewrite', `hosts: [reviews]\nhttp:\n- rewrite: {uriRegexRewrite: {match: "^/v1/(.*)$", rewrite: "/v2/\\\\1"}}\n  ${ROUTE}`],
    ['FQDN and wildcard hosts', `hosts: [reviews.default.svc.cluster.local, "*.example.com"]\nhttp:\n- ${ROUTE}`],
    // Accepted by Istio (pkg/config/validation), once refused by meshlet.
    ['a delegate (no hosts)', `http:\n- match: [{sourceNamespace: test}]\n  ${ROUTE}`],
    ['a root rule with a delegate', 'hosts: [reviews]\nhttp:\n- match: [{uri: {prefix: /api}}]\n  delegate: {name: reviews-api, namespace: team-a}'],
    ['partial wildcard hosts', `hosts: ["*foo.example.com", "*-bar.example.org"]\nhttp:\n- route:\n  - destination: {host: "*-x.example.com"}`],
    ['an IP address host', `hosts: [10.0.0.1]\nhttp:\n- ${ROUTE}`],
    ['a trailing-dot host', `hosts: [reviews.example.com.]\nhttp:\n- ${ROUTE}`],
    ['pseudo-header and token header matches', `hosts: [reviews]\nhttp:\n- match: [{headers: {":authority": {prefix: reviews}, "funky!$#_": {exact: a}}}]\n  ${ROUTE}`],
    ['escaped % and formatters in header values', `hosts: [reviews]\nhttp:\n- headers: {response: {set: {x-a: "100%%", x-b: "%DOWNSTREAM_PEER_CERT_V_END(%b %d %H:%M:%S %Y %Z)%"}}}\n  ${ROUTE}`],
    ['retries off with a backoff', `hosts: [reviews]\nhttp:\n- retries: {attempts: 0, backoff: 25ms, retryIgnorePreviousHosts: true}\n  ${ROUTE}`],
    ['an empty fault percentage (0%)', `hosts: [reviews]\nhttp:\n- fault: {abort: {httpStatus: 503, percentage: {}}}\n  ${ROUTE}`],
    ['the snake_case mirror_percent (in Istio\'s CRD)', `hosts: [reviews]\nhttp:\n- mirror: {host: reviews}\n  mirror_percent: 5\n  ${ROUTE}`],
    ['a gateway-bound SNI host from AUTO_PASSTHROUGH', 'hosts: ["outbound_.15010_._.istiod.istio-system.svc.cluster.local"]\ngateways: [ns1/gateway]\ntls:\n- match: [{sniHosts: ["outbound_.15010_._.istiod.istio-system.svc.cluster.local"]}]\n  route: [{destination: {host: istiod.istio-system.svc.cluster.local}}]'],
    ['CORS maxAge in hours and a * method', `hosts: [reviews]\nhttp:\n- corsPolicy: {maxAge: 24h, allowMethods: ["*"], allowHeaders: ["*"]}\n  ${ROUTE}`],
    // Istio's proto: an empty retryOn is unset (ValidateHTTPRetry skips it, ConvertPolicy keeps the default conditions).
    ['an empty retryOn', `hosts: [reviews]\nhttp:\n- retries: {attempts: 2, retryOn: ""}\n  ${ROUTE}`],
    // Istio's DNS-1123 labels admit upper case (TestSidecarOutboundHTTPRouteConfigWithDuplicateHosts routes Test-duplicate-domains…).
    ['upper-case letters in hosts', `hosts: [Test-duplicate-domains.default.svc.cluster.local, "*.Example.com"]\nhttp:\n- route:\n  - destination: {host: Reviews.Default.svc.cluster.local}`],
  ];
  for (const [name, spec] of valid) {
    it(`accepts ${name}`, () => {
      const { errors, resources } = validateYaml(vs(spec));
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
    });
  }

  const warned: [string, string, RegExp][] = [
    ['tcp routes', 'hosts: [reviews]\ntcp:\n- route: [{destination: {host: reviews}}]', /not supported by meshlet: spec\.tcp/],
    ['gateway-only VirtualService', `hosts: [reviews]\ngateways: [bookinfo-gateway]\nhttp:\n- ${ROUTE}`, /bound only to gateways/],
    ['fault with no percentage', `hosts: [reviews]\nhttp:\n- fault: {abort: {httpStatus: 500}}\n  ${ROUTE}`, /no request is aborted/],
    ['deprecated mirrorPercent', `hosts: [reviews]\nhttp:\n- mirror: {host: reviews}\n  mirrorPercent: 5\n  ${ROUTE}`, /deprecated; use mirrorPercentage/],
    ['mirrorPercentage with mirrors', `hosts: [reviews]\nhttp:\n- mirrors: [{destination: {host: b}}]\n  mirrorPercentage: {value: 5}\n  ${ROUTE}`, /mirrorPercentage: applies to mirror only/],
    ['an abort without a status', `hosts: [reviews]\nhttp:\n- fault: {abort: {percentage: {value: 5}}}\n  ${ROUTE}`, /abort has no httpStatus or grpcStatus: no request is aborted/],
    ['an IP address as an SNI host', 'hosts: [reviews]\ntls:\n- match: [{sniHosts: [1.1.1.1]}]\n  route: [{destination: {host: reviews}}]', /an IP address: using one as an SNI host goes against the SNI spec/],
    ['an Envoy header formatter', `hosts: [reviews]\nhttp:\n- headers: {request: {set: {x-host: "%HOSTNAME%"}}}\n  ${ROUTE}`, /not supported by meshlet: Envoy header formatters such as %HOSTNAME% are sent as written/],
    ['retryRemoteLocalities (Envoy\'s previous_priorities; not applied)', `hosts: [reviews]\nhttp:\n- retries: {attempts: 2, retryRemoteLocalities: true}\n  ${ROUTE}`, /not supported by meshlet: spec\.http\[0\]\.retries\.retryRemoteLocalities; /],
    ['retryOn items with spaces (Istio refuses them, meshlet trims)', `hosts: [reviews]\nhttp:\n- retries: {attempts: 2, retryOn: "5xx, reset"}\n  ${ROUTE}`, /" reset" has spaces around it: Istio refuses this retryOn/],
    ['a legacy gateway name', `hosts: [reviews]\ngateways: [mesh, gateway.istio-system]\nhttp:\n- ${ROUTE}`, /legacy <name>.<namespace> form; write "istio-system\/gateway"/],
  ];
  it('applies a corsPolicy: no warning (the calling mesh answers preflights and sets the CORS headers)', () => {
    const { errors, warnings } = validateYaml(vs(`hosts: [reviews]\nhttp:\n- corsPolicy: {allowOrigins: [{exact: "https://a.example"}], unmatchedPreflights: IGNORE}\n  ${ROUTE}`));
    assert.deepEqual([errors, warnings], [[], []]);
  });
  for (const [name, spec, expected] of warned) {
    it(`warns about ${name}`, () => {
      const { errors, warnings, resources } = validateYaml(vs(spec));
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
      assert.ok(warnings.some((w) => expected.test(w)), `expected ${expected} in:\n${warnings.join('\n')}`);
    });
  }
});
