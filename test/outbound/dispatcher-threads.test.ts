/**
 * A mesh belongs to one thread. `mesh.dispatcher` handed to a worker thread (workerData,
 * postMessage) used to be copied by structured clone into a plain object without `dispatch`, so
 * the worker's call failed far from the cause (`this.dispatch is not a function`); it is refused
 * where it is sent (DataCloneError). A worker makes a mesh of its own, which works.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { MessageChannel, Worker } from 'node:worker_threads';
import { createMesh } from '../../src/index.ts';

describe('a mesh and worker threads', async () => {
  const mesh = await createMesh({ service: 'main', config: [] });
  after(() => mesh.close());

  it('refuses to send mesh.dispatcher to another thread, where it is sent (DataCloneError)', () => {
    assert.throws(() => structuredClone(mesh.dispatcher), { name: 'DataCloneError' });
    const { port1, port2 } = new MessageChannel();
    try {
      assert.throws(() => port1.postMessage({ dispatcher: mesh.dispatcher }), { name: 'DataCloneError' });
    } finally {
      port1.close();
      port2.close();
    }
    assert.throws(() => new Worker('void 0', { eval: true, workerData: { dispatcher: mesh.dispatcher } }), { name: 'DataCloneError' });
  });

  it('a worker thread with a mesh of its own calls through it', async () => {
    const upstream = createServer((_req, res) => res.end('from upstream'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`;
      const worker = new Worker(new URL('./fixtures/mesh-in-worker.ts', import.meta.url), { workerData: { url } });
      const answer = await new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      assert.deepEqual(answer, { status: 200, body: 'from upstream' });
      await new Promise((r) => worker.once('exit', r));
    } finally {
      upstream.closeAllConnections();
      await new Promise((r) => upstream.close(r));
    }
  });
});
