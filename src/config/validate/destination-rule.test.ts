import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dedent, doc, validateYaml } from '../../../test/helpers/config.ts';
import type { DestinationRuleSpec } from '../types/networking.ts';

const dr = (spec: string, name = 'reviews', namespace = 'default') => doc('networking.istio.io/v1', 'DestinationRule', name, dedent(spec), namespace);

describe('DestinationRule: valid rules', () => {
  const cases: { name: string; spec: string }[] = [
    {
      name: 'Bookinfo destination-rule-all: reviews subsets',
      spec: `
        host: reviews
        subsets:
        - name: v1
          labels:
            version: v1
        - name: v2
          labels:
            version: v2
        - name: v3
          labels:
            version: v3`,
    },
    {
      name: 'Bookinfo destination-rule-all: ratings subsets incl. v2-mysql-vm',
      spec: `
        host: ratings
        subsets:
        - name: v1
          labels: {version: v1}
        - name: v2
          labels: {version: v2}
        - name: v2-mysql
          labels: {version: v2-mysql}
        - name: v2-mysql-vm
          labels: {version: v2-mysql-vm}`,
    },
    {
      name: 'Bookinfo destination-rule-all-mtls: ISTIO_MUTUAL',
      spec: `
        host: productpage
        trafficPolicy:
          tls:
            mode: ISTIO_MUTUAL
        subsets:
        - name: v1
          labels:
            version: v1`,
    },
    {
      name: 'circuit-breaking task (httpbin)',
      spec: `
        host: httpbin
        trafficPolicy:
          connectionPool:
            tcp:
              maxConnections: 1
            http:
              http1MaxPendingRequests: 1
              maxRequestsPerConnection: 1
          outlierDetection:
            consecutive5xxErrors: 1
            interval: 1s
            baseEjectionTime: 3m
            maxEjectionPercent: 100`,
    },
    {
      name: 'locality failover task',
      spec: `
        host: helloworld.sample.svc.cluster.local
        trafficPolicy:
          connectionPool:
            http:
              maxRequestsPerConnection: 1
          loadBalancer:
            simple: ROUND_ROBIN
            localityLbSetting:
              enabled: true
              failover:
                - from: region1
                  to: region2
          outlierDetection:
            consecutive5xxErrors: 1
            interval: 1s
            baseEjectionTime: 1m`,
    },
    {
      name: 'locality weighted distribution task',
      spec: `
        host: helloworld.sample.svc.cluster.local
        trafficPolicy:
          loadBalancer:
            localityLbSetting:
              enabled: true
              distribute:
              - from: region1/zone1/*
                to:
                  "region1/zone1/*": 70
                  "region1/zone2/*": 20
                  "region3/zone4/*": 10
          outlierDetection:
            consecutive5xxErrors: 100
            interval: 1s
            baseEjectionTime: 1m`,
    },
    {
      name: 'failoverPriority with labels and key=value',
      spec: `
        host: helloworld
        trafficPolicy:
          loadBalancer:
            localityLbSetting:
              failoverPriority:
              - topology.istio.io/network
              - topology.kubernetes.io/region
              - version=v1
          outlierDetection: {consecutive5xxErrors: 3}`,
    },
    {
      name: 'egress TLS origination per port (SIMPLE)',
      spec: `
        host: edition.cnn.com
        trafficPolicy:
          portLevelSettings:
          - port:
              number: 443
            tls:
              mode: SIMPLE`,
    },
    {
      name: 'mutual TLS origination with files',
      spec: `
        host: my-nginx.mesh-external.svc.cluster.local
        trafficPolicy:
          loadBalancer:
            simple: ROUND_ROBIN
          portLevelSettings:
          - port:
              number: 443
            tls:
              mode: MUTUAL
              clientCertificate: /etc/nginx-client-certs/tls.crt
              privateKey: /etc/nginx-client-certs/tls.key
              caCertificates: /etc/nginx-ca-certs/example.com.crt
              sni: my-nginx.mesh-external.svc.cluster.local
              subjectAltNames: [my-nginx.mesh-external.svc.cluster.local]`,
    },
    {
      name: 'sticky sessions with a session cookie',
      spec: `
        host: ratings.prod.svc.cluster.local
        trafficPolicy:
          loadBalancer:
            consistentHash:
              httpCookie:
                name: user
                ttl: 0s
                path: /
                attributes:
                - name: SameSite
                  value: Strict`,
    },
    {
      name: 'consistent hash with maglev and header key',
      spec: `
        host: reviews
        trafficPolicy:
          loadBalancer:
            consistentHash:
              httpHeaderName: x-user
              maglev: {tableSize: 65537}`,
    },
    {
      name: 'consistent hash with ring hash and source IP',
      spec: `
        host: reviews
        trafficPolicy:
          loadBalancer:
            consistentHash:
              useSourceIp: true
              ringHash: {minimumRingSize: 1024}`,
    },
    {
      name: 'warmup, retry budget and per-subset policy',
      spec: `
        host: reviews.default.svc.cluster.local
        trafficPolicy:
          loadBalancer:
            simple: LEAST_REQUEST
            warmup: {duration: 30s, minimumPercent: 10, aggression: 1.5}
          retryBudget: {percent: 25.5, minRetryConcurrency: 3}
          connectionPool:
            tcp: {connectTimeout: 250ms, idleTimeout: 0s}
            http: {idleTimeout: 30s, maxRetries: 3, http2MaxRequests: 1000, maxConcurrentStreams: 100}
        subsets:
        - name: testversion
          labels: {version: v3}
          trafficPolicy:
            loadBalancer: {simple: ROUND_ROBIN}`,
    },
    {
      name: 'outlier detection with split local-origin errors and status codes',
      spec: `
        host: reviews
        trafficPolicy:
          outlierDetection:
            splitExternalLocalOriginErrors: true
            consecutiveLocalOriginFailures: 3
            consecutiveGatewayErrors: 2
            minHealthPercent: 0
            outlierDetectionHttpErrorCodes: [500, 503]`,
    },
    {
      name: 'wildcard host, exportTo',
      spec: `
        host: "*.foo.com"
        exportTo: [".", istio-system]
        trafficPolicy:
          tls: {mode: SIMPLE}`,
    },
    {
      name: 'workloadSelector with matchLabels, exported to its own namespace',
      spec: `
        host: example.com
        exportTo: [default]
        workloadSelector:
          matchLabels:
            app: ratings
        trafficPolicy:
          loadBalancer:
            simple: ROUND_ROBIN`,
    },
  ];
  for (const c of cases) {
    it(`accepts ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(dr(c.spec));
      assert.deepEqual(errors, []);
      // TLS origination is accepted, validated and applied: no notice.
      assert.deepEqual(warnings, []);
      assert.equal(resources.length, 1);
    });
  }

  it('TLS blocks at every level are accepted without a notice (meshlet applies them)', () => {
    const { issues } = validateYaml(dr('host: reviews\ntrafficPolicy:\n  tls: {mode: ISTIO_MUTUAL}\n  portLevelSettings:\n  - port: {number: 443}\n    tls: {mode: SIMPLE}\nsubsets:\n- name: v1\n  labels: {version: v1}\n  trafficPolicy: {tls: {mode: DISABLE}}'));
    assert.deepEqual(issues.all.map(String), []);
  });

  it('returns the typed spec, with the matchLabels selector Istio uses', () => {
    const { resources } = validateYaml(dr(cases.at(-1)?.spec ?? ''));
    const spec = resources[0]?.spec as DestinationRuleSpec;
    assert.deepEqual(spec.workloadSelector, { matchLabels: { app: 'ratings' } });
    assert.equal(spec.trafficPolicy?.loadBalancer?.simple, 'ROUND_ROBIN');
  });
});
