import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../../test/helpers/config.ts';
import { checkDefaultEndpoint, checkEgressHost } from './sidecar.ts';
import { isValidCipherSuite } from './server-tls.ts';

/** A Sidecar bar/foo (Istio's test namespace) with a spec written as YAML flow text. */
const sc = (spec: string) => doc('networking.istio.io/v1', 'Sidecar', 'foo', spec, 'bar');
/** An egress listener with every host of the namespace, to make a spec complete. */
const EGRESS = 'egress: [{hosts: ["./*"]}]';
/** An ingress listener on HTTP port 90 with `extra` fields. */
const ingress = (extra = '', port = '{number: 90, protocol: HTTP, name: foo}') => `ingress: [{port: ${port}${extra === '' ? '' : `, ${extra}`}}]`;

const warningsOf = (yaml: string) => validateYaml(yaml).warnings.map((w) => w.replace(/^test\.yaml: Sidecar bar\/foo: /, '').replace(/ \(line \d+\)$/, ''));

describe('Sidecar validation: accepted', () => {
  const cases: { name: string; yaml: string; warnings?: RegExp[] }[] = [
    { name: 'the namespace default (./* and istio-system/*)', yaml: sc('egress: [{hosts: ["./*", "istio-system/*"]}]') },
    { name: 'just an outboundTrafficPolicy', yaml: sc('outboundTrafficPolicy: {mode: ALLOW_ANY}') },
    { name: 'an egress proxy with ALLOW_ANY', yaml: sc('outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: foo.bar, subset: shiny, port: {number: 5000}}}') },
    { name: 'exclusions: all but a namespace, all but a host, nothing', yaml: sc('egress: [{hosts: ["*/*", "~ns1/*", "~/foo.com"]}]') },
    { name: 'a FQDN, a wildcard suffix and a trailing dot', yaml: sc('egress: [{hosts: ["ns1/foo.example.com", "ns1/*.example.com", "ns2/bar.com."]}]') },
    { name: 'port listeners then one catch-all', yaml: sc('egress: [{port: {number: 8080, protocol: http, name: h8080}, hosts: ["ns1/a.com"]}, {port: {number: 9090, protocol: GRPC}, hosts: ["ns1/a.com"]}, {hosts: ["./*"]}]') },
    { name: 'a port protocol in any case, or none (sniffed)', yaml: sc('egress: [{port: {number: 1, protocol: grpc-web}, hosts: ["a/b.com"]}, {port: {number: 2}, hosts: ["a/b.com"]}, {port: {number: 3, protocol: Mysql}, hosts: ["a/b.com"]}]') },
    { name: 'captureMode DEFAULT (the default: no notice)', yaml: sc('egress: [{port: {number: 80}, captureMode: DEFAULT, hosts: ["a/b.com"]}]') },
    { name: 'a selector with labels', yaml: sc(`workloadSelector: {labels: {app: reviews}}\n${EGRESS}`) },
    {
      name: 'a selector without labels: Istio\'s warning',
      yaml: sc(`workloadSelector: {}\n${EGRESS}`),
      warnings: [/^spec\.workloadSelector: workload selector specified without labels: the Sidecar applies to every workload of its namespace/],
    },
    {
      name: 'a host repeated, or under the namespace\'s "*" ("." is the Sidecar\'s namespace): Istio\'s warnings',
      yaml: sc('egress: [{hosts: ["./*", "bar/a.com", "ns1/b.com", "ns1/b.com"]}]'),
      warnings: [/^spec\.egress\[0\]\.hosts\[1\]: duplicated egress host "bar\/a\.com": .* namespace bar/, /^spec\.egress\[0\]\.hosts\[3\]: duplicated egress host "ns1\/b\.com"/],
    },
    {
      name: 'the root namespace default\'s ["./*", "istio-system/*"]: Istio\'s warning, saying to keep both',
      yaml: sc('egress: [{hosts: ["./*", "istio-system/*"]}]').replace(/namespace: \S+/, 'namespace: istio-system'),
      warnings: [/Sidecar istio-system\/foo: spec\.egress\[0\]\.hosts\[1\]: duplicated egress host "istio-system\/\*": .* namespace istio-system \(Istio\); if this is the root namespace's Sidecar without a workloadSelector, keep both: for the workloads of other namespaces, whose default it is, "\." is their own namespace/],
    },
    {
      name: '"*/*" beside other hosts: Istio\'s warning',
      yaml: sc('egress: [{hosts: ["*/*", "test/a.com"]}]'),
      warnings: [/^spec\.egress\[0\]\.hosts: "\*\/\*" selects every host of every namespace/],
    },
    { name: 'the same host in two listeners (checked per listener)', yaml: sc('egress: [{port: {number: 80}, hosts: ["a/b.com"]}, {hosts: ["a/b.com"]}]') },
    {
      name: 'a Unix socket listener (port 0, unix:// bind, also abstract): the bind is not supported',
      yaml: sc('egress: [{port: {number: 0, protocol: http, name: uds}, bind: "unix:///@foo/bar", captureMode: NONE, hosts: ["ns1/bar.com"]}, {port: {name: uds2}, bind: "unix:///var/run/a.sock", hosts: ["ns1/bar.com"]}]'),
      warnings: [
        /^spec\.egress\[0\]\.bind: not supported by meshlet: spec\.egress\[0\]\.bind; meshlet opens no outbound listener/,
        /^spec\.egress\[0\]\.captureMode: not supported by meshlet: captureMode NONE; .*reaches nothing/,
        /^spec\.egress\[1\]\.bind: not supported by meshlet/,
      ],
    },
    {
      name: 'an IP bind (v4, v6)',
      yaml: sc('egress: [{port: {number: 80}, bind: 127.0.0.1, hosts: ["a/b.com"]}, {port: {number: 81}, bind: "::1", hosts: ["a/b.com"]}]'),
      warnings: [/^spec\.egress\[0\]\.bind: not supported by meshlet/, /^spec\.egress\[1\]\.bind: not supported by meshlet/],
    },
    {
      name: 'an ingress listener with each defaultEndpoint form: the listener and its defaultEndpoint are not supported',
      yaml: sc(
        'ingress: [{port: {number: 90, protocol: HTTP}, defaultEndpoint: "127.0.0.1:9999"}, {port: {number: 91}, defaultEndpoint: "0.0.0.0:1"}, {port: {number: 92}, defaultEndpoint: "[::1]:65535"}, {port: {number: 93}, defaultEndpoint: ":8080"}, {port: {number: 94}, defaultEndpoint: "unix:///var/run/app.sock"}, {port: {number: 95}, defaultEndpoint: "[::]:80"}]',
      ),
      warnings: [/^spec\.ingress: not supported by meshlet: spec\.ingress; meshlet has no inbound listeners/, ...[0, 1, 2, 3, 4, 5].map((i) => new RegExp(`^spec\\.ingress\\[${i}\\]\\.defaultEndpoint: not supported by meshlet: .*no proxy stands in front of the app`))],
    },
    {
      name: 'SIMPLE TLS on an HTTPS port: not supported',
      yaml: sc(ingress('tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}', '{number: 443, protocol: HTTPS}')),
      warnings: [/^spec\.ingress: not supported by meshlet/, /^spec\.ingress\[0\]\.tls: not supported by meshlet: .*does not terminate TLS in front of the app/],
    },
    {
      name: 'MUTUAL TLS on a TLS port with a CA, and TLSV1_0 with ciphers (one unknown, one repeated): Istio\'s warnings',
      yaml: sc(ingress('tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem, minProtocolVersion: TLSV1_0, cipherSuites: [AES128-SHA, AES128-SHA, NOT-A-CIPHER, "-RC4"]}', '{number: 443, protocol: tls}')),
      warnings: [
        /^spec\.ingress: not supported by meshlet/,
        /^spec\.ingress\[0\]\.tls: not supported by meshlet/,
        /^spec\.ingress\[0\]\.tls\.cipherSuites: ignoring invalid cipher suites: NOT-A-CIPHER/,
        /^spec\.ingress\[0\]\.tls\.cipherSuites: ignoring duplicate cipher suites: AES128-SHA/,
      ],
    },
    {
      name: 'TLSV1_1 without cipher suites: Istio\'s warning',
      yaml: sc(ingress('tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, minProtocolVersion: TLSV1_1}', '{number: 443, protocol: HTTPS}')),
      warnings: [/^spec\.ingress: not supported/, /^spec\.ingress\[0\]\.tls: not supported/, /^spec\.ingress\[0\]\.tls\.minProtocolVersion: TLS versions below TLSV1_2 need cipherSuites/],
    },
    {
      name: 'PASSTHROUGH (the default mode) with certificates: Istio\'s warning',
      yaml: sc(ingress('tls: {serverCertificate: /c.pem}', '{number: 443, protocol: HTTPS}')),
      warnings: [/^spec\.ingress: not supported/, /^spec\.ingress\[0\]\.tls: not supported/, /^spec\.ingress\[0\]\.tls: PASSTHROUGH mode does not use certificates/],
    },
    {
      name: 'connection pools: applied (the server side\'s circuit breaker), no notice of their own',
      yaml: sc(`${ingress('connectionPool: {http: {http1MaxPendingRequests: 1024}}')}\ninboundConnectionPool: {tcp: {maxConnections: 10}}`),
      warnings: [/^spec\.ingress: not supported by meshlet: .*an ingress listener's connectionPool is applied/],
    },
    {
      name: 'HTTP pool settings on a TCP port: Istio\'s warning',
      yaml: sc(ingress('connectionPool: {http: {maxRetries: 3}}', '{number: 90, protocol: tcp, name: foo}')),
      warnings: [/^spec\.ingress: not supported/, /^spec\.ingress\[0\]\.connectionPool\.http: HTTP connection pool settings on port 90 \("foo"\), whose protocol is not HTTP \(tcp\)/],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { errors, resources } = validateYaml(c.yaml);
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
      const warnings = warningsOf(c.yaml);
      const want = c.warnings ?? [];
      assert.equal(warnings.length, want.length, warnings.join('\n'));
      for (const [i, re] of want.entries()) assert.match(warnings[i] ?? '', re);
    });
  }

  it('says captureMode IPTABLES has no effect, as an info (MESHLET0002)', () => {
    const { issues, warnings } = validateYaml(sc('egress: [{port: {number: 80}, captureMode: IPTABLES, hosts: ["a/b.com"]}]'));
    assert.deepEqual(warnings, []);
    const info = issues.ofLevel('info').filter((i) => i.code === 'MESHLET0002');
    assert.deepEqual(info.map((i) => i.path), ['spec.egress[0].captureMode']);
    assert.match(info[0]?.message ?? '', /captureMode IPTABLES has no effect in meshlet/);
  });
});

describe('Sidecar validation: refused', () => {
  const cases: { name: string; yaml: string; error: RegExp }[] = [
    { name: 'an empty spec', yaml: sc('{}'), error: /spec: empty configuration: set egress, ingress, outboundTrafficPolicy or inboundConnectionPool/ },
    { name: 'only empty lists (Istio reads [] as unset)', yaml: sc('egress: []\ningress: []'), error: /spec: empty configuration/ },
    { name: 'only a selector', yaml: sc('workloadSelector: {labels: {app: a}}'), error: /spec: empty configuration/ },
    { name: 'a wildcard in a selector', yaml: sc(`workloadSelector: {labels: {app: "*"}}\n${EGRESS}`), error: /spec\.workloadSelector\.labels\.app: invalid label value "\*"/ },
    { name: 'an egress listener without hosts', yaml: sc('egress: [{port: {number: 80}}]'), error: /spec\.egress\[0\]\.hosts: is required/ },
    { name: 'an egress listener with no host', yaml: sc('egress: [{hosts: []}]'), error: /spec\.egress\[0\]\.hosts: an egress listener must contain at least one host/ },
    { name: 'a host without a namespace', yaml: sc('egress: [{hosts: ["*"]}]'), error: /spec\.egress\[0\]\.hosts\[0\]: host "\*" must be of form namespace\/dnsName/ },
    { name: 'an invalid excluded namespace', yaml: sc('egress: [{hosts: ["*/*", "~Invalid_NS/*"]}]'), error: /hosts\[1\]: invalid host "~Invalid_NS\/\*": invalid namespace "~Invalid_NS"/ },
    { name: 'a short name', yaml: sc('egress: [{hosts: ["ns1/reviews"]}]'), error: /hosts\[0\]: invalid host "ns1\/reviews": short names \(non FQDN\) are not allowed/ },
    { name: 'a partial wildcard', yaml: sc('egress: [{hosts: ["test/*a.com"]}]'), error: /hosts\[0\]: invalid host "test\/\*a\.com": partial wildcard "\*a\.com" not allowed/ },
    { name: 'two catch-all listeners', yaml: sc('egress: [{hosts: ["*/foo.com"]}, {hosts: ["ns1/bar.com"]}]'), error: /spec\.egress\[0\]: the egress listener without a port \(the catch-all\) must be the last listener/ },
    { name: 'the catch-all not last', yaml: sc('egress: [{hosts: ["*/foo.com"]}, {port: {number: 8080}, hosts: ["ns1/bar.com"]}]'), error: /spec\.egress\[0\]: the egress listener without a port/ },
    { name: 'two listeners on one port', yaml: sc('egress: [{port: {number: 90, protocol: http}, hosts: ["a/b.com"]}, {port: {number: 90, protocol: tcp}, hosts: ["a/b.com"]}]'), error: /spec\.egress\[1\]\.port\.number: ports must be unique: listener 0 uses port 90 too/ },
    { name: 'an unknown protocol', yaml: sc('egress: [{port: {number: 80, protocol: http1}, hosts: ["a/b.com"]}]'), error: /spec\.egress\[0\]\.port\.protocol: unsupported protocol "http1"/ },
    { name: 'a port above 65535', yaml: sc('egress: [{port: {number: 1000000}, hosts: ["a/b.com"]}]'), error: /spec\.egress\[0\]\.port\.number: port number 1000000 must be in the range 1\.\.65535/ },
    { name: 'a port above uint32 (the CRD)', yaml: sc('egress: [{port: {number: 4294967296}, hosts: ["a/b.com"]}]'), error: /spec\.egress\[0\]\.port\.number: must be <= 4294967295/ },
    { name: 'an invalid port name', yaml: sc('egress: [{port: {number: 80, name: "http_1"}, hosts: ["a/b.com"]}]'), error: /spec\.egress\[0\]\.port\.name: invalid port name "http_1"/ },
    { name: 'a targetPort', yaml: sc('egress: [{port: {number: 80, targetPort: 8080}, hosts: ["a/b.com"]}]'), error: /spec\.egress\[0\]\.port\.targetPort: targetPort has no impact on Sidecars/ },
    { name: 'port 0 without a unix:// bind', yaml: sc('egress: [{port: {number: 0}, bind: "foobar:///@foo/bar", hosts: ["a/b.com"]}]'), error: /spec\.egress\[0\]\.bind: a listener with port 0 must have a unix domain socket bind address/ },
    { name: 'a relative socket path', yaml: sc('egress: [{port: {number: 0}, bind: "unix://var/run/a.sock", hosts: ["a/b.com"]}]'), error: /spec\.egress\[0\]\.bind: .*must be absolute/ },
    { name: 'port 0 with captureMode IPTABLES', yaml: sc('egress: [{port: {number: 0}, bind: "unix:///@foo", captureMode: IPTABLES, hosts: ["a/b.com"]}]'), error: /spec\.egress\[0\]\.captureMode: must be DEFAULT or NONE for a unix domain socket listener/ },
    { name: 'two listeners on one socket', yaml: sc('egress: [{port: {number: 0}, bind: "unix:///@foo", hosts: ["a/b.com"]}, {port: {number: 0}, bind: "unix:///@foo", hosts: ["a/b.com"]}]'), error: /spec\.egress\[1\]\.bind: unix domain socket binds must be unique: listener 0 uses it too/ },
    { name: 'a bind that is not an IP', yaml: sc('egress: [{port: {number: 80}, bind: localhost, hosts: ["a/b.com"]}]'), error: /spec\.egress\[0\]\.bind: "localhost" is not a valid IP address/ },
    { name: 'an unknown captureMode', yaml: sc('egress: [{port: {number: 80}, captureMode: EBPF, hosts: ["a/b.com"]}]'), error: /spec\.egress\[0\]\.captureMode: must be one of DEFAULT, IPTABLES, NONE/ },
    { name: 'an ingress listener without a port', yaml: sc('ingress: [{defaultEndpoint: "127.0.0.1:110"}]'), error: /spec\.ingress\[0\]\.port: is required/ },
    { name: 'ingress port 0 (no Unix sockets inbound)', yaml: sc('ingress: [{port: {number: 0}, bind: "unix:///@foo"}]'), error: /spec\.ingress\[0\]\.port\.number: port number 0 must be in the range 1\.\.65535/ },
    { name: 'an ingress unix:// bind', yaml: sc('ingress: [{port: {number: 80}, bind: "unix:///@foo"}]'), error: /spec\.ingress\[0\]\.bind: "unix:\/\/\/@foo" is not a valid IP address/ },
    { name: 'two ingress listeners on one port', yaml: sc('ingress: [{port: {number: 90, protocol: http}}, {port: {number: 90, protocol: tcp}}]'), error: /spec\.ingress\[1\]\.port\.number: ports must be unique: listener 0 uses port 90 too/ },
    { name: 'a defaultEndpoint on another IPv4 address', yaml: sc(ingress('defaultEndpoint: "1.1.1.1:90"')), error: /spec\.ingress\[0\]\.defaultEndpoint: "1\.1\.1\.1:90" must be 127\.0\.0\.1:<port>/ },
    { name: 'a defaultEndpoint on another IPv6 address', yaml: sc(ingress('defaultEndpoint: "[1:1:1:1:1:1:1:1]:90"')), error: /defaultEndpoint: "\[1:1:1:1:1:1:1:1\]:90" must be/ },
    { name: 'a defaultEndpoint port that is not a number', yaml: sc(ingress('defaultEndpoint: "[::1]:hi"')), error: /defaultEndpoint: "\[::1\]:hi": the port "hi" is not a number/ },
    { name: 'a defaultEndpoint socket that is a directory', yaml: sc(ingress('defaultEndpoint: "unix:///"')), error: /defaultEndpoint: .*must be absolute and name a file/ },
    { name: 'TLS on an HTTP port', yaml: sc(ingress('tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}')), error: /spec\.ingress\[0\]\.tls: TLS settings are allowed only on HTTPS and TLS ports; port 90 is HTTP/ },
    { name: 'TLS mode ISTIO_MUTUAL', yaml: sc(ingress('tls: {mode: ISTIO_MUTUAL}', '{number: 443, protocol: HTTPS}')), error: /spec\.ingress\[0\]\.tls\.mode: cannot be ISTIO_MUTUAL in a Sidecar's ingress TLS/ },
    { name: 'TLS mode AUTO_PASSTHROUGH', yaml: sc(ingress('tls: {mode: AUTO_PASSTHROUGH}', '{number: 443, protocol: HTTPS}')), error: /spec\.ingress\[0\]\.tls\.mode: cannot be AUTO_PASSTHROUGH/ },
    { name: 'TLS httpsRedirect', yaml: sc(ingress('tls: {mode: PASSTHROUGH, httpsRedirect: true}', '{number: 443, protocol: HTTPS}')), error: /spec\.ingress\[0\]\.tls\.httpsRedirect: is not supported in a Sidecar's ingress TLS/ },
    { name: 'TLS subjectAltNames', yaml: sc(ingress('tls: {subjectAltNames: [httpbin.com]}', '{number: 443, protocol: HTTPS}')), error: /spec\.ingress\[0\]\.tls\.subjectAltNames: is not supported in a Sidecar's ingress TLS/ },
    { name: 'TLS credentialName', yaml: sc(ingress('tls: {mode: SIMPLE, credentialName: secret}', '{number: 443, protocol: HTTPS}')), error: /spec\.ingress\[0\]\.tls\.credentialName: is not supported in a Sidecar's ingress TLS/ },
    { name: 'TLS credentialNames', yaml: sc(ingress('tls: {mode: SIMPLE, credentialNames: [a]}', '{number: 443, protocol: HTTPS}')), error: /spec\.ingress\[0\]\.tls\.credentialNames: is not supported/ },
    { name: 'TLS tlsCertificates', yaml: sc(ingress('tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: /a, privateKey: /b}]}', '{number: 443, protocol: HTTPS}')), error: /spec\.ingress\[0\]\.tls\.tlsCertificates: is not supported/ },
    { name: 'three credentialNames (the CRD)', yaml: sc(ingress('tls: {credentialNames: [a, b, c]}', '{number: 443, protocol: HTTPS}')), error: /spec\.ingress\[0\]\.tls\.credentialNames: must have at most 2 items/ },
    { name: 'credentialName and credentialNames (the CRD)', yaml: sc(ingress('tls: {credentialName: a, credentialNames: [b]}', '{number: 443, protocol: HTTPS}')), error: /spec\.ingress\[0\]\.tls: only one of credentialName or credentialNames can be set/ },
    { name: 'SIMPLE TLS without a certificate', yaml: sc(ingress('tls: {mode: SIMPLE, privateKey: /k.pem}', '{number: 443, protocol: HTTPS}')), error: /spec\.ingress\[0\]\.tls\.serverCertificate: SIMPLE TLS requires a server certificate/ },
    { name: 'MUTUAL TLS without a client CA', yaml: sc(ingress('tls: {mode: OPTIONAL_MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}', '{number: 443, protocol: HTTPS}')), error: /spec\.ingress\[0\]\.tls\.caCertificates: MUTUAL TLS requires a client CA bundle/ },
    { name: 'a CRL with SIMPLE TLS', yaml: sc(ingress('tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, caCrl: /crl.pem}', '{number: 443, protocol: HTTPS}')), error: /spec\.ingress\[0\]\.tls\.caCrl: CRL is not supported with SIMPLE TLS/ },
    { name: 'ISTIO_MUTUAL-style certificates... on ISTIO_MUTUAL', yaml: sc(ingress('tls: {mode: ISTIO_MUTUAL, privateKey: /k.pem}', '{number: 443, protocol: HTTPS}')), error: /spec\.ingress\[0\]\.tls\.privateKey: must be empty when mode is ISTIO_MUTUAL/ },
    { name: 'an empty inbound connection pool', yaml: sc('inboundConnectionPool: {}'), error: /spec\.inboundConnectionPool: connectionPool must set tcp or http/ },
    { name: 'an empty ingress connection pool', yaml: sc(ingress('connectionPool: {}')), error: /spec\.ingress\[0\]\.connectionPool: connectionPool must set tcp or http/ },
    { name: 'an egress proxy without ALLOW_ANY', yaml: sc('outboundTrafficPolicy: {egressProxy: {host: foo.bar, port: {number: 5000}}}'), error: /spec\.outboundTrafficPolicy\.egressProxy: egressProxy may be set only with mode ALLOW_ANY/ },
    { name: 'an egress proxy without a port', yaml: sc('outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: foo.bar}}'), error: /spec\.outboundTrafficPolicy\.egressProxy\.port: is required for an egressProxy/ },
    { name: 'a wildcard egress proxy', yaml: sc('outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: "*.bar.com", port: {number: 80}}}'), error: /egressProxy\.host: must be a fully qualified domain name, not the wildcard "\*\.bar\.com"/ },
    { name: 'an invalid egress proxy host', yaml: sc('outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: "foobar*123", port: {number: 80}}}'), error: /egressProxy\.host: invalid host "foobar\*123"/ },
    { name: 'mode ALLOW_ANY_DYNAMIC_DNS (MeshConfig only)', yaml: sc('outboundTrafficPolicy: {mode: ALLOW_ANY_DYNAMIC_DNS}'), error: /spec\.outboundTrafficPolicy\.mode: must be one of REGISTRY_ONLY, ALLOW_ANY/ },
    { name: 'an unknown field', yaml: sc(`${EGRESS}\nlocalhost: {}`), error: /spec\.localhost: unknown field "localhost"/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { errors, resources } = validateYaml(c.yaml);
      assert.equal(resources.length, 0);
      assert.ok(
        errors.some((e) => c.error.test(e)),
        errors.join('\n'),
      );
    });
  }
});

describe('Sidecar egress hosts (ValidateNamespaceSlashWildcardHostname)', () => {
  const cases: [string, boolean][] = [
    ['*/*', true],
    ['./*', true],
    ['~/*', true],
    ['ns1/foo.com', true],
    ['NS1/Foo.com', true], // Istio's DNS-1123 labels admit upper case
    ['~ns1/*', true],
    ['ns1/*.foo.com', true],
    ['*/foo.com.', true],
    ['*', false],
    ['foo.com', false],
    ['/', false],
    ['ns1/', false],
    ['/foo.com', false],
    ['ns_1/foo.com', false],
    ['~~ns1/*', false],
    ['ns1/foo', false],
    ['ns1/*foo.com', false],
    ['ns1/foo.*.com', false],
    ['ns1/1.2.3.4', false],
    ['ns1/foo..com', false],
  ];
  for (const [host, ok] of cases) it(`${ok ? 'accepts' : 'refuses'} ${JSON.stringify(host)}`, () => assert.equal(checkEgressHost(host) === undefined, ok, checkEgressHost(host)));
});

describe('Sidecar ingress defaultEndpoint', () => {
  const cases: [string, boolean][] = [
    ['127.0.0.1:8080', true],
    ['0.0.0.0:8080', true],
    ['[::1]:8080', true],
    ['[::]:8080', true],
    [':8080', true],
    ['unix:///var/run/a.sock', true],
    ['unix://@abstract', true],
    ['localhost:8080', false],
    ['127.0.0.1', false],
    ['::1:8080', false],
    ['127.0.0.1:0', false],
    ['127.0.0.1:65536', false],
    ['127.0.0.1:http', false],
    ['[::1]8080', false],
    ['unix://relative', false],
    ['unix://', false],
  ];
  for (const [endpoint, ok] of cases) it(`${ok ? 'accepts' : 'refuses'} ${JSON.stringify(endpoint)}`, () => assert.equal(checkDefaultEndpoint(endpoint) === undefined, ok, checkDefaultEndpoint(endpoint)));
});

describe('server TLS cipher suites (security.IsValidCipherSuite)', () => {
  const cases: [string, boolean][] = [
    ['ECDHE-RSA-AES128-GCM-SHA256', true],
    ['ALL', true],
    ['', true],
    ['-RC4', true],
    ['[ECDHE-RSA-AES128-GCM-SHA256|ECDHE-ECDSA-AES128-GCM-SHA256]', true],
    ['RC4-SHA', false],
    ['ecdhe-rsa-aes128-gcm-sha256', false],
  ];
  for (const [cs, ok] of cases) it(`${ok ? 'accepts' : 'ignores'} ${JSON.stringify(cs)}`, () => assert.equal(isValidCipherSuite(cs), ok));
});
