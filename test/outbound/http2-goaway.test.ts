/**
 * An HTTP/2 upstream draining with GOAWAY while calls are on its connection: streams above the
 * frame's last stream id were never processed by the server. nghttp2 closes them REFUSED_STREAM
 * (`session_close_stream_on_goaway`), Envoy's codec reports `RemoteRefusedStreamReset`, and
 * Istio's default retry policy (`refused-stream`) sends them again on a new connection. undici
 * replays such a request itself only when it can (no body, a Buffer); a call with a body the
 * mesh streams to undici used to fail 503 UC ("connection termination") instead.
 */
import assert from 'node:assert/strict';
import { createServer, type Http2Server, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { serviceEntry } from '../helpers/upstreams.ts';

const HOST = 'ratings.default.svc.cluster.local';

describe('HTTP/2 GOAWAY refusing streams in flight', () => {
  let server: Http2Server;
  let mesh: Mesh;
  const sessions = new Set<ServerHttp2Session>();
  let sessionsOpened = 0;
  /** Streams held until `hold` of them are open; then GOAWAY names the first as the last processed. */
  let held: { stream: ServerHttp2Stream; body: string }[] = [];
  let hold = 0;
  const processed: string[] = [];

  const answer = (stream: ServerHttp2Stream, body: string) => {
    processed.push(body);
    if (!stream.destroyed) {
      stream.respond({ ':status': 200 });
      stream.end(`ok ${body}`);
    }
  };

  before(async () => {
    server = createServer();
    server.on('session', (s) => {
      sessionsOpened++;
      sessions.add(s);
      s.on('close', () => sessions.delete(s));
    });
    server.on('stream', (stream) => {
      stream.on('error', () => undefined); // the refused ones
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        if (hold === 0) return answer(stream, body);
        held.push({ stream, body });
        if (held.length < hold) return;
        hold = 0;
        const [first, ...rest] = held.sort((a, b) => (a.stream.id ?? 0) - (b.stream.id ?? 0));
        held = [];
        stream.session?.goaway(0, first?.stream.id ?? 0);
        if (first !== undefined) answer(first.stream, first.body);
        assert.ok(rest.length > 0);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    mesh = await createMesh({
      service: 'reviews',
      config: [serviceEntry('ratings', HOST, 9080, [{ port }], { ports: [{ number: 9080, name: 'http', protocol: 'HTTP2' }] })],
    });
  });

  after(async () => {
    await mesh.close();
    for (const s of sessions) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  test('POSTs whose streams the GOAWAY refused are retried on a new connection under Istio\'s default policy (mesh.fetch and undici.request)', async () => {
    const warm = await mesh.fetch('http://ratings:9080/warm', { method: 'POST', body: 'warm' });
    assert.equal(await warm.text(), 'ok warm');
    assert.equal(sessionsOpened, 1);

    hold = 3;
    processed.length = 0;
    const calls = await Promise.all(
      ['a', 'b', 'c'].map(async (body) => {
        const r = await mesh.fetch('http://ratings:9080/x', { method: 'POST', body });
        return { status: r.status, flags: r.headers.get('x-meshlet-response-flags'), text: await r.text() };
      }),
    );
    assert.deepEqual(
      calls.map((c) => [c.status, c.flags]),
      [
        [200, null],
        [200, null],
        [200, null],
      ],
      JSON.stringify(calls),
    );
    assert.deepEqual(calls.map((c) => c.text).sort(), ['ok a', 'ok b', 'ok c']);
    assert.deepEqual([...processed].sort(), ['a', 'b', 'c'], 'each body reached the server once');
    assert.ok(sessionsOpened >= 2, 'the refused ones went out on new connections');

    hold = 2;
    const viaUndici = await Promise.all(
      ['d', 'e'].map(async (body) => {
        const r = await request('http://ratings:9080/y', { method: 'POST', body, dispatcher: mesh.dispatcher });
        return `${r.statusCode} ${await r.body.text()}`;
      }),
    );
    assert.deepEqual(viaUndici.sort(), ['200 ok d', '200 ok e']);
  });
});
