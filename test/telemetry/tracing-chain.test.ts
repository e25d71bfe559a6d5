/**
 * Tracing across a three-hop chain of real servers in one process, with the app's own
 * OpenTelemetry SDK (sdk-trace's in-memory exporter) and nothing else: a client → productpage
 * (Express 5, mesh A) whose handler calls reviews through `mesh.fetch` → reviews (Fastify 5,
 * mesh B) whose handler calls ratings through Node's built-in fetch with `mesh.dispatcher` →
 * ratings (node:http, mesh C), which fails its first hit so mesh B retries. One trace, the right
 * parents, Envoy's and Istio's span names and tags, the retry visible as two attempt spans, one
 * `x-request-id` from the first hop to the last.
 */
import assert from 'node:assert/strict';
import { type IncomingMessage, request as httpRequest, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { context, propagation, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import express from 'express';
import Fastify from 'fastify';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { listen } from '../helpers/frameworks.ts';
import { serviceEntry, virtualService } from '../helpers/upstreams.ts';

const exporter = new InMemorySpanExporter();

function install(): void {
  trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }));
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
}

function uninstall(): void {
  trace.disable();
  context.disable();
  propagation.disable();
}

/** Spans are exported when they end; the server span ends when the response closed, just after the client read it. */
async function spans(n: number): Promise<ReadableSpan[]> {
  for (let i = 0; i < 200 && exporter.getFinishedSpans().length < n; i++) await new Promise((r) => setTimeout(r, 5));
  return exporter.getFinishedSpans();
}

