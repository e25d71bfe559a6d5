/**
 * An `https://` URL that passes through to its own address (ALLOW_ANY's PassthroughCluster, a
 * resolution-NONE ServiceEntry on an HTTP/1.1 port) carries the app's own TLS, as through a
 * sidecar: its handshake offers HTTP/2 as undici does by default (`http/1.1`, `h2`), with its
 * cluster's connection settings or not. The server records the ALPN list the client offered.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:tls';
import { after, describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa } from '../helpers/pki.ts';
import { destinationRule, virtualService } from '../helpers/upstreams.ts';

describe('passthrough https:// URLs offer HTTP/2 by ALPN, as undici does', () => {
  after(cleanupPki);
  const leaf = issueLeaf(makeCa(), { ips: ['127.0.0.1'], dns: ['localhost'] });

  for (const [name, config] of [
    ['ALLOW_ANY PassthroughCluster', () => []],
    [
      'resolution NONE with a DestinationRule connection pool',
      (port: number) => [
        { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'ext', namespace: 'default' }, spec: { hosts: ['localhost'], location: 'MESH_EXTERNAL', resolution: 'NONE', ports: [{ number: port, name: 'http', protocol: 'HTTP' }] } },
        destinationRule('ext', 'localhost', { trafficPolicy: { connectionPool: { tcp: { connectTimeout: '3s' } } } }),
        virtualService('ext', ['localhost'], [{ route: [{ destination: { host: 'localhost' } }], retries: { attempts: 0 } }]),
      ],
    ],
  ] as const) {
    it(name, async () => {
      const offered: string[][] = [];
      const server = createServer({ cert: leaf.certPem, key: leaf.keyPem, ALPNCallback: ({ protocols }) => {
            offered.push(protocols);
            return 'http/1.1';
          },
        }, (s) => s.destroy());
      server.on('tlsClientError', () => undefined);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as AddressInfo).port;
      const mesh = await createMesh({ service: 'client', config: config(port), logger: { warn: () => undefined, info: () => undefined } });
      try {
        // The client refuses the test CA's certificate: only the handshake's offer matters here.
        const res = await mesh.fetch(`https://${name.startsWith('ALLOW') ? '127.0.0.1' : 'localhost'}:${port}/`);
        await res.text();
        assert.equal(res.status, 503);
        assert.deepEqual(offered[0], ['http/1.1', 'h2']);
      } finally {
        await mesh.close();
        server.close();
      }
    });
  }
});
