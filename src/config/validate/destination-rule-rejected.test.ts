import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { dedent, doc, validateYaml } from '../../../test/helpers/config.ts';

const dr = (spec: string, name = 'reviews', namespace = 'default') => doc('networking.istio.io/v1', 'DestinationRule', name, dedent(spec), namespace);

describe('DestinationRule: rejected rules', () => {
  const cases: { name: string; spec: string; error: RegExp }[] = [
    { name: 'missing host', spec: 'subsets: [{name: v1}]', error: /spec\.host: is required/ },
    { name: 'bad host', spec: 'host: "foo*.com"', error: /spec\.host: invalid host "foo\*\.com"/ },
    { name: 'IP host', spec: 'host: 10.0.0.1', error: /spec\.host: "10\.0\.0\.1" is an IP address/ },
    { name: 'subset without name', spec: 'host: reviews\nsubsets:\n- labels: {version: v1}', error: /spec\.subsets\[0\]\.name: is required/ },
    { name: 'subset name not a DNS label', spec: 'host: reviews\nsubsets:\n- name: V1_old', error: /spec\.subsets\[0\]\.name: "V1_old" is not a valid DNS-1123 label/ },
    { name: 'duplicate subset names', spec: 'host: reviews\nsubsets:\n- name: v1\n- name: v2\n- name: v1', error: /spec\.subsets\[2\]\.name: duplicate subset name "v1" \(first defined at subsets\[0\]\)/ },
    { name: 'bad subset label value', spec: 'host: reviews\nsubsets:\n- name: v1\n  labels: {version: "v1 beta"}', error: /spec\.subsets\[0\]\.labels\.version: invalid label value "v1 beta"/ },
    { name: 'wildcard in subset label', spec: 'host: reviews\nsubsets:\n- name: v1\n  labels: {version: "*"}', error: /spec\.subsets\[0\]\.labels\.version: invalid label value/ },
    { name: 'unknown field with suggestion', spec: 'host: reviews\nsubset: []', error: /spec\.subset: unknown field "subset" \(did you mean "subsets"\?\)/ },
    { name: 'empty trafficPolicy', spec: 'host: reviews\ntrafficPolicy: {}', error: /spec\.trafficPolicy: trafficPolicy must set at least one policy/ },
    { name: 'empty subset trafficPolicy', spec: 'host: reviews\nsubsets:\n- name: v1\n  trafficPolicy: {}', error: /spec\.subsets\[0\]\.trafficPolicy: trafficPolicy must set at least one policy/ },
    // loadBalancer
    { name: 'unknown simple LB', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {simple: LEAST_LATENCY}}', error: /spec\.trafficPolicy\.loadBalancer\.simple: must be one of UNSPECIFIED, LEAST_CONN/ },
    { name: 'simple and consistentHash', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}}', error: /spec\.trafficPolicy\.loadBalancer: only one of simple, consistentHash, backendUtilization may be set/ },
    { name: 'consistentHash without a key', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 1024}}}}', error: /consistentHash: one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName is required/ },
    { name: 'two hash keys', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user, useSourceIp: true}}}', error: /consistentHash: only one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName may be set, got httpHeaderName and useSourceIp/ },
    { name: 'cookie without name', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {ttl: 10s}}}}', error: /consistentHash\.httpCookie\.name: is required/ },
    { name: 'cookie with a negative ttl', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: u, ttl: -1s}}}}', error: /httpCookie\.ttl: must not be negative/ },
    { name: 'duplicate cookie attributes (Istio)', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: u, attributes: [{name: SameSite, value: Strict}, {name: SameSite, value: Lax}]}}}}', error: /httpCookie\.attributes\[1\]\.name: duplicate cookie attribute "SameSite" \(also attributes\[0\]\)/ },
    { name: 'an HTTP/2 keepalive without interval (Istio)', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {http: {http2KeepAlive: {timeout: 5s}}}}', error: /http2KeepAlive\.interval: is required/ },
    { name: 'an HTTP/2 keepalive without timeout (Istio)', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {http: {http2KeepAlive: {interval: 15s}}}}', error: /http2KeepAlive\.timeout: is required/ },
    { name: 'a topology label in zone-aware failoverPriority (Istio)', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {consecutive5xxErrors: 1}, loadBalancer: {zoneAwareLbSetting: {failoverPriority: [topology.kubernetes.io/zone]}}}', error: /zoneAwareLbSetting\.failoverPriority\[0\]: "topology\.kubernetes\.io\/zone" must not be used/ },
    { name: 'simple and backendUtilization', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {simple: RANDOM, backendUtilization: {}}}', error: /only one of simple, consistentHash, backendUtilization may be set/ },
    { name: 'cookie attribute without name', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: u, attributes: [{value: Strict}]}}}}', error: /httpCookie\.attributes\[0\]\.name: is required/ },
    { name: 'ringHash and maglev', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {}, maglev: {tableSize: 7}}}}', error: /only one of ringHash, maglev, minimumRingSize may be set, got ringHash and maglev/ },
    { name: 'deprecated minimumRingSize with ringHash', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 1024, ringHash: {}}}}', error: /only one of ringHash, maglev, minimumRingSize may be set/ },
    { name: 'maglev without tableSize', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {}}}}', error: /maglev\.tableSize: is required/ },
    { name: 'maglev tableSize not prime', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65536}}}}', error: /maglev\.tableSize: must be a prime number, got 65536/ },
    { name: 'maglev tableSize too large', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 5000011}}}}', error: /maglev\.tableSize: must be <= 5000010/ },
    { name: 'locality and zone-aware together', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {localityLbSetting: {enabled: true}, zoneAwareLbSetting: {enabled: true}}}', error: /loadBalancer: only one of localityLbSetting, zoneAwareLbSetting may be set/ },
    { name: 'distribute and failover together', spec: 'host: reviews\ntrafficPolicy:\n  outlierDetection: {consecutive5xxErrors: 1}\n  loadBalancer:\n    localityLbSetting:\n      distribute: [{from: "us-west/*", to: {"us-west/*": 100}}]\n      failover: [{from: us-west, to: us-east}]', error: /localityLbSetting: distribute and failover cannot both be set/ },
    { name: 'distribute weights not adding to 100', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: "us-west/zone1/*", to: {"us-west/zone1/*": 80, "us-west/zone2/*": 10}}]}}}', error: /distribute\[0\]\.to: weights must add up to 100, got 90/ },
    { name: 'distribute weight 0', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: "us-west/*", to: {"us-west/zone1/*": 0, "us-west/zone2/*": 100}}]}}}', error: /to\["us-west\/zone1\/\*"\]: must be >= 1 \(Istio: each locality weight is 1-100\)/ },
    { name: 'distribute weight over 100', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: "us-west/*", to: {"us-west/*": 101}}]}}}', error: /must be <= 100/ },
    { name: 'distribute wildcard in the middle', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: "us-west/*/a", to: {"us-west/*": 100}}]}}}', error: /distribute\[0\]\.from: locality "us-west\/\*\/a": a "\*" wildcard may appear once, at the end/ },
    { name: 'distribute empty zone', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: "us-west//a", to: {"us-west/*": 100}}]}}}', error: /locality "us-west\/\/a" has an empty region, zone or subzone/ },
    { name: 'distribute overlapping from', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: "us-west/*", to: {"us-west/*": 100}}, {from: "us-west/zone1/*", to: {"us-west/*": 100}}]}}}', error: /distribute\[1\]: locality "us-west\/zone1\/\*" overlaps "us-west\/\*"/ },
    { name: 'distribute without to', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: "us-west/*"}]}}}', error: /distribute\[0\]\.to: is required/ },
    { name: 'failover to the same region', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {consecutive5xxErrors: 1}, loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: us-east}]}}}', error: /failover\[0\]\.to: must differ from "from" \(us-east\)/ },
    { name: 'failover with a zone', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {consecutive5xxErrors: 1}, loadBalancer: {localityLbSetting: {failover: [{from: us-east/zone1, to: us-west}]}}}', error: /failover\[0\]\.from: "us-east\/zone1": failover names regions only/ },
    { name: 'failover with a wildcard', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {consecutive5xxErrors: 1}, loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: "*"}]}}}', error: /failover\[0\]\.to: "\*": failover regions cannot contain "\*"/ },
    { name: 'failover with topology failoverPriority', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {consecutive5xxErrors: 1}, loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}], failoverPriority: [topology.kubernetes.io/zone]}}}', error: /failoverPriority: cannot use the locality label "topology.kubernetes.io\/zone" together with failover/ },
    { name: 'bad failoverPriority label', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {consecutive5xxErrors: 1}, loadBalancer: {localityLbSetting: {failoverPriority: ["bad label"]}}}', error: /failoverPriority\[0\]: invalid label key "bad label"/ },
    { name: 'warmup without duration', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {warmup: {minimumPercent: 10}}}', error: /loadBalancer\.warmup\.duration: is required/ },
    { name: 'warmup duration below 1ms', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {warmup: {duration: 0s}}}', error: /warmup\.duration: duration must be >= 1ms/ },
    { name: 'warmup minimumPercent over 100', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {warmup: {duration: 10s, minimumPercent: 120}}}', error: /warmup\.minimumPercent: must be <= 100/ },
    { name: 'warmup aggression below 1', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {warmup: {duration: 10s, aggression: 0.5}}}', error: /warmup\.aggression: must be >= 1 \(Istio: aggression must be at least 1\)/ },
    // connectionPool
    { name: 'empty connectionPool', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {}}', error: /spec\.trafficPolicy\.connectionPool: connectionPool must set tcp or http/ },
    { name: 'negative maxConnections', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {tcp: {maxConnections: -1}}}', error: /tcp\.maxConnections: must be >= 0, got -1/ },
    { name: 'maxConnections above int32', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {tcp: {maxConnections: 4294967295}}}', error: /tcp\.maxConnections: must be <= 2147483647/ },
    { name: 'fractional http1MaxPendingRequests', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {http: {http1MaxPendingRequests: 1.5}}}', error: /http1MaxPendingRequests: must be an integer/ },
    { name: 'negative maxRequestsPerConnection', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: -1}}}', error: /maxRequestsPerConnection: must be >= 0/ },
    { name: 'negative maxRetries', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {http: {maxRetries: -3}}}', error: /http\.maxRetries: must be >= 0/ },
    { name: 'connectTimeout 0s', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {tcp: {connectTimeout: 0s}}}', error: /tcp\.connectTimeout: duration must be >= 1ms/ },
    { name: 'connectTimeout in microseconds', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {tcp: {connectTimeout: 1500us}}}', error: /tcp\.connectTimeout: "1500us" is not a whole number of milliseconds/ },
    { name: 'connectTimeout not a duration', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {tcp: {connectTimeout: 10}}}', error: /tcp\.connectTimeout: must be a string/ },
    { name: 'http idleTimeout 0s', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {http: {idleTimeout: 0s}}}', error: /http\.idleTimeout: duration must be >= 1ms/ },
    { name: 'maxConnectionDuration 0s', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {tcp: {maxConnectionDuration: 0s}}}', error: /tcp\.maxConnectionDuration: duration must be >= 1ms/ },
    { name: 'UPGRADE with useClientProtocol', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}', error: /http\.useClientProtocol: cannot be true when h2UpgradePolicy is UPGRADE/ },
    { name: 'unknown h2UpgradePolicy (still type-checked)', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {http: {h2UpgradePolicy: ALWAYS}}}', error: /h2UpgradePolicy: must be one of DEFAULT, DO_NOT_UPGRADE, UPGRADE/ },
    { name: 'bad tcpKeepalive time (still type-checked)', spec: 'host: reviews\ntrafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {time: soon}}}}', error: /tcpKeepalive\.time: invalid duration "soon"/ },
    // outlierDetection
    { name: 'negative consecutive5xxErrors', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {consecutive5xxErrors: -1}}', error: /outlierDetection\.consecutive5xxErrors: must be >= 0/ },
    { name: 'negative consecutiveGatewayErrors', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {consecutiveGatewayErrors: -2}}', error: /consecutiveGatewayErrors: must be >= 0/ },
    { name: 'local-origin failures without split', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {consecutiveLocalOriginFailures: 5}}', error: /consecutiveLocalOriginFailures: has no effect unless splitExternalLocalOriginErrors is true/ },
    { name: 'interval 0s', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {interval: 0s}}', error: /outlierDetection\.interval: duration must be >= 1ms/ },
    { name: 'baseEjectionTime garbage', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {baseEjectionTime: 30}}', error: /baseEjectionTime: must be a string/ },
    { name: 'maxEjectionPercent over 100', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {maxEjectionPercent: 101}}', error: /maxEjectionPercent: must be <= 100/ },
    { name: 'minHealthPercent negative', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {minHealthPercent: -1}}', error: /minHealthPercent: must be >= 0/ },
    { name: 'error code out of range', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {outlierDetectionHttpErrorCodes: [503, 600]}}', error: /outlierDetectionHttpErrorCodes\[1\]: must be <= 599 \(an HTTP status code\)/ },
    { name: 'error code duplicated', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {outlierDetectionHttpErrorCodes: [503, 503]}}', error: /outlierDetectionHttpErrorCodes\[1\]: duplicates item 0/ },
    // tls
    { name: 'unknown TLS mode', spec: 'host: reviews\ntrafficPolicy: {tls: {mode: PERMISSIVE}}', error: /tls\.mode: must be one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL/ },
    { name: 'ISTIO_MUTUAL with a client certificate', spec: 'host: reviews\ntrafficPolicy: {tls: {mode: ISTIO_MUTUAL, clientCertificate: /etc/certs/c.pem}}', error: /tls\.clientCertificate: must be empty when mode is ISTIO_MUTUAL/ },
    { name: 'ISTIO_MUTUAL with a CA bundle', spec: 'host: reviews\ntrafficPolicy: {tls: {mode: ISTIO_MUTUAL, caCertificates: /etc/certs/ca.pem}}', error: /tls\.caCertificates: must be empty when mode is ISTIO_MUTUAL/ },
    { name: 'ISTIO_MUTUAL with a credentialName', spec: 'host: reviews\ntrafficPolicy: {tls: {mode: ISTIO_MUTUAL, credentialName: cred}}', error: /tls\.credentialName: must be empty when mode is ISTIO_MUTUAL/ },
    { name: 'MUTUAL without a client certificate', spec: 'host: reviews\ntrafficPolicy: {tls: {mode: MUTUAL, privateKey: /k.pem}}', error: /tls\.clientCertificate: is required when mode is MUTUAL/ },
    { name: 'MUTUAL without a private key', spec: 'host: reviews\ntrafficPolicy: {tls: {mode: MUTUAL, clientCertificate: /c.pem}}', error: /tls\.privateKey: is required when mode is MUTUAL/ },
    { name: 'credentialName together with files', spec: 'host: reviews\ntrafficPolicy: {tls: {mode: SIMPLE, credentialName: cred, caCertificates: /ca.pem}}', error: /tls\.caCertificates: cannot be set together with credentialName/ },
    { name: 'insecureSkipVerify with a CA bundle', spec: 'host: reviews\ntrafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}}', error: /tls\.caCertificates: cannot be set when insecureSkipVerify is true/ },
    { name: 'insecureSkipVerify with SANs', spec: 'host: reviews\ntrafficPolicy: {tls: {mode: MUTUAL, clientCertificate: /c, privateKey: /k, insecureSkipVerify: true, subjectAltNames: [a]}}', error: /tls\.subjectAltNames: cannot be set when insecureSkipVerify is true/ },
    // portLevelSettings
    { name: 'port-level policy without port', spec: 'host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - loadBalancer: {simple: RANDOM}', error: /portLevelSettings\[0\]\.port: is required/ },
    { name: 'port-level policy with only a port', spec: 'host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 80}', error: /portLevelSettings\[0\]: a port-level policy must set loadBalancer, connectionPool, outlierDetection or tls/ },
    { name: 'port-level port out of range', spec: 'host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 70000}\n    tls: {mode: SIMPLE}', error: /portLevelSettings\[0\]\.port\.number: must be <= 65535/ },
    { name: 'duplicate port-level ports', spec: 'host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 80}\n    tls: {mode: SIMPLE}\n  - port: {number: 80}\n    loadBalancer: {simple: RANDOM}', error: /portLevelSettings\[1\]\.port\.number: port 80 already has a policy at portLevelSettings\[0\]/ },
    { name: 'retryBudget in port-level settings', spec: 'host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 80}\n    retryBudget: {percent: 10}', error: /portLevelSettings\[0\]\.retryBudget: unknown field "retryBudget"/ },
    { name: 'bad policy inside a port-level block', spec: 'host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 80}\n    outlierDetection: {maxEjectionPercent: 200}', error: /portLevelSettings\[0\]\.outlierDetection\.maxEjectionPercent: must be <= 100/ },
    // retryBudget
    { name: 'retryBudget percent over 100', spec: 'host: reviews\ntrafficPolicy: {retryBudget: {percent: 150}}', error: /retryBudget\.percent: must be <= 100/ },
    { name: 'retryBudget percent as a Percent object', spec: 'host: reviews\ntrafficPolicy: {retryBudget: {percent: {value: 20}}}', error: /retryBudget\.percent: must be a number/ },
    { name: 'retryBudget negative minRetryConcurrency', spec: 'host: reviews\ntrafficPolicy: {retryBudget: {minRetryConcurrency: -1}}', error: /retryBudget\.minRetryConcurrency: must be >= 0/ },
    // tunnel / proxyProtocol (unsupported, still type-checked)
    { name: 'tunnel and proxyProtocol together', spec: 'host: reviews\ntrafficPolicy: {tunnel: {targetHost: example.com, targetPort: 443}, proxyProtocol: {version: V2}}', error: /spec\.trafficPolicy: only one of tunnel, proxyProtocol may be set/ },
    { name: 'tunnel without targetPort', spec: 'host: reviews\ntrafficPolicy: {tunnel: {targetHost: example.com}}', error: /tunnel\.targetPort: is required/ },
    { name: 'tunnel with a bad protocol', spec: 'host: reviews\ntrafficPolicy: {tunnel: {protocol: GET, targetHost: 10.0.0.1, targetPort: 8080}}', error: /tunnel\.protocol: must be one of CONNECT, POST/ },
    { name: 'proxyProtocol bad version', spec: 'host: reviews\ntrafficPolicy: {proxyProtocol: {version: V3}}', error: /proxyProtocol\.version: must be one of V1, V2/ },
    // exportTo / workloadSelector
    { name: 'exportTo ~ in a DestinationRule', spec: 'host: reviews\nexportTo: ["~"]', error: /spec\.exportTo\[0\]: exportTo "~" \(no one\) is allowed only in ServiceEntry/ },
    { name: 'exportTo * with others', spec: 'host: reviews\nexportTo: ["*", bookinfo]', error: /spec\.exportTo: "\*" \(everyone\) cannot be combined with other entries/ },
    { name: 'exportTo . and own namespace', spec: 'host: reviews\nexportTo: [".", default]', error: /spec\.exportTo\[1\]: "default" duplicates item 0: "\." is this resource's namespace \(default\)/ },
    { name: 'exportTo bad namespace', spec: 'host: reviews\nexportTo: [Bad_NS]', error: /spec\.exportTo\[0\]: "Bad_NS" is not a valid DNS-1123 label/ },
    { name: 'workloadSelector exported beyond its namespace', spec: 'host: reviews\nworkloadSelector: {matchLabels: {app: ratings}}\nexportTo: ["*"]', error: /spec\.exportTo: a DestinationRule with a workloadSelector can only be exported to its own namespace/ },
    { name: 'workloadSelector written with labels', spec: 'host: reviews\nworkloadSelector: {labels: {app: ratings}}', error: /spec\.workloadSelector\.labels: unknown field "labels"/ },
    { name: 'workloadSelector with a wildcard value', spec: 'host: reviews\nworkloadSelector: {matchLabels: {app: "*"}}', error: /workloadSelector\.matchLabels\.app: invalid label value "\*"/ },
  ];
  for (const c of cases) {
    it(`rejects ${c.name}`, () => {
      const { errors, resources } = validateYaml(dr(c.spec));
      assert.equal(resources.length, 0, 'the resource must be rejected');
      assert.ok(errors.some((e) => c.error.test(e)), `expected ${c.error} in:\n${errors.join('\n')}`);
    });
  }

  it('prints the file, resource, path and line', () => {
    const { errors } = validateYaml(dr('host: reviews\nsubsets:\n- labels: {version: v1}'));
    assert.match(errors[0] ?? '', /^test\.yaml: DestinationRule default\/reviews: spec\.subsets\[0\]\.name: is required \(line \d+\)$/);
  });

  it('reports every problem, not only the first', () => {
    const { errors } = validateYaml(dr('host: reviews\nsubsets:\n- name: v1\n- name: v1\ntrafficPolicy: {outlierDetection: {maxEjectionPercent: 101}, tls: {mode: MUTUAL}}'));
    assert.ok(errors.length >= 4, errors.join('\n'));
  });
});

