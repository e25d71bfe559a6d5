/**
 * startTelemetry()'s Prometheus endpoint in node:cluster workers. A worker's plain `listen()` is
 * handed to the primary, which shares one socket among the workers asking for the same port and
 * gives each connection to one of them: every scrape then read one worker's counters, the next
 * another's — a counter going up and down, which Prometheus reads as resets (rate() wrong). The
 * endpoint binds its port itself: a second worker on the same port is refused, saying what to do.
 */
import assert from 'node:assert/strict';
import cluster, { type Worker } from 'node:cluster';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';

type Reply = { port?: number; code?: string; message?: string };

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });

describe('the Prometheus endpoint in node:cluster workers', () => {
  const workers: Worker[] = [];
  after(async () => {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.isDead()) return resolve();
            w.once('exit', () => resolve());
            w.send('close');
          }),
      ),
    );
  });

  const start = (port: number): Promise<Reply> => {
    const w = cluster.fork({ PROM_PORT: String(port) });
    workers.push(w);
    return new Promise((resolve, reject) => {
      w.once('message', (m: Reply) => resolve(m));
      w.once('exit', (code) => reject(new Error(`worker exited (${code}) before it answered`)));
    });
  };

  it('is not shared by two workers: the second is refused with EADDRINUSE, naming the cluster and what to do', async () => {
    cluster.setupPrimary({ exec: new URL('./fixtures/prometheus-cluster-worker.ts', import.meta.url).pathname, execArgv: [], silent: true });
    const port = await freePort();
    const first = await start(port);
    assert.deepEqual(first, { port });
    const second = await start(port);
    assert.equal(second.code, 'EADDRINUSE', `the second worker listened too: ${JSON.stringify(second)}`);
    assert.match(second.message ?? '', new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: address in use .*node:cluster worker.*port ${port} \\+ cluster\\.worker\\.id`));
  });
});
