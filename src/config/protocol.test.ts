import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AUTO_PROTOCOL, convertProtocol, parseProtocol } from './protocol.ts';

describe('convertProtocol (Istio kube.ConvertProtocol)', () => {
  const rows: { name: string; port?: number; portName?: string; l4?: string; app?: string; want: string }[] = [
    // Istio's own table (pkg/config/kube/conversion_test.go).
    { name: 'resolves empty', want: AUTO_PROTOCOL },
    { name: 'resolves from protocol directly', l4: 'UDP', want: 'UDP' },
    { name: 'resolves from port name', portName: 'http-something', want: 'HTTP' },
    { name: 'prefers appProto over portName', portName: 'http-something', app: 'https', want: 'HTTPS' },
    { name: 'resolves from appProto', portName: 'something-httpx', app: 'https', want: 'HTTPS' },
    { name: 'resolves grpc-web', portName: 'grpc-web-x', want: 'GRPC-Web' },
    { name: 'makes sure grpc-web is not resolved incorrectly', portName: 'grpcweb-x', want: AUTO_PROTOCOL },
    { name: 'resolves based on known ports', port: 3306, portName: 'random-name', want: 'TCP' },
    { name: 'standard app protocol', port: 3306, portName: 'random-name', app: 'kubernetes.io/h2c', want: 'HTTP2' },
    // Every name prefix Istio knows.
    { name: 'http', portName: 'http', want: 'HTTP' },
    { name: 'http-web', portName: 'http-web', want: 'HTTP' },
    { name: 'http2-', portName: 'http2-api', want: 'HTTP2' },
    { name: 'https-', portName: 'https-admin', want: 'HTTPS' },
    { name: 'grpc-', portName: 'grpc-api', want: 'GRPC' },
    { name: 'grpc', portName: 'grpc', want: 'GRPC' },
    { name: 'grpc-web', portName: 'grpc-web', want: 'GRPC-Web' },
    { name: 'GRPC-WEB (case)', portName: 'GRPC-WEB-x', want: 'GRPC-Web' },
    { name: 'tcp-', portName: 'tcp-db', want: 'TCP' },
    { name: 'tls-', portName: 'tls-passthrough', want: 'TLS' },
    { name: 'mongo-', portName: 'mongo-primary', want: 'Mongo' },
    { name: 'redis-', portName: 'redis-cache', want: 'Redis' },
    { name: 'mysql-', portName: 'mysql-db', want: 'MySQL' },
    { name: 'udp-', portName: 'udp-dns', want: 'UDP' },
    { name: 'http_proxy', portName: 'http_proxy', want: 'HTTP_PROXY' },
    { name: 'case-insensitive', portName: 'HTTP-web', want: 'HTTP' },
    { name: 'unknown prefix', portName: 'web', want: AUTO_PROTOCOL },
    { name: 'prefix must be the whole first part', portName: 'httpx-web', want: AUTO_PROTOCOL },
    { name: 'DoubleHBONE never matches (Istio compares it with the lower-cased name)', portName: 'DoubleHBONE', want: AUTO_PROTOCOL },
    // appProtocol replaces the name entirely.
    { name: 'appProtocol http', portName: 'tcp-x', app: 'http', want: 'HTTP' },
    { name: 'appProtocol grpc', portName: 'web', app: 'grpc', want: 'GRPC' },
    { name: 'appProtocol grpc-web', app: 'grpc-web', want: 'GRPC-Web' },
    { name: 'appProtocol with a suffix', app: 'http2-something', want: 'HTTP2' },
    { name: 'unknown appProtocol does not fall back to the name', portName: 'http-web', app: 'example.com/custom', want: AUTO_PROTOCOL },
    { name: 'kubernetes.io/ws', app: 'kubernetes.io/ws', want: 'HTTP' },
    { name: 'kubernetes.io/wss', app: 'kubernetes.io/wss', want: 'HTTPS' },
    // Well-known ports are TCP only when nothing names a protocol.
    { name: 'SMTP', port: 25, want: 'TCP' },
    { name: 'DNS', port: 53, portName: 'dns', want: 'TCP' },
    { name: 'MongoDB port', port: 27017, want: 'TCP' },
    { name: 'well-known port with a named protocol', port: 3306, portName: 'http', want: 'HTTP' },
    { name: 'UDP wins over the name', l4: 'UDP', portName: 'http-x', want: 'UDP' },
    { name: 'SCTP is read by name', l4: 'SCTP', portName: 'http-x', want: 'HTTP' },
  ];
  for (const r of rows) {
    it(`${r.name} → ${r.want}`, () => {
      assert.equal(convertProtocol(r.port ?? 0, r.portName, r.l4, r.app), r.want);
    });
  }

  it('parseProtocol ignores case and knows every Istio protocol name', () => {
    const known = { tcp: 'TCP', udp: 'UDP', grpc: 'GRPC', 'grpc-web': 'GRPC-Web', http: 'HTTP', http_proxy: 'HTTP_PROXY', http2: 'HTTP2', https: 'HTTPS', tls: 'TLS', mongo: 'Mongo', redis: 'Redis', mysql: 'MySQL' };
    for (const [name, want] of Object.entries(known)) {
      assert.equal(parseProtocol(name), want);
      assert.equal(parseProtocol(name.toUpperCase()), want);
    }
    assert.equal(parseProtocol('hbone'), AUTO_PROTOCOL);
  });
});
