/**
 * The protocol telemetry reports for a call (Envoy's `%PROTOCOL%` / `request.protocol`, Istio's
 * `request_protocol` label: `grpc` for a gRPC call, else `http`) is the one the call went out
 * with, for every kind of cluster: an HTTP call to an HTTP/2 port is HTTP/2 on the wire — through
 * a cluster with endpoints (STATIC) and through a resolution-NONE ServiceEntry's (istiod's
 * ORIGINAL_DST cluster, whose `http2_protocol_options` come from the port's protocol as for any
 * other: pilot/pkg/networking/core/cluster_builder.go `setUpstreamProtocol`) alike — and
 * reported so; ALLOW_ANY's PassthroughCluster sends HTTP/1.1 and says so.
 */
import assert from 'node:assert/strict';
import { createServer as createH1Server, type Server } from 'node:http';
import { createServer as createH2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { capture, telemetry, until } from '../helpers/access-log.ts';
import { serviceEntry } from '../helpers/upstreams.ts';

const FORMAT = '%REQ(:AUTHORITY)% %PROTOCOL%';

describe('the protocol telemetry reports is the one the call used', () => {
  let h2: Http2Server;
  let h1: Server;
  let h2Port = 0;
  let h1Port = 0;
  /** The HTTP version of each request the servers got. */
  const versions: string[] = [];
  let mesh: Mesh;
  const log = capture();

  before(async () => {
    h2 = createH2Server((req, res) => {
      versions.push(req.httpVersion);
      res.end('h2');
    });
    h1 = createH1Server((req, res) => {
      versions.push(req.httpVersion);
      res.end('h1');
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
    h2Port = (h2.address() as AddressInfo).port;
    h1Port = (h1.address() as AddressInfo).port;
    const none = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'ext', namespace: 'default' },
      spec: { hosts: ['localhost'], location: 'MESH_EXTERNAL', resolution: 'NONE', ports: [{ number: h2Port, name: 'http2', protocol: 'HTTP2' }] },
    };
    const staticH2 = serviceEntry('ratings', 'ratings.default.svc.cluster.local', 9080, [{ port: h2Port }]);
    (staticH2 as { spec: { ports: { protocol: string }[] } }).spec.ports[0] = { number: 9080, name: 'http', protocol: 'HTTP2' } as never;
    mesh = await createMesh({
      service: 'client',
      logger: log.logger,
      extensionProviders: [{ name: 'log', envoyFileAccessLog: { logFormat: { text: FORMAT } } }],
      config: [telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'log' }] }] }), none, staticH2],
    });
  });
  after(async () => {
    await mesh.close();
    h1.closeAllConnections();
    await new Promise((r) => h1.close(r));
    await new Promise((r) => h2.close(r));
  });

  async function protocolOf(url: string): Promise<string> {
    log.entries.length = 0;
    const before = versions.length;
    const res = await mesh.fetch(url);
    await res.text();
    assert.equal(res.status, 200);
    await until(() => log.lines().length > 0, 'the access log line');
    assert.equal(versions.length, before + 1);
    const line = log.lines()[0] as string;
    const onWire = versions.at(-1) === '2.0' ? 'HTTP/2' : 'HTTP/1.1';
    assert.equal(line.split(' ')[1], onWire, `${url}: the log says what went on the wire (${line})`);
    return onWire;
  }

  it('an HTTP2 port of a cluster with endpoints: HTTP/2', async () => {
    assert.equal(await protocolOf('http://ratings.default.svc.cluster.local:9080/'), 'HTTP/2');
  });

  it('an HTTP2 port of a resolution-NONE ServiceEntry: HTTP/2', async () => {
    assert.equal(await protocolOf(`http://localhost:${h2Port}/`), 'HTTP/2');
  });

  it('ALLOW_ANY PassthroughCluster: HTTP/1.1', async () => {
    assert.equal(await protocolOf(`http://127.0.0.1:${h1Port}/`), 'HTTP/1.1');
  });
});
