/**
 * The inbound observation seam on the wire: over mTLS between two meshes (`meshlet:inbound:end`
 * says https, mtls and the peer's principal), and the request bytes counted as received.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import type { InboundEndMessage } from '../../src/core/observe.ts';
import { createMesh } from '../../src/index.ts';
import { initDevCa } from '../../src/security/pki/dev-ca.ts';
import { listen } from '../helpers/frameworks.ts';

describe('over mTLS (two meshes from one dev CA)', () => {
  it("inbound:end says https, mtls and the peer's principal", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-observe-'));
    const ends: InboundEndMessage[] = [];
    const onEnd = (m: unknown) => ends.push(m as InboundEndMessage);
    subscribe('meshlet:inbound:end', onEnd);
    await initDevCa(dir);
    const b = await createMesh({ service: 'b', namespace: 'foo', serviceAccount: 'b', config: [], identity: { devCa: dir }, logger: { warn: () => {} } });
    const server = b.createServer((_req, res) => res.end('over mtls'));
    const port = await listen(server);
    const a = await createMesh({
      service: 'a',
      namespace: 'foo',
      serviceAccount: 'a',
      identity: { devCa: dir },
      logger: { warn: () => {} },
      config: [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'b', namespace: 'foo' },
          spec: { hosts: ['b.foo.svc.cluster.local'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1', ports: { http: port }, serviceAccount: 'b', labels: { 'security.istio.io/tlsMode': 'istio' } }] },
        },
      ],
    });
    try {
      const r = await a.fetch('http://b.foo.svc.cluster.local/x');
      assert.equal(await r.text(), 'over mtls');
      for (let i = 0; i < 50 && !ends.some((m) => m.workload === b.identity); i++) await new Promise((res) => setImmediate(res));
      const e = ends.find((m) => m.workload === b.identity);
      assert.deepEqual([e?.status, e?.scheme, e?.mtls, e?.peer?.principal, e?.details], [200, 'https', true, 'spiffe://cluster.local/ns/foo/sa/a', 'via_upstream']);
    } finally {
      unsubscribe('meshlet:inbound:end', onEnd);
      await a.close();
      await new Promise<void>((res) => server.close(() => res()));
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('request bytes', () => {
  it('the head as received (less its hop-by-hop headers), plus a body with Content-Length; an HTTP/1 request without Content-Length or Transfer-Encoding counts no body', async () => {
    const ends: InboundEndMessage[] = [];
    const onEnd = (m: unknown) => ends.push(m as InboundEndMessage);
    subscribe('meshlet:inbound:end', onEnd);
    const mesh = await createMesh({ service: 'bytes', namespace: 'foo', config: [], logger: { warn: () => {} } });
    const server = mesh.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    const port = await listen(server);
    try {
      const cases = [
        'GET /a?b=c HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: 0123456789\r\nConnection: close\r\n\r\n',
        'POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world',
        'DELETE /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
      ];
      for (const bytes of cases) {
        ends.length = 0;
        const socket = connect(port, '127.0.0.1');
        socket.end(bytes);
        let answer = '';
        for await (const chunk of socket) answer += String(chunk);
        assert.match(answer, /^HTTP\/1\.1 200 /);
        for (let i = 0; i < 50 && ends.length === 0; i++) await new Promise((res) => setImmediate(res));
        const e = ends.filter((m) => m.workload === mesh.identity);
        assert.equal(e.length, 1);
        // Without the hop-by-hop Connection line: the head as the app gets it (Envoy counts its header map after mutateRequestHeaders).
        assert.equal(e[0]?.requestBytes, Buffer.byteLength(bytes) - 'Connection: close\r\n'.length, bytes.split('\r\n')[0]);
      }
    } finally {
      unsubscribe('meshlet:inbound:end', onEnd);
      await new Promise<void>((r) => server.close(() => r()));
      await mesh.close();
    }
  });
});