describe('DestinationRule: keepalives and useClientProtocol are applied (no warning)', () => {
  it('accepts tcpKeepalive, http2KeepAlive and useClientProtocol without a warning (probes and interval: on a Node that sets them)', () => {
    const { errors, warnings, resources } = validateYaml(dr('host: reviews\ntrafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {time: 30s, interval: 5s, probes: 4}}, http: {http2KeepAlive: {interval: 30s, timeout: 5s}, useClientProtocol: true}}}'));
    assert.deepEqual(errors, []);
    if (Socket.prototype.setKeepAlive.length >= 4) assert.deepEqual(warnings, []);
    else {
      assert.equal(warnings.length, 2);
      assert.ok(warnings.every((w) => /tcpKeepalive\.(probes|interval): not supported by meshlet: .*cannot set a socket's keepalive probe (count|interval) \(Node 24\.19 and later can\)/.test(w)), warnings.join('\n'));
    }
    assert.equal(resources.length, 1);
  });
});

describe('DestinationRule: accepted with warnings', () => {
  it('does not warn about minHealthPercent (Envoy\'s panic threshold, applied)', () => {
    for (const pct of [0, 50]) {
      const { errors, warnings } = validateYaml(dr(`host: reviews\ntrafficPolicy: {outlierDetection: {consecutive5xxErrors: 3, minHealthPercent: ${pct}}}`));
      assert.deepEqual([errors, warnings], [[], []], String(pct));
    }
  });
  const cases: { name: string; spec: string; warning: RegExp }[] = [
    { name: 'tunnel', spec: 'host: reviews\ntrafficPolicy: {tunnel: {protocol: CONNECT, targetHost: proxy.example.com, targetPort: 3128}}', warning: /not supported by meshlet: spec\.trafficPolicy\.tunnel; meshlet routes HTTP and gRPC only/ },
    { name: 'proxyProtocol', spec: 'host: reviews\ntrafficPolicy: {proxyProtocol: {version: V2}}', warning: /not supported by meshlet: spec\.trafficPolicy\.proxyProtocol;/ },
    { name: 'zoneAwareLbSetting', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {zoneAwareLbSetting: {enabled: true, minClusterSize: 6}}}', warning: /not supported by meshlet: spec\.trafficPolicy\.loadBalancer\.zoneAwareLbSetting; .*use localityLbSetting/ },
    { name: 'credentialName', spec: 'host: reviews\ntrafficPolicy: {portLevelSettings: [{port: {number: 443}, tls: {mode: MUTUAL, credentialName: client-credential}}]}', warning: /not supported by meshlet: spec\.trafficPolicy\.portLevelSettings\[0\]\.tls\.credentialName; there are no Kubernetes secrets, so calls that use this setting fail \(never in plaintext\); use clientCertificate\/privateKey\/caCertificates files/ },
    { name: 'deprecated warmupDurationSecs', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 100s}}', warning: /loadBalancer\.warmupDurationSecs: deprecated; use warmup\.duration/ },
    { name: 'deprecated consecutiveErrors', spec: 'host: reviews\ntrafficPolicy: {outlierDetection: {consecutiveErrors: 7, interval: 5m, baseEjectionTime: 15m}}', warning: /outlierDetection\.consecutiveErrors: deprecated; use consecutive5xxErrors/ },
    { name: 'deprecated minimumRingSize', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {httpQueryParameterName: user, minimumRingSize: 1024}}}', warning: /consistentHash\.minimumRingSize: deprecated; use ringHash\.minimumRingSize/ },
    { name: 'deprecated LEAST_CONN', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {simple: LEAST_CONN}}', warning: /loadBalancer\.simple: LEAST_CONN is deprecated; use LEAST_REQUEST/ },
    { name: 'warmup with RANDOM', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {simple: RANDOM, warmup: {duration: 10s}}}', warning: /loadBalancer: warmup applies only to ROUND_ROBIN and LEAST_REQUEST/ },
    { name: 'zone-aware failover without outlierDetection (Istio)', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {zoneAwareLbSetting: {failover: [{from: us-east, to: eu-west}]}}}', warning: /loadBalancer\.zoneAwareLbSetting: failover has no effect without outlierDetection/ },
    { name: 'backendUtilization (a newer Istio field)', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {backendUtilization: {weightUpdatePeriod: 1s, metricNamesForComputingUtilization: [cpu]}}}', warning: /not supported by meshlet: spec\.trafficPolicy\.loadBalancer\.backendUtilization/ },
    { name: 'retryBudget.budgetInterval (a newer Istio field)', spec: 'host: reviews\ntrafficPolicy: {retryBudget: {percent: 20, budgetInterval: 10s}}', warning: /not supported by meshlet: spec\.trafficPolicy\.retryBudget\.budgetInterval/ },
    { name: 'insecureSkipVerify with ISTIO_MUTUAL (no effect: in-mesh mTLS always verifies)', spec: 'host: reviews\ntrafficPolicy: {tls: {mode: ISTIO_MUTUAL, insecureSkipVerify: true}}', warning: /tls\.insecureSkipVerify: has no effect with ISTIO_MUTUAL/ },
    { name: 'failover without outlierDetection', spec: 'host: reviews\ntrafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: us-west}]}}}', warning: /loadBalancer\.localityLbSetting: failover has no effect without outlierDetection/ },
    { name: 'failoverPriority without outlierDetection at port level', spec: 'host: reviews\ntrafficPolicy: {portLevelSettings: [{port: {number: 80}, loadBalancer: {localityLbSetting: {failoverPriority: [topology.istio.io/network]}}}]}', warning: /portLevelSettings\[0\]\.loadBalancer\.localityLbSetting: failover has no effect without outlierDetection/ },
    { name: 'workloadSelector without labels', spec: 'host: reviews\nworkloadSelector: {}', warning: /spec\.workloadSelector: has no matchLabels, so it selects every workload in the namespace/ },
  ];
  for (const c of cases) {
    it(`warns about ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(dr(c.spec));
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
      assert.ok(warnings.some((w) => c.warning.test(w)), `expected ${c.warning} in:\n${warnings.join('\n')}`);
    });
  }

  it('maxConnectionDuration is applied, so it is not warned about', () => {
    const { errors, warnings } = validateYaml(dr('host: reviews\ntrafficPolicy: {connectionPool: {tcp: {maxConnectionDuration: 1h}}}'));
    assert.deepEqual([errors, warnings], [[], []]);
  });

  it('h2UpgradePolicy is applied, so it is not warned about', () => {
    for (const policy of ['UPGRADE', 'DO_NOT_UPGRADE', 'DEFAULT']) {
      const { errors, warnings } = validateYaml(dr(`host: reviews\ntrafficPolicy: {connectionPool: {http: {h2UpgradePolicy: ${policy}}}}`));
      assert.deepEqual([errors, warnings], [[], []], policy);
    }
  });

  it('tags unsupported-field warnings MESHLET0002', () => {
    const { issues } = validateYaml(dr('host: reviews\ntrafficPolicy: {proxyProtocol: {version: V1}}'));
    assert.deepEqual(issues.ofLevel('warning').map((i) => i.code), ['MESHLET0002']);
  });
});
