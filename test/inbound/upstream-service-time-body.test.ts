/**
 * `x-envoy-upstream-service-time` on served responses to requests with a body. Envoy's router
 * times it from the end of the downstream request (source/common/router/router.cc
 * `Filter::onRequestComplete` sets `downstream_request_complete_time_` when the request's last
 * data arrives) and writes it only when that time is valid — "only send upstream service time if
 * we received the complete request and this is not a premature response"
 * (`Filter::onUpstreamHeaders`). So a body that arrives slowly does not count, and an answer the
 * app writes before the body came has none. Through every framework's real entry point over a raw
 * HTTP/1.1 socket (the body sent well after the head), and an HTTP/2 caller. The values are
 * checked against the delay the test puts between head and body, and the delay the app takes
 * after the body (bounds, never a wall-clock equality).
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createH2Server, connect as h2connect, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { frameworks, listen } from '../helpers/frameworks.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const NAME = 'x-envoy-upstream-service-time';
/** How long the caller waits between the request's head and its body. */
const BODY_AFTER_MS = 300;
/** A value below this did not count the wait for the body (half of it: the head reached the app some ms after it was sent). */
const WITHOUT_WAIT = BODY_AFTER_MS / 2;

/** Sends a POST's head, then its JSON body `afterMs` later, on one connection; resolves with the answer's head lines (names lower-cased) once its body ended. */
function slowPost(port: number, afterMs: number, path = '/slow'): Promise<{ status: number; headers: Map<string, string> }> {
  const body = JSON.stringify({ slow: true });
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    s.setEncoding('latin1');
    s.write(`POST ${path} HTTP/1.1\r\nhost: reviews\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`);
    const later = setTimeout(() => s.write(body), afterMs);
    s.on('data', (c: string) => {
      data += c;
    });
    s.on('error', reject);
    s.on('close', () => {
      clearTimeout(later);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return reject(new Error(`no answer: ${data}`));
      const [statusLine, ...lines] = data.slice(0, end).split('\r\n');
      const headers = new Map<string, string>();
      for (const l of lines) headers.set((l.slice(0, l.indexOf(':')) as string).toLowerCase(), l.slice(l.indexOf(':') + 1).trim());
      resolve({ status: Number((statusLine as string).slice(9, 12)), headers });
    });
  });
}

function serviceTime(v: string | undefined): number {
  assert.match(String(v), /^\d+$/, `${NAME}: ${String(v)}`);
  return Number(v);
}

describe('x-envoy-upstream-service-time counts from the end of the request', () => {
  for (const fw of frameworks) {
    it(`${fw.name}: a body that came ${BODY_AFTER_MS} ms after the head does not count`, async () => {
      const mesh = await createMesh({ service: 'reviews', config: [] as never, logger: quiet });
      const server = await fw.start(mesh);
      try {
        const r = await slowPost(server.port, BODY_AFTER_MS);
        assert.equal(r.status, 200);
        // The app answered as soon as it had read the body: nothing of the wait for it counts.
        assert.ok(serviceTime(r.headers.get(NAME)) < WITHOUT_WAIT, `${NAME} ${r.headers.get(NAME)} counts the ${BODY_AFTER_MS} ms the body took to come`);
      } finally {
        await server.close();
        await mesh.close();
      }
    });
  }

  it('node:http: the time the app takes after the body counts', async () => {
    const mesh = await createMesh({ service: 'reviews', config: [] as never, logger: quiet });
    const server = mesh.createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      req.on('end', () => void sleep(60).then(() => res.end('ok')));
    });
    const port = await listen(server);
    try {
      const r = await slowPost(port, 30);
      assert.equal(r.status, 200);
      const v = serviceTime(r.headers.get(NAME));
      assert.ok(v >= 58, `${NAME} ${v} is at least the app's 60 ms after the body`);
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await mesh.close();
    }
  });

  it("node:http: an answer written before the body came (a premature response) has none; the app's own passes", async () => {
    const mesh = await createMesh({ service: 'reviews', config: [] as never, logger: quiet });
    const server = mesh.createServer((req: IncomingMessage, res: ServerResponse) => {
      const own = req.url === '/own';
      res.writeHead(200, own ? { 'content-type': 'text/plain', [NAME]: '7' } : { 'content-type': 'text/plain' });
      res.end('early');
      req.resume();
    });
    const port = await listen(server);
    try {
      const r = await slowPost(port, BODY_AFTER_MS);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get(NAME), undefined);
      // Envoy sets none then, so the app's own goes through.
      const own = await slowPost(port, BODY_AFTER_MS, '/own');
      assert.equal(own.headers.get(NAME), '7');
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await mesh.close();
    }
  });

  // The app's own HTTP/2 server under mesh.protect: the app has the request at its head. (Under
  // mesh.createServer an HTTP/2 caller's stream reaches the app as an HTTP/1.1 request with its body.)
  it(`an HTTP/2 server of the app's (mesh.protect): a body sent ${BODY_AFTER_MS} ms after the head does not count; a GET (no body) has the header`, async () => {
    const mesh = await createMesh({ service: 'reviews', config: [] as never, logger: quiet });
    const server = mesh.protect(
      createH2Server((req: Http2ServerRequest, res: Http2ServerResponse) => {
        req.resume();
        req.on('end', () => res.end('ok'));
      }),
    );
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    const session = h2connect(`http://127.0.0.1:${port}`);
    try {
      const ask = (method: string, later: boolean): Promise<Record<string, unknown>> =>
        new Promise((resolve, reject) => {
          const s = session.request({ ':method': method, ':path': '/h2' }, { endStream: !later });
          s.on('response', (h) => {
            s.resume();
            s.on('end', () => resolve(h));
          });
          s.on('error', reject);
          if (later) setTimeout(() => s.end('{"slow":true}'), BODY_AFTER_MS);
        });
      const post = await ask('POST', true);
      assert.equal(post[':status'], 200);
      assert.ok(serviceTime(post[NAME] as string) < WITHOUT_WAIT, `${NAME} ${String(post[NAME])} counts the wait for the body`);
      const get = await ask('GET', false);
      assert.equal(get[':status'], 200);
      serviceTime(get[NAME] as string);
    } finally {
      session.close();
      await new Promise((resolve) => server.close(resolve));
      await mesh.close();
    }
  });
});
