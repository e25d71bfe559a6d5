/**
 * With `trustEnvoyRequestHeaders: true` an app overrides its route's timeouts for one call with
 * Envoy's request headers, as behind an Istio sidecar whose istiod runs with
 * PILOT_SIDECAR_USE_REMOTE_ADDRESS=true ("timeout headers such as x-envoy-upstream-rq-timeout-ms
 * set by the calling application", listener.go): `x-envoy-upstream-rq-timeout-ms` replaces the route timeout (0: none),
 * `x-envoy-upstream-rq-per-try-timeout-ms` the per-try timeout. A numeric one is consumed, not sent
 * upstream; any other is ignored and sent on (Envoy's FilterUtility::finalTimeout). All on a ManualClock.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ManualClock, type Mesh } from '../../src/index.ts';
import { meshFor, settle, until } from '../helpers/mesh-calls.ts';

describe('x-envoy-upstream-rq-timeout-ms and x-envoy-upstream-rq-per-try-timeout-ms', () => {
  let server: Server;
  let port = 0;
  /** What each request arrived with, in order; every response waits in `held`. */
  const seen: IncomingHttpHeaders[] = [];
  const held: ServerResponse[] = [];
  before(async () => {
    server = createServer((req, res) => {
      seen.push(req.headers);
      held.push(res);
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
    { match: [{ uri: { prefix: '/retried' } }], route, timeout: '10s', retries: { attempts: 1, retryOn: '5xx' } },
    { route, timeout: '500ms', retries: { attempts: 0 } },
  ];

  async function withMesh(fn: (mesh: Mesh, clock: ManualClock) => Promise<void>): Promise<void> {
    const clock = new ManualClock();
    const mesh = await meshFor([{ port }], http, [], { clock, trustEnvoyRequestHeaders: true });
    try {
      await fn(mesh, clock);
    } finally {
      held.length = 0;
      server.closeAllConnections();
      await mesh.close();
    }
  }

  /** Starts a call, waits until the upstream has it, and returns the call with the headers it arrived with. */
  async function start(mesh: Mesh, url: string, headers: Record<string, string>): Promise<{ call: Promise<Response>; got: IncomingHttpHeaders }> {
    const before = seen.length;
    const call = mesh.fetch(url, { headers });
    await until(() => seen.length > before, 'the request to arrive');
    return { call, got: seen[before] as IncomingHttpHeaders };
  }

  test('x-envoy-upstream-rq-timeout-ms replaces the route timeout for the call, and is not sent upstream', async () => {
    await withMesh(async (mesh, clock) => {
      const { call, got } = await start(mesh, 'http://svc/', { 'x-envoy-upstream-rq-timeout-ms': '200' });
      assert.equal(got['x-envoy-upstream-rq-timeout-ms'], undefined);
      assert.equal(got['x-envoy-expected-rq-timeout-ms'], '200');
      clock.advance(200);
      const res = await settle(call, 'the timeout');
      assert.equal(res.status, 504);
      assert.equal(res.headers.get('x-meshlet-response-flags'), 'UT');
      await res.text();
    });
  });

  test('0 turns the route timeout off; a value that is not a number is ignored and sent on', async () => {
    await withMesh(async (mesh, clock) => {
      const off = await start(mesh, 'http://svc/', { 'x-envoy-upstream-rq-timeout-ms': '0' });
      assert.equal(off.got['x-envoy-expected-rq-timeout-ms'], undefined);
      let settled = false;
      void off.call.finally(() => {
        settled = true;
      });
      clock.advance(5000);
      await new Promise((r) => setImmediate(r));
      assert.equal(settled, false, 'no timeout: the call still waits 5 s later');
      (held.shift() as ServerResponse).end('late');
      const res = await settle(off.call, 'the answer');
      assert.equal(await res.text(), 'late');

      const bad = await start(mesh, 'http://svc/', { 'x-envoy-upstream-rq-timeout-ms': 'soon' });
      assert.equal(bad.got['x-envoy-upstream-rq-timeout-ms'], 'soon');
      assert.equal(bad.got['x-envoy-expected-rq-timeout-ms'], '500', 'the route timeout');
      clock.advance(500);
      assert.equal((await settle(bad.call, 'the route timeout')).status, 504);
    });
  });

  test('x-envoy-upstream-rq-per-try-timeout-ms gives the call a per-try timeout (retried under 5xx)', async () => {
    await withMesh(async (mesh, clock) => {
      const first = await start(mesh, 'http://svc/retried', { 'x-envoy-upstream-rq-per-try-timeout-ms': '100' });
      assert.equal(first.got['x-envoy-upstream-rq-per-try-timeout-ms'], undefined);
      assert.equal(first.got['x-envoy-expected-rq-timeout-ms'], '100');
      const before = seen.length;
      clock.advance(100);
      // The per-try timeout ends the first attempt; the retry goes after its backoff (under 25 ms
      // once scheduled): the clock moves on in small steps until it has (far from the 10 s route timeout).
      await until(() => {
        if (seen.length > before) return true;
        clock.advance(1);
        return false;
      }, 'the retry');
      assert.equal(seen[before]?.['x-envoy-attempt-count'], '2');
      (held.pop() as ServerResponse).end('second');
      const res = await settle(first.call, 'the retry\'s answer');
      assert.equal(await res.text(), 'second');
    });
  });

  test('a host outside the mesh (passthrough) gets the timeout the app asks for', async () => {
    await withMesh(async (mesh, clock) => {
      const { call, got } = await start(mesh, `http://127.0.0.1:${port}/`, { 'x-envoy-upstream-rq-timeout-ms': '300' });
      assert.equal(got['x-envoy-upstream-rq-timeout-ms'], undefined);
      clock.advance(300);
      const res = await settle(call, 'the timeout');
      assert.equal(res.status, 504);
      await res.text();
    });
  });
});
