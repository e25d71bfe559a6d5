/**
 * A response that is slow to start or a stream that goes quiet is not cut by the mesh: an Istio
 * sidecar's HTTP connection manager has `stream_idle_timeout: 0` (pilot/pkg/networking/core/
 * listener_builder.go: `connectionManager.StreamIdleTimeout = durationpb.New(0 * time.Second)`)
 * and a route without `timeout` has none either, so a Server-Sent Events stream quiet for more
 * than 5 minutes, or a long poll answered after more than 5 minutes, goes through. The mesh's
 * pools used to keep undici's own defaults (`headersTimeout` and `bodyTimeout` 300 s): such a
 * call failed after 5 minutes (a 503 UC before the headers, a broken body after them).
 *
 * undici's request timers run on its own coarse clock: the test moves it 6 minutes ahead while the
 * sockets stay real.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { request } from 'undici';
import { createMesh } from '../../src/index.ts';
import { serviceEntry, startUpstream } from '../helpers/upstreams.ts';

/** undici's timer clock (its request timers run on it), moved ahead as undici's own tests move it. */
const undiciTimers = createRequire(import.meta.url)('undici/lib/util/timers.js') as { tick(ms: number): void };

const SVC = 'svc.default.svc.cluster.local';

describe('idle streams through the mesh (Istio: stream_idle_timeout 0, no route timeout)', () => {
  for (const target of ['a mesh service', 'a host outside the mesh (passthrough)'] as const) {
    it(`an SSE stream quiet for 6 minutes and a long poll answered after 6 minutes both complete: ${target}`, async (t) => {
      const held: { end(chunk?: string): void }[] = [];
      const up = await startUpstream('sse', (req, res) => {
        if (req.url === '/sse') {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('data: first\n\n');
        }
        held.push(res);
      });
      const mesh = await createMesh({ service: 'client', config: [serviceEntry('svc', SVC, 80, [{ port: up.port }])] });
      t.after(async () => {
        for (const r of held) r.end();
        await mesh.close();
        await up.close();
      });
      const base = target === 'a mesh service' ? 'http://svc' : `http://127.0.0.1:${up.port}`;
      const sse = await request(`${base}/sse`, { dispatcher: mesh.dispatcher });
      assert.equal(sse.statusCode, 200);
      const text = sse.body.setEncoding('utf8');
      const first = await new Promise<string>((resolve) => text.once('data', resolve));
      assert.equal(first, 'data: first\n\n');
      let bodyError: Error | undefined;
      sse.body.on('error', (e) => {
        bodyError = e;
      });
      const poll = request(`${base}/poll`, { dispatcher: mesh.dispatcher }).then(
        (r) => r,
        (e: Error) => e,
      );
      while (held.length < 2) await tick();
      undiciTimers.tick(0); // the timers just set start counting
      undiciTimers.tick(6 * 60_000);
      await tick();
      assert.equal(bodyError, undefined, 'the quiet SSE stream is not cut');
      held[0]?.end('data: second\n\n');
      held[1]?.end('late');
      const rest = await new Promise<string>((resolve, reject) => {
        let s = '';
        text.on('data', (c: string) => {
          s += c;
        });
        text.on('end', () => resolve(s));
        text.on('error', reject);
      });
      assert.equal(rest, 'data: second\n\n');
      const p = await poll;
      assert.ok(!(p instanceof Error), `the long poll is answered: ${p instanceof Error ? p.message : ''}`);
      assert.equal(p.statusCode, 200);
      assert.equal(await p.body.text(), 'late');
    });
  }
});
