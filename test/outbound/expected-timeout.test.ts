/**
 * `x-envoy-expected-rq-timeout-ms`, as Envoy's router sets it (FilterUtility::setTimeoutHeaders):
 * the route's per-try timeout when it has one (a per-try timeout not shorter than the route
 * timeout is ignored), else the route timeout — and never more than what is left of the route
 * timeout, on a retry too. All on a ManualClock.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ManualClock, type Mesh } from '../../src/index.ts';
import { meshFor, settle, until } from '../helpers/mesh-calls.ts';

/** The header each request arrived with, in order. */
const seen: (string | undefined)[] = [];
/** Requests to '/hold' wait here for the test to answer them. */
const held: ServerResponse[] = [];
/** Attempts ended (`meshlet:attempt:end`). */
let attemptsEnded = 0;
const onAttemptEnd = (): void => {
  attemptsEnded++;
};

describe('x-envoy-expected-rq-timeout-ms', () => {
  let server: Server;
  let port = 0;
  before(async () => {
    subscribe('meshlet:attempt:end', onAttemptEnd);
    server = createServer((req, res) => {
      seen.push(req.headers['x-envoy-expected-rq-timeout-ms'] as string | undefined);
      if (req.url === '/hold') held.push(res);
      else res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    unsubscribe('meshlet:attempt:end', onAttemptEnd);
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const route = [{ destination: { host: 'svc' } }];
  const http = [
    { match: [{ uri: { prefix: '/both' } }], route, timeout: '2s', retries: { attempts: 2, perTryTimeout: '200ms', retryOn: '503' } },
    { match: [{ uri: { prefix: '/pertry-only' } }], route, retries: { attempts: 2, perTryTimeout: '300ms', retryOn: '503' } },
    { match: [{ uri: { prefix: '/longer-pertry' } }], route, timeout: '1s', retries: { attempts: 2, perTryTimeout: '5s', retryOn: '503' } },
    { match: [{ uri: { prefix: '/route-only' } }], route, timeout: '1500ms' },
    { match: [{ uri: { prefix: '/none' } }], route },
    { match: [{ uri: { exact: '/hold' } }], route, timeout: '1s', retries: { attempts: 2, perTryTimeout: '400ms', retryOn: '503' } },
  ];

  async function withMesh(fn: (mesh: Mesh, clock: ManualClock) => Promise<void>): Promise<void> {
    const clock = new ManualClock();
    const mesh = await meshFor([{ port }], http, [], { clock });
    try {
      await fn(mesh, clock);
    } finally {
      server.closeAllConnections();
      await mesh.close();
    }
  }

  async function headerOf(mesh: Mesh, path: string): Promise<string | undefined> {
    const before = seen.length;
    const res = await settle(mesh.fetch(`http://svc${path}`), path);
    await res.text();
    assert.equal(res.status, 200);
    assert.equal(seen.length, before + 1);
    return seen[before];
  }

  test('the per-try timeout when the route has one, else the route timeout; none without either', async () => {
    await withMesh(async (mesh) => {
      assert.equal(await headerOf(mesh, '/both'), '200', 'per-try 200 ms under a 2 s route timeout');
      assert.equal(await headerOf(mesh, '/pertry-only'), '300', 'per-try 300 ms, no route timeout');
      assert.equal(await headerOf(mesh, '/longer-pertry'), '1000', 'a per-try timeout longer than the route timeout is ignored');
      assert.equal(await headerOf(mesh, '/route-only'), '1500');
      assert.equal(await headerOf(mesh, '/none'), undefined);
    });
  });

  test('a retry is told the sooner of its per-try timeout and what is left of the route timeout', async () => {
    await withMesh(async (mesh, clock) => {
      const before = seen.length;
      const call = mesh.fetch('http://svc/hold');
      await until(() => held.length === 1, 'the first attempt');
      assert.equal(seen[before], '400', 'the per-try timeout (400 ms) under a 1 s route timeout');
      // 390 ms in, the first attempt fails (503); the retry comes after a backoff under 25 ms,
      // with about 600 ms of the route timeout left: it is told its own 400 ms.
      await answer503(clock, 390, 25);
      await until(() => held.length === 1, 'the retry');
      assert.equal(seen[before + 1], '400');
      // At t = 785 ms (within the retry's per-try timeout) it fails too; the third attempt, after
      // a backoff under 75 ms, has 140 to 215 ms of the route timeout left: that, not 400, is what it is told.
      await answer503(clock, 370, 75);
      await until(() => held.length === 1, 'the second retry');
      const third = Number(seen[before + 2]);
      assert.ok(third > 140 && third <= 215, `the third attempt is told ${seen[before + 2]} ms`);
      (held.shift() as ServerResponse).end('done');
      const res = await settle(call, 'the call');
      assert.equal(res.status, 200);
      await res.text();
    });
  });
});

/** Advances the clock by `after` ms, answers the held attempt 503, then lets the retry's backoff (under `backoff` ms) pass. */
async function answer503(clock: ManualClock, after: number, backoff: number): Promise<void> {
  clock.advance(after);
  const ended = attemptsEnded;
  (held.shift() as ServerResponse).writeHead(503, { 'content-length': '0' }).end();
  // The retry is scheduled as the 503's head arrives (the attempt's end is published then).
  await until(() => attemptsEnded > ended, 'the 503 to reach the mesh');
  await new Promise((r) => setImmediate(r));
  clock.advance(backoff);
}
