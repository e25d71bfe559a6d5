import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dedent, doc, validateYaml } from '../../../test/helpers/config.ts';
import type { ServiceEntrySpec } from '../types/networking.ts';

const se = (spec: string, name = 'external-svc') => doc('networking.istio.io/v1', 'ServiceEntry', name, dedent(spec));

describe('ServiceEntry: valid entries', () => {
  const cases: { name: string; spec: string }[] = [
    {
      name: 'egress to httpbin.org over HTTP (egress task)',
      spec: `
        hosts:
        - httpbin.org
        ports:
        - number: 80
          name: http-port
          protocol: HTTP
        resolution: DNS
        location: MESH_EXTERNAL`,
    },
    {
      name: 'wildcard HTTPS hosts with resolution NONE',
      spec: `
        hosts:
        - "*.wikipedia.org"
        ports:
        - number: 443
          name: https
          protocol: HTTPS
        resolution: NONE`,
    },
    {
      name: 'a VM service selected by labels (virtual machine task)',
      spec: `
        hosts:
        - details.bookinfo.com
        location: MESH_INTERNAL
        ports:
        - number: 80
          name: http
          protocol: HTTP
          targetPort: 8080
        resolution: STATIC
        workloadSelector:
          labels:
            app: details-legacy`,
    },
    {
      name: 'static endpoints with ports, labels, locality and weight',
      spec: `
        hosts:
        - my-svc.internal
        location: MESH_INTERNAL
        ports:
        - number: 8080
          name: http
          protocol: HTTP
        - number: 9090
          name: grpc
          protocol: GRPC
        resolution: STATIC
        endpoints:
        - address: 10.1.1.1
          ports: {http: 8081, grpc: 9091}
          labels: {version: v1}
        - address: "2001:db8::2"
          locality: us-east1/zone-b
          weight: 2
          serviceAccount: my-svc`,
    },
    {
      name: 'DNS endpoints per region (service-entry reference)',
      spec: `
        hosts:
        - foo.bar.com
        location: MESH_EXTERNAL
        ports:
        - number: 80
          name: http
          protocol: HTTP
        resolution: DNS
        endpoints:
        - address: us.foo.bar.com
          ports:
            http: 8080
        - address: uk.foo.bar.com
          ports:
            http: 9080`,
    },
    {
      name: 'a unix domain socket endpoint',
      spec: `
        hosts:
        - unix.example.com
        ports:
        - number: 80
          name: http
          protocol: HTTP
        resolution: STATIC
        endpoints:
        - address: unix:///var/run/example/socket`,
    },
    {
      name: 'DNS_ROUND_ROBIN with one endpoint',
      spec: `
        hosts: [api.example.com]
        ports: [{number: 443, name: https, protocol: HTTPS}]
        resolution: DNS_ROUND_ROBIN
        endpoints: [{address: lb.example.com}]`,
    },
    {
      name: 'DYNAMIC_DNS for wildcard hosts',
      spec: `
        hosts: ["*.example.com"]
        ports:
        - {number: 80, name: http, protocol: HTTP}
        - {number: 9090, name: grpc, protocol: GRPC}
        resolution: DYNAMIC_DNS`,
    },
    {
      name: 'several hosts over HTTPS with DNS',
      spec: `
        hosts: [api.dropboxapi.com, www.dropbox.com]
        ports: [{number: 443, name: https, protocol: HTTPS}]
        resolution: DNS`,
    },
    {
      name: 'lower-case protocols, subjectAltNames and exportTo ~',
      spec: `
        hosts: [payments.internal.example.com]
        ports:
        - {number: 8080, name: http, protocol: http}
        - {number: 8443, name: grpc-tls, protocol: grpc}
        resolution: DNS
        subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/payments"]
        exportTo: ["~"]`,
    },
    { name: 'only hosts (defaults: NONE, MESH_EXTERNAL)', spec: 'hosts: [example.com]' },
    { name: 'a workloadSelector with DNS (the selected workloads are the endpoints, as in Istio)', spec: 'hosts: [example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: DNS\nworkloadSelector: {labels: {app: a}}' },
    { name: 'a partial wildcard with DYNAMIC_DNS', spec: 'hosts: ["*example.com"]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: DYNAMIC_DNS' },
  ];
  for (const c of cases) {
    it(`accepts ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(se(c.spec));
      assert.deepEqual(errors, []);
      assert.deepEqual(warnings, []);
      assert.equal(resources.length, 1);
    });
  }

  it('keeps the protocol as written', () => {
    const { resources } = validateYaml(se(cases[9]?.spec ?? ''));
    const spec = resources[0]?.spec as ServiceEntrySpec;
    assert.deepEqual(spec.ports?.map((p) => p.protocol), ['http', 'grpc']);
  });
});

describe('ServiceEntry: rejected entries', () => {
  const cases: { name: string; spec: string; error: RegExp }[] = [
    { name: 'no hosts', spec: 'ports: [{number: 80, name: http}]', error: /spec\.hosts: is required/ },
    { name: 'empty hosts', spec: 'hosts: []', error: /spec\.hosts: must have at least one item/ },
    { name: 'more than 256 hosts', spec: `hosts: [${Array.from({ length: 257 }, (_, i) => `h${i}.example.com`).join(', ')}]`, error: /spec\.hosts: must have at most 256 items, got 257/ },
    { name: 'a bare * host', spec: 'hosts: ["*"]', error: /spec\.hosts\[0\]: a bare "\*" host is not allowed in a ServiceEntry/ },
    { name: 'a partial wildcard host', spec: 'hosts: ["foo*.example.com"]', error: /spec\.hosts\[0\]: invalid host "foo\*\.example\.com"/ },
    { name: 'an IP as host', spec: 'hosts: [10.0.0.1]', error: /spec\.hosts\[0\]: "10\.0\.0\.1" is an IP address/ },
    // addresses
    { name: 'a bad address', spec: 'hosts: [db.example.com]\naddresses: [10.0.0.300]', error: /spec\.addresses\[0\]: bad IP address "10\.0\.0\.300"/ },
    { name: 'an address with a port', spec: 'hosts: [db.example.com]\naddresses: ["10.0.0.1:27017"]', error: /spec\.addresses\[0\]: bad IP address "10\.0\.0\.1:27017"/ },
    { name: 'a bad CIDR prefix', spec: 'hosts: [db.example.com]\naddresses: [10.0.0.0/33]', error: /spec\.addresses\[0\]: bad CIDR range "10\.0\.0\.0\/33": prefix length must be 0-32/ },
    { name: 'a CIDR with DNS resolution', spec: 'hosts: [db.example.com]\naddresses: [10.0.0.0/16]\nresolution: DNS', error: /spec\.addresses\[0\]: CIDR blocks are allowed only with resolution NONE or STATIC, not DNS/ },
    // ports
    { name: 'a port without number', spec: 'hosts: [example.com]\nports: [{name: http, protocol: HTTP}]', error: /spec\.ports\[0\]\.number: is required/ },
    { name: 'port 0', spec: 'hosts: [example.com]\nports: [{number: 0, name: http}]', error: /spec\.ports\[0\]\.number: must be >= 1/ },
    { name: 'port 99999', spec: 'hosts: [example.com]\nports: [{number: 99999, name: http}]', error: /spec\.ports\[0\]\.number: must be <= 65535/ },
    { name: 'targetPort 99999', spec: 'hosts: [example.com]\nports: [{number: 80, name: http, targetPort: 99999}]\nresolution: DNS', error: /spec\.ports\[0\]\.targetPort: must be <= 65535/ },
    { name: 'an unknown protocol', spec: 'hosts: [example.com]\nports: [{number: 80, name: http, protocol: QUIC}]', error: /spec\.ports\[0\]\.protocol: unsupported protocol "QUIC"; use one of HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS/ },
    { name: 'a port name that is not a DNS label', spec: 'hosts: [example.com]\nports: [{number: 80, name: HTTP_Port, protocol: HTTP}]', error: /spec\.ports\[0\]\.name: invalid port name "HTTP_Port"/ },
    { name: 'an unnamed port among several', spec: 'hosts: [example.com]\nports: [{number: 80, name: http, protocol: HTTP}, {number: 443, protocol: HTTPS}]', error: /spec\.ports\[1\]\.name: is required when a ServiceEntry has more than one port/ },
    { name: 'duplicate port names', spec: 'hosts: [example.com]\nports: [{number: 80, name: a}, {number: 12, name: a}]', error: /spec\.ports\[1\]\.name: port name "a" is already used by ports\[0\]/ },
    { name: 'duplicate port numbers', spec: 'hosts: [example.com]\nports: [{number: 80, name: a}, {number: 80, name: b}]', error: /spec\.ports\[1\]\.number: port 80 is already declared by ports\[0\]/ },
    { name: 'more than 256 ports', spec: `hosts: [example.com]\nports: [${Array.from({ length: 257 }, (_, i) => `{number: ${i + 1}, name: p${i}, protocol: HTTP}`).join(', ')}]`, error: /spec\.ports: must have at most 256 items/ },
    // enums
    { name: 'an unknown location', spec: 'hosts: [example.com]\nlocation: MESH_EXTERNALLY', error: /spec\.location: must be one of MESH_EXTERNAL, MESH_INTERNAL/ },
    { name: 'an unknown resolution', spec: 'hosts: [example.com]\nresolution: ROUND_ROBIN', error: /spec\.resolution: must be one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS/ },
    // endpoints and selectors
    { name: 'endpoints and workloadSelector together', spec: 'hosts: [example.com]\nresolution: STATIC\nworkloadSelector: {labels: {app: a}}\nendpoints: [{address: 1.2.3.4}]', error: /spec: only one of endpoints, workloadSelector may be set/ },
    { name: 'endpoints with resolution NONE', spec: 'hosts: [example.com]\nresolution: NONE\nendpoints: [{address: 1.2.3.4}]', error: /spec\.endpoints: must be empty when resolution is NONE/ },
    { name: 'endpoints with default resolution (NONE)', spec: 'hosts: [example.com]\nendpoints: [{address: 1.2.3.4}]', error: /spec\.endpoints: must be empty when resolution is NONE/ },
    { name: 'a host name endpoint with STATIC', spec: 'hosts: [example.com]\nresolution: STATIC\nendpoints: [{address: backend.example.com}]', error: /spec\.endpoints\[0\]\.address: "backend\.example\.com" must be an IP address or a unix:\/\/ path when resolution is STATIC/ },
    { name: 'a unix endpoint with two ports', spec: 'hosts: [example.com]\nresolution: STATIC\nports: [{number: 80, name: http}, {number: 81, name: admin}]\nendpoints: [{address: "unix:///var/run/sock"}]', error: /spec\.endpoints\[0\]\.address: a unix:\/\/ endpoint needs exactly one port/ },
    { name: 'an endpoint without address or network', spec: 'hosts: [example.com]\nresolution: STATIC\nendpoints: [{labels: {app: a}}]', error: /spec\.endpoints\[0\]\.address: is required \(or set network\)/ },
    { name: 'an endpoint port that is not declared', spec: 'hosts: [example.com]\nresolution: STATIC\nports: [{number: 80, name: http, protocol: HTTP}]\nendpoints: [{address: 10.0.0.1, ports: {https: 8443}}]', error: /spec\.endpoints\[0\]\.ports\.https: "https" is not a port of this ServiceEntry \(declared: http\)/ },
    { name: 'an endpoint port with no ports declared', spec: 'hosts: [example.com]\nresolution: DNS\nendpoints: [{address: a.example.com, ports: {http: 8080}}]', error: /"http" is not a port of this ServiceEntry \(it declares no named ports\)/ },
    { name: 'an endpoint port out of range', spec: 'hosts: [example.com]\nresolution: STATIC\nports: [{number: 80, name: http}]\nendpoints: [{address: 10.0.0.1, ports: {http: 70000}}]', error: /spec\.endpoints\[0\]\.ports\.http: must be <= 65535/ },
    { name: 'an endpoint with a bad locality', spec: 'hosts: [example.com]\nresolution: STATIC\nendpoints: [{address: 10.0.0.1, locality: "/zone"}]', error: /spec\.endpoints\[0\]\.locality: locality "\/zone" has an empty region/ },
    { name: 'a wildcard host with DNS and no endpoints', spec: 'hosts: ["*.example.com"]\nresolution: DNS\nports: [{number: 443, name: https, protocol: HTTPS}]', error: /spec\.hosts\[0\]: "\*\.example\.com" must be a DNS name \(no wildcard\) when resolution is DNS and there are no endpoints/ },
    { name: 'a wildcard host with DNS_ROUND_ROBIN and no endpoints', spec: 'hosts: ["*.example.com"]\nresolution: DNS_ROUND_ROBIN', error: /spec\.hosts\[0\]: .* when resolution is DNS_ROUND_ROBIN/ },
    { name: 'DNS_ROUND_ROBIN with two endpoints', spec: 'hosts: [example.com]\nresolution: DNS_ROUND_ROBIN\nendpoints: [{address: sub1.example.com}, {address: sub2.example.com}]', error: /spec\.endpoints: resolution DNS_ROUND_ROBIN allows at most one endpoint, got 2/ },
    { name: 'a unix endpoint with DNS', spec: 'hosts: [example.com]\nresolution: DNS\nendpoints: [{address: "unix:///var/run/sock"}]', error: /spec\.endpoints\[0\]\.address: must be an IP address or a DNS name when resolution is DNS/ },
    { name: 'a network-only endpoint with DNS', spec: 'hosts: [example.com]\nresolution: DNS\nendpoints: [{network: net2}]', error: /spec\.endpoints\[0\]\.address: must be an IP address or a DNS name when resolution is DNS/ },
    { name: 'a plain host with DYNAMIC_DNS', spec: 'hosts: ["*.example.com", api.example.com]\nresolution: DYNAMIC_DNS\nports: [{number: 443, name: tls, protocol: TLS}]', error: /spec\.hosts\[1\]: "api\.example\.com" must be a wildcard such as "\*\.example\.com" when resolution is DYNAMIC_DNS/ },
    { name: 'endpoints with DYNAMIC_DNS', spec: 'hosts: ["*.example.com"]\nresolution: DYNAMIC_DNS\nendpoints: [{address: a.example.com}]', error: /spec\.endpoints: must be empty when resolution is DYNAMIC_DNS/ },
    { name: 'addresses with DYNAMIC_DNS', spec: 'hosts: ["*.example.com"]\nresolution: DYNAMIC_DNS\naddresses: [10.0.0.1]', error: /spec\.addresses: must be empty when resolution is DYNAMIC_DNS/ },
    { name: 'a TCP port with DYNAMIC_DNS', spec: 'hosts: ["*.example.com"]\nresolution: DYNAMIC_DNS\nports: [{number: 5432, name: pg, protocol: TCP}]', error: /spec\.ports\[0\]\.protocol: resolution DYNAMIC_DNS supports HTTP, HTTP2, GRPC and TLS ports only, got TCP/ },
    { name: 'several hosts with a TCP port and DNS', spec: 'hosts: [a.example.com, b.example.com]\nresolution: DNS\nports: [{number: 443, name: https, protocol: HTTPS}, {number: 5432, name: pg, protocol: TCP}]', error: /spec\.ports\[1\]\.protocol: a ServiceEntry with several hosts and resolution DNS needs HTTP or TLS ports .*got TCP/ },
    { name: 'several hosts with an unset protocol and STATIC', spec: 'hosts: [a.example.com, b.example.com]\nresolution: STATIC\nports: [{number: 80, name: http}]\nendpoints: [{address: 10.0.0.1}]', error: /spec\.ports\[0\]\.protocol: a ServiceEntry with several hosts and resolution STATIC needs HTTP or TLS ports .*got no protocol/ },
    // exportTo, selector, SANs
    { name: 'exportTo ~ with others', spec: 'hosts: [example.com]\nexportTo: ["~", "."]', error: /spec\.exportTo: "~" \(no one\) cannot be combined with other entries/ },
    { name: 'duplicate exportTo entries', spec: 'hosts: [example.com]\nexportTo: [bookinfo, bookinfo]', error: /spec\.exportTo\[1\]: duplicates item 0/ },
    { name: 'a wildcard in the selector', spec: 'hosts: [example.com]\nresolution: STATIC\nworkloadSelector: {labels: {val: "*"}}', error: /spec\.workloadSelector\.labels\.val: invalid label value "\*"/ },
    { name: 'an empty subjectAltName', spec: 'hosts: [example.com]\nsubjectAltNames: [""]', error: /spec\.subjectAltNames\[0\]: must not be empty/ },
  ];
  for (const c of cases) {
    it(`rejects ${c.name}`, () => {
      const { errors, resources } = validateYaml(se(c.spec));
      assert.equal(resources.length, 0, 'the resource must be rejected');
      assert.ok(errors.some((e) => c.error.test(e)), `expected ${c.error} in:\n${errors.join('\n')}`);
    });
  }

  it('rejects DYNAMIC_DNS with MESH_INTERNAL for a workload behind a waypoint (Istio)', () => {
    const { errors } = validateYaml(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dyn, namespace: default, labels: {istio.io/use-waypoint: my-waypoint}}
spec: {hosts: ["*.example.com"], location: MESH_INTERNAL, resolution: DYNAMIC_DNS, ports: [{number: 80, name: http, protocol: HTTP}]}
`);
    assert.ok(errors.some((e) => /spec\.location: MESH_INTERNAL with resolution DYNAMIC_DNS is not supported with a waypoint/.test(e)), errors.join('\n'));
  });

  it('accepts DYNAMIC_DNS with MESH_INTERNAL when the waypoint label is "none"', () => {
    const { errors } = validateYaml(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dyn, namespace: default, labels: {istio.io/use-waypoint: none}}
spec: {hosts: ["*.example.com"], location: MESH_INTERNAL, resolution: DYNAMIC_DNS, ports: [{number: 80, name: http, protocol: HTTP}]}
`);
    assert.deepEqual(errors, []);
  });

  it('points at the offending line', () => {
    const { errors } = validateYaml(se('hosts: [example.com]\nports:\n- number: 80\n  name: a\n- number: 80\n  name: b'));
    assert.match(errors[0] ?? '', /^test\.yaml: ServiceEntry default\/external-svc: spec\.ports\[1\]\.number: port 80 is already declared by ports\[0\] \(line \d+\)$/);
  });
});

describe('ServiceEntry: accepted with warnings', () => {
  const cases: { name: string; spec: string; warning: RegExp }[] = [
    {
      name: 'a TCP port (MongoDB with VIPs, service-entry reference)',
      spec: 'hosts: [mymongodb.somedomain]\naddresses: [192.192.192.192/24]\nports: [{number: 27018, name: mongodb, protocol: MONGO}]\nlocation: MESH_INTERNAL\nresolution: STATIC\nendpoints: [{address: 2.2.2.2}, {address: 3.3.3.3}]',
      warning: /spec\.ports\[0\]\.protocol: not supported by meshlet: MONGO ports; meshlet handles HTTP, HTTP2 and gRPC traffic \(also over the app's TLS: HTTPS and TLS ports\); TCP ports are passed through untouched/,
    },
    {
      name: 'addresses',
      spec: 'hosts: [mymongodb.somedomain]\naddresses: [192.192.192.192/24]\nports: [{number: 27018, name: mongodb, protocol: MONGO}]\nresolution: STATIC\nendpoints: [{address: 2.2.2.2}]',
      warning: /not supported by meshlet: spec\.addresses; meshlet addresses services by host name; VIPs and CIDRs are not intercepted/,
    },
    { name: 'a tcp port in lower case', spec: 'hosts: [db.example.com]\nports: [{number: 5432, name: pg, protocol: tcp}]\nresolution: DNS', warning: /not supported by meshlet: tcp ports/ },
    { name: 'a single unnamed port', spec: 'hosts: [example.com]\nports: [{number: 80, protocol: HTTP}]\nresolution: DNS', warning: /spec\.ports\[0\]\.name: is missing; Istio rejects ServiceEntry ports without a name/ },
    { name: 'targetPort with resolution NONE', spec: 'hosts: [example.com]\nports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]', warning: /spec\.ports\[0\]\.targetPort: has no effect when resolution is NONE/ },
    { name: 'a partial wildcard host (Istio: a warning unless DYNAMIC_DNS)', spec: 'hosts: ["*washingtonpost.com"]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: NONE', warning: /spec\.hosts\[0\]: partial wildcard "\*washingtonpost\.com"/ },
    { name: 'a TCP port without addresses, resolution NONE', spec: 'hosts: [google.com]\nports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: tcp, protocol: TCP}]', warning: /spec\.ports\[1\]\.protocol: addresses are required for ports serving TCP \(or no protocol\) when IP auto-allocation is not enabled/ },
    { name: 'a port without protocol and addresses, resolution NONE', spec: 'hosts: [google.com]\nports: [{number: 8080, name: http2}]', warning: /spec\.ports\[0\]\.protocol: addresses are required/ },
    { name: 'DNS, addresses, an HTTPS port and two hosts', spec: 'hosts: [foo.com, bar.com]\naddresses: [10.10.10.10]\nports: [{number: 443, name: https, protocol: HTTPS}]\nresolution: DNS', warning: /spec\.hosts: a ServiceEntry with addresses and a TCP port should have one host/ },
    { name: 'workloadSelector with NONE', spec: 'hosts: [example.com]\nworkloadSelector: {labels: {app: a}}', warning: /spec\.workloadSelector: should not be set when resolution is NONE/ },
    { name: 'workloadSelector without labels', spec: 'hosts: [example.com]\nresolution: STATIC\nworkloadSelector: {}', warning: /spec\.workloadSelector: has no labels, so it selects every workload in the namespace/ },
    { name: 'STATIC with nothing behind it', spec: 'hosts: [example.com]\nresolution: STATIC', warning: /spec: resolution STATIC with no endpoints and no workloadSelector/ },
    { name: 'a network-only STATIC endpoint', spec: 'hosts: [example.com]\nresolution: STATIC\nendpoints: [{network: network2}]', warning: /spec\.endpoints\[0\]\.address: is unset with network "network2"/ },
  ];
  for (const c of cases) {
    it(`warns about ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(se(c.spec));
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
      assert.ok(warnings.some((w) => c.warning.test(w)), `expected ${c.warning} in:\n${warnings.join('\n')}`);
    });
  }

  it('a TLS port (HTTPS passthrough egress, Istio\'s ServiceEntry for an external HTTPS API) is routed as an HTTPS one: no warning', () => {
    const { errors, warnings } = validateYaml(se('hosts: [www.google.com]\nports: [{number: 443, name: tls, protocol: TLS}]\nresolution: DNS'));
    assert.deepEqual(errors, []);
    assert.deepEqual(warnings, []);
  });

  it('tags protocol warnings MESHLET0002, like other unsupported features', () => {
    const { issues } = validateYaml(se('hosts: [db.example.com]\nports: [{number: 5432, name: pg, protocol: TCP}]\nresolution: DNS'));
    assert.deepEqual(issues.ofLevel('warning').map((i) => i.code), ['MESHLET0002']);
  });
});
