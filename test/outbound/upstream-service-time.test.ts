/**
 * `x-envoy-upstream-service-time` on an upstream's response, as Envoy's router adds it under Istio
 * (unless `proxyHeaders.envoyDebugHeaders` is disabled, Envoy's `suppress_envoy_headers`): the ms
 * from the end of the request — retries and backoffs included — to the response head, replacing an
 * upstream's own, before the route's response header operations. The mesh's own answers (a direct
 * response) carry none. All on a ManualClock.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { ManualClock, type Mesh } from '../../src/index.ts';
import { meshFor, settle, until } from '../helpers/mesh-calls.ts';

const NAME = 'x-envoy-upstream-service-time';

describe('x-envoy-upstream-service-time', () => {
  let server: Server;
  let port = 0;
  /** Responses the test answers itself, in arrival order (every request waits here). */
  const held: ServerResponse[] = [];
  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/own') res.setHeader(NAME, '999');
        held.push(res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const route = [{ destination: { host: 'svc' } }];
  const http = [
    { match: [{ uri: { exact: '/removed' } }], route, headers: { response: { remove: [NAME] } } },
    { match: [{ uri: { exact: '/direct' } }], directResponse: { status: 200, body: { string: 'mesh' } } },
    { match: [{ uri: { exact: '/retried' } }], route, retries: { attempts: 1, retryOn: '503' } },
    { route },
  ];

  async function withMesh(opts: object, fn: (mesh: Mesh, clock: ManualClock) => Promise<void>): Promise<void> {
    const clock = new ManualClock();
    const mesh = await meshFor([{ port }], http, [], { clock, ...opts });
    try {
      await fn(mesh, clock);
    } finally {
      server.closeAllConnections();
      await mesh.close();
    }
  }

  /** Answers the next held request (`status`) once the clock has moved `ms`. */
  async function answerAfter(clock: ManualClock, ms: number, status = 200): Promise<void> {
    await until(() => held.length > 0, 'the request to arrive');
    clock.advance(ms);
    (held.shift() as ServerResponse).writeHead(status, { 'content-length': '2' }).end('ok');
  }

  test('the ms from the request to the response head; an upstream\'s own value is replaced', async () => {
    await withMesh({}, async (mesh, clock) => {
      const call = mesh.fetch('http://svc/');
      await answerAfter(clock, 40);
      const res = await settle(call, 'the call');
      await res.text();
      assert.equal(res.headers.get(NAME), '40');

      const own = mesh.fetch('http://svc/own');
      await answerAfter(clock, 7);
      const r2 = await settle(own, 'the call');
      await r2.text();
      assert.equal(r2.headers.get(NAME), '7', 'the upstream sent 999: the mesh\'s value replaces it');
    });
  });

  test('retries and backoffs count', async () => {
    await withMesh({}, async (mesh, clock) => {
      let ended = 0;
      const onEnd = (): void => {
        ended++;
      };
      subscribe('meshlet:attempt:end', onEnd);
      const call = mesh.fetch('http://svc/retried');
      await answerAfter(clock, 10, 503);
      // The retry is scheduled as the 503's head arrives (the attempt's end is published then) and
      // waits for its backoff (under 25 ms): it goes once the clock has moved that far.
      await until(() => ended === 1, 'the 503 to reach the mesh');
      unsubscribe('meshlet:attempt:end', onEnd);
      clock.advance(25);
      await answerAfter(clock, 5);
      const res = await settle(call, 'the call');
      await res.text();
      assert.equal(res.status, 200);
      assert.equal(res.headers.get(NAME), '40', '10 ms, the 25 ms the clock moved for the backoff, then 5 ms');
    });
  });

  test('a streamed body: counted from its end', async () => {
    await withMesh({}, async (mesh, clock) => {
      const body = new PassThrough();
      const call = request('http://svc/', { method: 'POST', body, dispatcher: mesh.dispatcher });
      body.write('a');
      clock.advance(100);
      body.end('b');
      await answerAfter(clock, 3);
      const res = await settle(call, 'the call');
      await res.body.dump();
      assert.equal(res.headers[NAME], '3', 'the 100 ms before the body ended do not count');
    });
  });

  test('a route\'s response operation can remove it; the mesh\'s own answers have none', async () => {
    await withMesh({}, async (mesh, clock) => {
      const call = mesh.fetch('http://svc/removed');
      await answerAfter(clock, 1);
      const res = await settle(call, 'the call');
      await res.text();
      assert.equal(res.headers.get(NAME), null);
      const direct = await mesh.fetch('http://svc/direct');
      assert.equal(await direct.text(), 'mesh');
      assert.equal(direct.headers.get(NAME), null);
    });
  });

  test('not with proxyHeaders.envoyDebugHeaders disabled: an upstream\'s own value goes through', async () => {
    await withMesh({ proxyHeaders: { envoyDebugHeaders: { disabled: true } } }, async (mesh, clock) => {
      const call = mesh.fetch('http://svc/');
      await answerAfter(clock, 4);
      const res = await settle(call, 'the call');
      await res.text();
      assert.equal(res.headers.get(NAME), null);
      const own = mesh.fetch('http://svc/own');
      await answerAfter(clock, 4);
      const r2 = await settle(own, 'the call');
      await r2.text();
      assert.equal(r2.headers.get(NAME), '999');
    });
  });
});
