/**
 * A mesh refusing an invalid MeshConfig a control plane pushes names it once per version: each
 * reconnect gets the same MeshConfig first again (the control plane sends its MeshConfig on every
 * new stream), and that is not a new refusal to warn about; another invalid version is. A
 * hand-written control plane (SSE over loopback) that still pushes one, ending each stream to make
 * the mesh reconnect.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { shortJitter, until } from './client-helpers.ts';

const open: { close(): unknown }[] = [];
after(async () => {
  for (const o of open.reverse()) await o.close();
});

describe('an invalid pushed MeshConfig, sent again at every reconnect', () => {
  it('is warned about once per version', async () => {
    let streams = 0;
    /** ACKs the mesh sent: each stream's config and endpoints are ACKed after its MeshConfig was taken (or refused). */
    let acks = 0;
    let meshConfig = { version: 'bad1', meshConfig: { connectTimeout: 'soon' } };
    let current: ServerResponse | undefined;
    const server = createServer((req, res) => {
      if (req.url === '/v1/ack') acks++;
      if (new URL(req.url ?? '/', 'http://x').pathname !== '/v1/watch') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      streams++;
      current = res;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: hello\ndata: ${JSON.stringify({ connection: `c${streams}`, server: 'other', configVersion: 'v1', endpointsVersion: 'e1', heartbeatMs: 60_000 })}\n\n`);
      res.write(`event: mesh-config\ndata: ${JSON.stringify(meshConfig)}\n\n`);
      res.write(`event: config\nid: v1/\ndata: ${JSON.stringify({ version: 'v1', resources: [] })}\n\n`);
      res.write(`event: endpoints\nid: v1/e1\ndata: ${JSON.stringify({ version: 'e1', workloads: [] })}\n\n`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    open.push({
      close: () => {
        server.closeAllConnections();
        return new Promise<void>((r) => server.close(() => r()));
      },
    });
    const warnings: string[] = [];
    const mesh = await createMesh({ service: 'productpage', controlPlane: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: 't', identity: 'none', drainMs: 0, random: shortJitter(3), logger: { warn: (m: string) => warnings.push(m), info: () => undefined } });
    open.unshift(mesh);
    const refusals = (v: string) => warnings.filter((w) => w.includes(`version ${v} is not applied`)).length;
    await until(() => refusals('bad1') === 1, 'the first refusal');
    // Three reconnects, each sent the same invalid MeshConfig first.
    for (const n of [2, 3, 4]) {
      current?.destroy();
      await until(() => streams === n && acks === 2 * n, `reconnect ${n - 1}, its events taken`, 20_000);
    }
    assert.equal(refusals('bad1'), 1, warnings.join('\n'));
    // Another invalid version is named.
    meshConfig = { version: 'bad2', meshConfig: { connectTimeout: 'later' } };
    current?.destroy();
    await until(() => refusals('bad2') === 1, 'the refusal of another version', 20_000);
    assert.equal(refusals('bad1'), 1);
  });
});
