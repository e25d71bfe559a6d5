/**
 * A retriable response is not read to its end before the retry: as Envoy's router does on
 * retriable response headers (router.cc onUpstreamHeaders: the upstream request's stream is
 * reset, the retry scheduled), the attempt's stream is reset at once — an endless or slow 503
 * body never holds the call — and the retry goes out after its backoff. The 503 counts once
 * (outlier detection, `meshlet:attempt:end`).
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, describe, test } from 'node:test';
import { request } from 'undici';
import { ManualClock } from '../../src/index.ts';
import type { AttemptEndMessage } from '../../src/core/observe.ts';
import { meshFor, until } from '../helpers/mesh-calls.ts';
import { call, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const RETRY = [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 1, retryOn: '5xx', retryIgnorePreviousHosts: false } }];

describe('a retried response is reset at its head, not drained', () => {
  const ups: Upstream[] = [];
  after(async () => {
    await Promise.all(ups.map((u) => u.close()));
  });

  test('a 503 whose body never ends: the retry is scheduled at its head, its connection closes, the caller gets the retry\'s 200; the 503 is one attempt end', async () => {
    const clock = new ManualClock();
    let closed = false;
    const up = await startUpstream('endless', (_req, res, hit) => {
      if (hit === 1) {
        res.writeHead(503, { 'content-type': 'text/plain' });
        const t = setInterval(() => res.write('x'.repeat(100)), 5);
        res.on('close', () => {
          clearInterval(t);
          closed = true;
        });
        return;
      }
      res.end('ok');
    });
    ups.push(up);
    const ends: AttemptEndMessage[] = [];
    const onEnd = (m: unknown): void => {
      ends.push(m as AttemptEndMessage);
    };
    subscribe('meshlet:attempt:end', onEnd);
    const mesh = await meshFor([{ port: up.port }], RETRY, [], { clock });
    try {
      const p = request('http://svc/', { dispatcher: mesh.dispatcher });
      // No route timeout: the only timer on the mesh clock is the retry's backoff.
      await until(() => clock.pending === 1, 'the retry to be scheduled while the 503 body still streams', 3000);
      await until(() => closed, 'the 503\'s connection to be closed (its stream reset)', 3000);
      assert.equal(up.hits, 1);
      clock.advance(25); // Envoy's backoff for a first retry is under the 25 ms base
      const r = await p;
      assert.equal(r.statusCode, 200);
      assert.equal(await r.body.text(), 'ok');
      assert.equal(up.hits, 2);
      assert.deepEqual(
        ends.map((m) => [m.attempt, m.status, m.failure]),
        [
          [1, 503, undefined],
          [2, 200, undefined],
        ],
        'the reset 503 is reported (and charged to outlier detection) once, as a 503',
      );
    } finally {
      unsubscribe('meshlet:attempt:end', onEnd);
      await up.close(); // a call still reading the endless body ends (the mesh clock never reaches closeTimeoutMs)
      await mesh.close();
    }
  });

  test('a 503 with a slow body: mesh.fetch gets the retry without waiting for it', async () => {
    const clock = new ManualClock();
    const up = await startUpstream('slow', (_req, res, hit) => {
      if (hit === 1) {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.write('a');
        const t = setTimeout(() => res.end('b'), 60_000);
        res.on('close', () => clearTimeout(t));
        return;
      }
      res.end('second');
    });
    ups.push(up);
    const mesh = await meshFor([{ port: up.port }], RETRY, [], { clock });
    try {
      const p = mesh.fetch('http://svc/');
      await until(() => clock.pending === 1, 'the retry to be scheduled', 3000);
      clock.advance(25);
      const r = await p;
      assert.equal(r.status, 200);
      assert.equal(await r.text(), 'second');
    } finally {
      await up.close();
      await mesh.close();
    }
  });

  test('a 503 that ends with its head (content-length: 0) is not reset: the retry reuses its connection', async () => {
    const clock = new ManualClock();
    const sockets: number[] = [];
    const up = await startUpstream('empty', (req, res, hit) => {
      sockets.push(req.socket.remotePort ?? -1);
      res.statusCode = hit === 1 ? 503 : 200;
      res.setHeader('content-length', '0');
      res.end();
    });
    ups.push(up);
    const mesh = await meshFor([{ port: up.port }], RETRY, [], { clock });
    try {
      const p = call(mesh, 'http://svc/');
      await until(() => clock.pending === 1, 'the retry to be scheduled', 3000);
      // Let the 503 finish on its connection before the retry looks for one.
      await new Promise((r) => setTimeout(r, 20));
      clock.advance(25);
      const r = await p;
      assert.equal(r.status, 200);
      assert.equal(sockets.length, 2);
      assert.equal(sockets[0], sockets[1], 'one connection for both attempts');
    } finally {
      await mesh.close();
    }
  });
});
