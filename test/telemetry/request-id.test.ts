/**
 * `x-request-id` without any OpenTelemetry SDK (access logs only, a common Istio set-up): as
 * Envoy's connection manager generates it on every listener (`generate_request_id`) whether or
 * not tracing is on, a served request without one gets a UUID before the app sees it (the access
 * log shows it), the calls its handler makes carry it, and a call made outside any request gets
 * a new one. An id already there is kept.
 *
 * Its own file: no SDK may be registered in this process.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { trace } from '@opentelemetry/api';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { capture } from '../helpers/access-log.ts';
import { listen } from '../helpers/frameworks.ts';
import { serviceEntry } from '../helpers/upstreams.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('x-request-id without a tracing SDK', () => {
  let mesh: Mesh;
  let port: number;
  const log = capture();
  const atSink: IncomingMessage['headers'][] = [];
  const inHandler: (string | string[] | undefined)[] = [];
  const sink = createServer((req, res) => {
    atSink.push(req.headers);
    res.end('ok');
  });
  let server: ReturnType<Mesh['createServer']>;

  before(async () => {
    assert.equal(trace.getTracerProvider().getTracer('x').startSpan('probe').isRecording(), false, 'no SDK in this process');
    const sinkPort = await listen(sink);
    mesh = await createMesh({
      service: 'reviews',
      logger: log.logger,
      telemetry: { accessLog: { file: '/dev/stdout' } },
      config: [serviceEntry('sink', 'sink.default.svc.cluster.local', 80, [{ port: sinkPort }])],
    });
    server = mesh.createServer(async (req: IncomingMessage, res: ServerResponse) => {
      inHandler.push(req.headers['x-request-id']);
      const r = await mesh.fetch('http://sink.default.svc.cluster.local/down');
      await r.text();
      res.end('done');
    });
    port = await listen(server);
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await mesh.close();
    await new Promise<void>((r) => sink.close(() => r()));
  });

  it('a served request without one gets a UUID: the handler sees it, the calls it makes carry it, both access-log lines show it', async () => {
    log.entries.length = 0;
    const r = await request(`http://127.0.0.1:${port}/up`);
    assert.equal(await r.body.text(), 'done');
    const id = inHandler.at(-1);
    assert.match(String(id), UUID);
    assert.equal(atSink.at(-1)?.['x-request-id'], id, 'the call made while serving it carries the same id');
    // The client-side line (the call) and the server-side one (the request served).
    for (let i = 0; i < 200 && log.lines().length < 2; i++) await new Promise((res) => setImmediate(res));
    const lines = log.lines();
    assert.equal(lines.length, 2, lines.join('\n'));
    for (const l of lines) assert.ok(l.includes(`"${id}"`), l);
  });

  it('an id the caller sent is kept and carried on', async () => {
    const r = await request(`http://127.0.0.1:${port}/up`, { headers: { 'x-request-id': 'from-the-caller' } });
    assert.equal(await r.body.text(), 'done');
    assert.equal(inHandler.at(-1), 'from-the-caller');
    assert.equal(atSink.at(-1)?.['x-request-id'], 'from-the-caller');
  });

  it('two requests without one get two ids', async () => {
    for (let i = 0; i < 2; i++) await (await request(`http://127.0.0.1:${port}/up`)).body.text();
    const [a, b] = inHandler.slice(-2);
    assert.match(String(a), UUID);
    assert.match(String(b), UUID);
    assert.notEqual(a, b);
  });

  it('a call outside any request gets a new id each time (the outbound listener generates it); one the app set is kept', async () => {
    await (await mesh.fetch('http://sink.default.svc.cluster.local/a')).text();
    await (await mesh.fetch('http://sink.default.svc.cluster.local/b')).text();
    const [a, b] = atSink.slice(-2).map((h) => h['x-request-id']);
    assert.match(String(a), UUID);
    assert.match(String(b), UUID);
    assert.notEqual(a, b);
    await (await mesh.fetch('http://sink.default.svc.cluster.local/c', { headers: { 'x-request-id': 'mine' } })).text();
    assert.equal(atSink.at(-1)?.['x-request-id'], 'mine');
  });
});
