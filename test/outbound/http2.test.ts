/**
 * HTTP/2 upstreams (cleartext h2c, `node:http2`): a port declared `HTTP2` or `GRPC` is reached
 * over HTTP/2 by `mesh.fetch` and `undici.request`, and routing and retries work over it.
 */
import assert from 'node:assert/strict';
import { constants as h2, createServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import { call, destinationRule, serviceEntry, virtualService } from '../helpers/upstreams.ts';

type H2Behaviour = (req: Http2ServerRequest, res: Http2ServerResponse, hit: number) => void;

interface H2Upstream {
  readonly name: string;
  readonly port: number;
  hits: number;
  /** HTTP/2 sessions (connections) opened so far. */
  sessionsOpened: number;
  /** HTTP versions of the requests received. */
  readonly versions: string[];
  readonly seen: { method: string; url: string; body: string }[];
  behaviour: H2Behaviour;
  close(): Promise<void>;
}

const okH2 =
  (name: string): H2Behaviour =>
  (_req, res) => {
    res.setHeader('x-upstream', name);
    res.end(name);
  };

/** A cleartext HTTP/2 (h2c, prior knowledge) server on 127.0.0.1 that counts hits. */
async function startH2Upstream(name: string): Promise<H2Upstream> {
  const u: H2Upstream = { name, port: 0, hits: 0, sessionsOpened: 0, versions: [], seen: [], behaviour: okH2(name), close: async () => undefined };
  const server: Http2Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    u.hits++;
    u.versions.push(req.httpVersion);
    u.seen.push({ method: req.method, url: req.url, body: Buffer.concat(chunks).toString() });
    u.behaviour(req, res, u.hits);
  });
  const sessions = new Set<import('node:http2').ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    u.sessionsOpened++;
    s.on('close', () => sessions.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  (u as { port: number }).port = (server.address() as AddressInfo).port;
  u.close = () =>
    new Promise<void>((r) => {
      for (const s of sessions) s.destroy();
      server.close(() => r());
    });
  return u;
}

const HOST = 'ratings.default.svc.cluster.local';
const GRPC_HOST = 'details.default.svc.cluster.local';