function attr(s: ReadableSpan | undefined, k: string): unknown {
  return s?.attributes[k];
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';

describe('a three-hop chain: productpage (Express) → reviews (Fastify) → ratings (node:http)', () => {
  let a: Mesh;
  let b: Mesh;
  let c: Mesh;
  const closers: (() => Promise<void>)[] = [];
  let aPort: number;
  let bPort: number;
  let cPort: number;
  const seenAtRatings: IncomingMessage['headers'][] = [];

  before(async () => {
    install();
    const tracing = { tracing: { samplingPercentage: 100 } };
    // ratings: fails its first hit (503), then answers.
    c = await createMesh({ service: 'ratings', labels: { app: 'ratings', version: 'v1' }, config: [], telemetry: tracing, logger: { warn: () => {} } });
    let hits = 0;
    const cServer = c.createServer((req: IncomingMessage, res: ServerResponse) => {
      seenAtRatings.push(req.headers);
      res.statusCode = ++hits === 1 ? 503 : 200;
      res.end(res.statusCode === 200 ? 'five stars' : 'busy');
    });
    cPort = await listen(cServer);
    closers.push(() => new Promise((r) => cServer.close(() => r())));

    b = await createMesh({
      service: 'reviews',
      labels: { app: 'reviews', version: 'v2' },
      telemetry: tracing,
      logger: { warn: () => {} },
      config: [
        serviceEntry('ratings', 'ratings.default.svc.cluster.local', 9080, [{ port: cPort }]),
        virtualService('ratings', ['ratings.default.svc.cluster.local'], [{ route: [{ destination: { host: 'ratings.default.svc.cluster.local' } }], retries: { attempts: 2, retryOn: '5xx' } }]),
      ],
    });
    const fastify = Fastify({ ...b.fastifyOptions() });
    await fastify.register(b.fastify() as never);
    fastify.get('/reviews/:id', async () => {
      // Node's built-in fetch, through the mesh's dispatcher.
      const r = await fetch('http://ratings.default.svc.cluster.local:9080/ratings', { dispatcher: b.dispatcher } as RequestInit);
      return { ratings: await r.text() };
    });
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    bPort = (fastify.server.address() as AddressInfo).port;
    closers.push(() => fastify.close());

    a = await createMesh({
      service: 'productpage',
      labels: { app: 'productpage', version: 'v1' },
      telemetry: tracing,
      logger: { warn: () => {} },
      config: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: bPort }])],
    });
    const app = express();
    app.use(a.express());
    app.get('/productpage', async (_req, res) => {
      const r = await a.fetch('http://reviews.default.svc.cluster.local:9080/reviews/0');
      res.json(await r.json());
    });
    const aServer = app.listen(0, '127.0.0.1');
    await new Promise((r) => aServer.once('listening', r));
    aPort = (aServer.address() as AddressInfo).port;
    closers.push(() => new Promise((r) => aServer.close(() => r())));
  });

  after(async () => {
    for (const close of closers.reverse()) await close();
    await Promise.all([a?.close(), b?.close(), c?.close()]);
    uninstall();
  });

  it('one trace, parents hop by hop, the retry as two attempt spans, Envoy/Istio names and tags', async () => {
    exporter.reset();
    const r = await request(`http://127.0.0.1:${aPort}/productpage`, { headers: { traceparent: `00-${TRACE_ID}-${CLIENT_SPAN}-01`, 'user-agent': 'chain-test' } });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(await r.body.json(), { ratings: 'five stars' });
    // 3 server spans of A, B and C (C twice: two attempts reached it) + 2 client spans + 3 attempt spans.
    const all = await spans(9);
    assert.equal(all.length, 9, all.map((s) => s.name).join('\n'));
    assert.ok(
      all.every((s) => s.spanContext().traceId === TRACE_ID),
      'one trace',
    );
    const byKind = (k: SpanKind, name: string) => all.filter((s) => s.kind === k && s.name === name);
    const [aServer] = byKind(SpanKind.SERVER, `productpage.default.svc.cluster.local:${aPort}/*`);
    const [aClient] = byKind(SpanKind.CLIENT, 'reviews.default.svc.cluster.local:9080/*');
    const [bServer] = byKind(SpanKind.SERVER, `reviews.default.svc.cluster.local:${bPort}/*`);
    const [bClient] = byKind(SpanKind.CLIENT, 'ratings.default.svc.cluster.local:9080/*');
    const cServers = byKind(SpanKind.SERVER, `ratings.default.svc.cluster.local:${cPort}/*`);
    const aAttempts = byKind(SpanKind.CLIENT, 'router outbound|9080||reviews.default.svc.cluster.local egress');
    const bAttempts = byKind(SpanKind.CLIENT, 'router outbound|9080||ratings.default.svc.cluster.local egress');
    for (const [n, s] of Object.entries({ aServer, aClient, bServer, bClient })) assert.ok(s !== undefined, `${n}: ${all.map((x) => x.name).join(', ')}`);
    assert.equal(cServers.length, 2);
    assert.equal(aAttempts.length, 1);
    assert.equal(bAttempts.length, 2);
    const parent = (s: ReadableSpan | undefined) => s?.parentSpanContext?.spanId;
    const id = (s: ReadableSpan | undefined) => s?.spanContext().spanId;
    // Parents: the caller's span → A's server span → A's client span (and its attempt) → B's server span → …
    assert.equal(parent(aServer), CLIENT_SPAN);
    assert.equal(parent(aClient), id(aServer), 'the call made inside the handler is a child of the server span');
    assert.equal(parent(aAttempts[0]), id(aClient));
    // As Envoy's upstream request injects its own span: the next hop continues from the attempt that reached it.
    assert.equal(parent(bServer), id(aAttempts[0]), 'the next hop continues from the attempt span it was called with');
    assert.equal(parent(bClient), id(bServer));
    for (const s of bAttempts) assert.equal(parent(s), id(bClient));
    // The retry: a 503 attempt (error) then a 200 one, each with the endpoint.
    const bySeq = [...bAttempts].sort((x, y) => Number(attr(x, 'meshlet.attempt')) - Number(attr(y, 'meshlet.attempt')));
    // Each of ratings' server spans is the child of the attempt that reached it (not two siblings under the call span).
    const cByStatus = (code: string) => cServers.find((s) => attr(s, 'http.status_code') === code);
    assert.equal(parent(cByStatus('503')), id(bySeq[0]), 'the failed attempt reached the 503');
    assert.equal(parent(cByStatus('200')), id(bySeq[1]), 'the retry reached the 200');
    assert.deepEqual(
      bySeq.map((s) => [attr(s, 'meshlet.attempt'), attr(s, 'http.status_code'), attr(s, 'error'), attr(s, 'upstream_address'), attr(s, 'peer.address')]),
      [
        [1, '503', 'true', `127.0.0.1:${cPort}`, `127.0.0.1:${cPort}`],
        [2, '200', undefined, `127.0.0.1:${cPort}`, `127.0.0.1:${cPort}`],
      ],
    );
    // Server span tags (Envoy's HCM, Istio's tags).
    assert.deepEqual(
      {
        component: attr(aServer, 'component'),
        url: attr(aServer, 'http.url'),
        method: attr(aServer, 'http.method'),
        protocol: attr(aServer, 'http.protocol'),
        status: attr(aServer, 'http.status_code'),
        flags: attr(aServer, 'response_flags'),
        cluster: attr(aServer, 'upstream_cluster'),
        clusterName: attr(aServer, 'upstream_cluster.name'),
        peer: attr(aServer, 'peer.address'),
        ua: attr(aServer, 'user_agent'),
        downstream: attr(aServer, 'downstream_cluster'),
        service: attr(aServer, 'istio.canonical_service'),
        revision: attr(aServer, 'istio.canonical_revision'),
        namespace: attr(aServer, 'istio.namespace'),
        mesh: attr(aServer, 'istio.mesh_id'),
        node: attr(aServer, 'node_id'),
      },
      {
        component: 'proxy',
        url: `http://127.0.0.1:${aPort}/productpage`,
        method: 'GET',
        protocol: 'HTTP/1.1',
        status: '200',
        flags: '-',
        cluster: `inbound|${aPort}||`,
        clusterName: `inbound|${aPort}||`,
        peer: '127.0.0.1',
        ua: 'chain-test',
        downstream: '-',
        service: 'productpage',
        revision: 'v1',
        namespace: 'default',
        mesh: 'cluster.local',
        node: 'sidecar~127.0.0.1~productpage.default~default.svc.cluster.local',
      },
    );
    assert.ok(Number(attr(aServer, 'response_size')) > 0);
    assert.ok(Number(attr(aServer, 'request_size')) > 0);
    // Client span tags.
    assert.deepEqual(
      [attr(bClient, 'http.url'), attr(bClient, 'upstream_cluster'), attr(bClient, 'upstream_cluster.name'), attr(bClient, 'http.status_code'), attr(bClient, 'response_flags'), attr(bClient, 'istio.canonical_service'), attr(bClient, 'error')],
      ['http://ratings.default.svc.cluster.local:9080/ratings', 'outbound|9080||ratings.default.svc.cluster.local', 'outbound|9080||ratings.default.svc.cluster.local', '200', '-', 'reviews', undefined],
    );
    // One x-request-id from the first hop to the last: generated by A, carried by every call.
    const rid = attr(aServer, 'guid:x-request-id');
    assert.match(String(rid), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    for (const s of [aClient, bServer, bClient, ...cServers]) assert.equal(attr(s, 'guid:x-request-id'), rid, s?.name);
    assert.equal(seenAtRatings.at(-1)?.['x-request-id'], rid, 'the app at the last hop sees it too');
    // What the app at the last hop was handed (as Envoy's router injects its span into the request to the app): W3C,
    // its own server span — the child of B's second attempt — sampled; the first hit had the server span under the first attempt.
    assert.equal(seenAtRatings.at(-1)?.traceparent, `00-${TRACE_ID}-${id(cByStatus('200'))}-01`);
    assert.equal(seenAtRatings.at(-2)?.traceparent, `00-${TRACE_ID}-${id(cByStatus('503'))}-01`);
  });

  it('undici through mesh.dispatcher: a call outside any request is a root CLIENT span, its context sent', async () => {
    exporter.reset();
    const r = await request(`http://ratings.default.svc.cluster.local:9080/again`, { dispatcher: b.dispatcher });
    assert.equal(r.statusCode, 200);
    await r.body.text();
    const all = await spans(3);
    const client = all.find((s) => s.kind === SpanKind.CLIENT && s.name === 'ratings.default.svc.cluster.local:9080/*');
    assert.ok(client !== undefined, all.map((s) => s.name).join(', '));
    assert.equal(client.parentSpanContext, undefined, 'a root span');
    const server = all.find((s) => s.kind === SpanKind.SERVER);
    const attempt = all.find((s) => s.kind === SpanKind.CLIENT && s.name.startsWith('router '));
    assert.equal(attempt?.parentSpanContext?.spanId, client.spanContext().spanId);
    assert.equal(server?.parentSpanContext?.spanId, attempt?.spanContext().spanId, 'the server span is the child of the attempt');
    assert.equal(server?.spanContext().traceId, client.spanContext().traceId);
    // The app behind the server span is handed that span's context.
    assert.equal(seenAtRatings.at(-1)?.traceparent, `00-${client.spanContext().traceId}-${server?.spanContext().spanId}-01`);
  });

  it("a body that arrives after the headers: the handler's body listeners still run in the server span, and their calls are its children", async () => {
    const d = await createMesh({ service: 'uploader', config: [serviceEntry('ratings', 'ratings.default.svc.cluster.local', 9080, [{ port: cPort }])], telemetry: { tracing: { samplingPercentage: 100 } }, logger: { warn: () => {} } });
    const server = d.createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const active = trace.getActiveSpan()?.spanContext().spanId;
        const r = await d.fetch('http://ratings.default.svc.cluster.local:9080/ratings', { method: 'POST', body: Buffer.concat(chunks) });
        res.end(JSON.stringify({ active, status: r.status }));
      });
    });
    const port = await listen(server);
    try {
      exporter.reset();
      // Headers first; the body a moment later, in its own packet.
      const text = await new Promise<string>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: '/upload', method: 'POST', headers: { 'content-length': '5' } }, (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c));
          res.on('end', () => resolve(b));
        });
        req.on('error', reject);
        req.flushHeaders();
        setTimeout(() => req.end('hello'), 30);
      });
      const all = await spans(5);
      const srv = all.find((s) => s.kind === SpanKind.SERVER && s.name.startsWith('uploader.'));
      const cli = all.find((s) => s.kind === SpanKind.CLIENT && s.name === 'ratings.default.svc.cluster.local:9080/*');
      assert.deepEqual(JSON.parse(text), { active: srv?.spanContext().spanId, status: 200 });
      assert.equal(cli?.parentSpanContext?.spanId, srv?.spanContext().spanId);
      assert.equal(attr(cli, 'request_size'), '5');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await d.close();
    }
  });
});