describe('HTTP/2 (h2c) upstreams', () => {
  let v1: H2Upstream;
  let v2: H2Upstream;
  let flaky: H2Upstream;
  let grpc: H2Upstream;
  let mesh: Mesh;

  before(async () => {
    [v1, v2, flaky, grpc] = await Promise.all([startH2Upstream('v1'), startH2Upstream('v2'), startH2Upstream('flaky'), startH2Upstream('grpc')]);
    const h2Port = (protocol: string) => ({ ports: [{ number: 9080, name: 'http', protocol }] });
    mesh = await createMesh({
      service: 'reviews',
      random: seededRandom(3),
      config: [
        serviceEntry(
          'ratings',
          HOST,
          9080,
          [
            { port: v1.port, labels: { version: 'v1' } },
            { port: v2.port, labels: { version: 'v2' } },
            { port: flaky.port, labels: { version: 'flaky' } },
          ],
          h2Port('HTTP2'),
        ),
        serviceEntry('details', GRPC_HOST, 9080, [{ port: grpc.port }], h2Port('GRPC')),
        destinationRule('ratings', 'ratings', {
          subsets: [
            { name: 'v1', labels: { version: 'v1' } },
            { name: 'v2', labels: { version: 'v2' } },
            { name: 'flaky', labels: { version: 'flaky' } },
          ],
        }),
        virtualService('ratings', ['ratings'], [
          { name: 'retry', match: [{ uri: { prefix: '/retry' } }], route: [{ destination: { host: 'ratings', subset: 'flaky' } }], retries: { attempts: 2, retryOn: '503' } },
          { name: 'v1', match: [{ uri: { prefix: '/v1' } }], route: [{ destination: { host: 'ratings', subset: 'v1' } }] },
          {
            name: 'split',
            route: [
              { destination: { host: 'ratings', subset: 'v1' }, weight: 25 },
              { destination: { host: 'ratings', subset: 'v2' }, weight: 75 },
            ],
          },
        ]),
      ],
    });
  });

  after(async () => {
    await mesh.close();
    await Promise.all([v1, v2, flaky, grpc].map((u) => u.close()));
  });

  test('mesh.fetch reaches an HTTP2 port over HTTP/2', async () => {
    const before = v1.hits;
    const r = await call(mesh, 'http://ratings:9080/v1/a?x=1', { method: 'POST', body: 'hello h2' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'v1');
    assert.equal(r.upstream, 'v1');
    assert.equal(v1.hits - before, 1);
    assert.equal(v1.versions.at(-1), '2.0');
    assert.deepEqual(v1.seen.at(-1), { method: 'POST', url: '/v1/a?x=1', body: 'hello h2' });
  });

  test('undici.request with mesh.dispatcher reaches it over HTTP/2; a GRPC port does too', async () => {
    const res = await request('http://ratings:9080/v1/b', { dispatcher: mesh.dispatcher });
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), 'v1');
    assert.equal(v1.versions.at(-1), '2.0');
    assert.equal(v1.seen.at(-1)?.url, '/v1/b');

    const g = await request('http://details:9080/svc.Details/Get', { method: 'POST', body: 'x', dispatcher: mesh.dispatcher });
    assert.equal(g.statusCode, 200);
    assert.equal(await g.body.text(), 'grpc');
    assert.equal(grpc.hits, 1);
    assert.deepEqual(grpc.versions, ['2.0']);
  });

  test('weighted routing 25/75 over HTTP/2 within statistical tolerance; concurrent requests share the h2 connections', async () => {
    const a = v1.hits;
    const b = v2.hits;
    const n = 400;
    for (let i = 0; i < n; i += 20) {
      const rs = await Promise.all(Array.from({ length: 20 }, () => call(mesh, 'http://ratings:9080/split')));
      for (const r of rs) assert.equal(r.status, 200);
    }
    const p1 = (v1.hits - a) / n;
    assert.equal(v1.hits - a + (v2.hits - b), n);
    // 4.5 standard deviations of a binomial(400, 0.25): ±0.097
    assert.ok(Math.abs(p1 - 0.25) < 0.097, `v1 share ${p1}`);
    assert.ok(v1.versions.every((v) => v === '2.0') && v2.versions.every((v) => v === '2.0'), 'every request went over HTTP/2');
    // 20 requests at a time are streams on one connection per endpoint, not 20 connections.
    assert.equal(v1.sessionsOpened, 1);
    assert.equal(v2.sessionsOpened, 1);
  });

  test('a 503 from the h2 upstream is retried under retries {attempts: 2, retryOn: 503}', async () => {
    // Every other request answers 503 first.
    flaky.behaviour = (_req, res, hit) => {
      res.setHeader('x-upstream', 'flaky');
      if (hit % 2 === 1) {
        res.statusCode = 503;
        res.end('unavailable');
      } else res.end('recovered');
    };
    const before = flaky.hits;
    const r = await call(mesh, 'http://ratings:9080/retry', { method: 'POST', body: 'replay me' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'recovered');
    assert.equal(r.flags, null);
    assert.equal(flaky.hits - before, 2);
    assert.deepEqual(
      flaky.seen.slice(-2).map((s) => s.body),
      ['replay me', 'replay me'],
      'the body is replayed on the retry',
    );

    // Always 503: three attempts (1 + 2 retries), then the last 503 with URX.
    flaky.behaviour = (_req, res) => {
      res.statusCode = 503;
      res.end('still down');
    };
    const b2 = flaky.hits;
    const r2 = await call(mesh, 'http://ratings:9080/retry');
    assert.equal(r2.status, 503);
    assert.equal(r2.body, 'still down');
    assert.equal(r2.flags, 'URX');
    assert.equal(flaky.hits - b2, 3);
    assert.ok(flaky.versions.every((v) => v === '2.0'));
  });
  test('a stream the h2 upstream resets (RST_STREAM) before answering is a remote reset: 503 UR, "remote reset", as Envoy; a refused stream stays "remote refused stream reset"', async () => {
    flaky.behaviour = (req) => req.stream.close(h2.NGHTTP2_INTERNAL_ERROR);
    const before = flaky.hits;
    const r = await call(mesh, 'http://ratings:9080/retry');
    assert.equal(r.status, 503);
    assert.equal(r.flags, 'UR');
    assert.equal(r.body, 'upstream connect error or disconnect/reset before headers. reset reason: remote reset');
    assert.equal(flaky.hits - before, 1, 'retryOn 503 does not retry a reset');

    const u = await request('http://ratings:9080/retry', { dispatcher: mesh.dispatcher });
    assert.equal(u.statusCode, 503);
    assert.equal(u.headers['x-meshlet-response-flags'], 'UR');
    assert.match(await u.body.text(), /reset reason: remote reset$/);
  });
});
