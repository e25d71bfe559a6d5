/**
 * Tracing policy and interop, with the app's own SDK (sdk-trace's in-memory exporter): B3 (multi
 * and single) and W3C read and written as independent propagators (`@opentelemetry/propagator-b3`,
 * `@opentelemetry/core`'s W3C propagator) read and write them; sampling drawn from the mesh's
 * Random, an upstream decision kept, an unsampled request still propagating `sampled=0`;
 * Telemetry `customTags` (literal, header, environment), `disableSpanReporting` by mode.
 *
 * Each case: a caller → the mesh's server (`mesh.createServer`) whose handler calls a plain sink
 * server through `mesh.fetch`; the sink records the headers it got.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { context, defaultTextMapGetter, defaultTextMapSetter, propagation, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import express from 'express';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import type { Random } from '../../src/core/clock.ts';
import { createMesh, type Mesh, type MeshOptions } from '../../src/index.ts';
import { listen } from '../helpers/frameworks.ts';
import { serviceEntry } from '../helpers/upstreams.ts';

const exporter = new InMemorySpanExporter();
const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

/** A Random that always draws `v` (the sampling draw is then known whatever else draws). */
const always = (v: number): Random => ({ next: () => v });

interface Setup {
  mesh: Mesh;
  port: number;
  sink: IncomingMessage['headers'][];
  close(): Promise<void>;
}

let sinkPort: number;
const sinkSeen: IncomingMessage['headers'][] = [];
const sink = createServer((req, res) => {
  sinkSeen.push(req.headers);
  res.end('sink');
});

async function setup(o: Partial<MeshOptions> & { telemetryResources?: object[] } = {}): Promise<Setup> {
  const { telemetryResources, ...rest } = o;
  const mesh = await createMesh({
    service: 'app',
    namespace: 'default',
    labels: { app: 'app', version: 'v3' },
    logger: { warn: () => {} },
    ...rest,
    config: [serviceEntry('sink', 'sink.default.svc.cluster.local', 80, [{ port: sinkPort }]), ...(telemetryResources ?? [])],
  });
  const server = mesh.createServer(async (_req, res) => {
    const r = await mesh.fetch('http://sink.default.svc.cluster.local/down', { headers: { 'x-team': 'from-call' } });
    res.end(await r.text());
  });
  const port = await listen(server);
  return {
    mesh,
    port,
    sink: sinkSeen,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await mesh.close();
    },
  };
}

async function get(port: number, headers: Record<string, string> = {}): Promise<void> {
  sinkSeen.length = 0;
  exporter.reset();
  const r = await request(`http://127.0.0.1:${port}/up`, { headers });
  assert.equal(r.statusCode, 200);
  assert.equal(await r.body.text(), 'sink');
}

/** The finished spans, once the server span (ended when its response closed) is among them or `ms` passed. */
async function finished(n: number): Promise<ReadableSpan[]> {
  for (let i = 0; i < 100 && exporter.getFinishedSpans().length < n; i++) await new Promise((r) => setTimeout(r, 5));
  return exporter.getFinishedSpans();
}

const server = (spans: ReadableSpan[]) => spans.find((s) => s.kind === SpanKind.SERVER);
const client = (spans: ReadableSpan[]) => spans.find((s) => s.kind === SpanKind.CLIENT && !s.name.startsWith('router '));

before(async () => {
  trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }));
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  sinkPort = await listen(sink);
});
after(async () => {
  await new Promise<void>((r) => sink.close(() => r()));
  trace.disable();
  context.disable();
  propagation.disable();
});

describe('interop with independent propagators', () => {
  const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: T, spanId: S, traceFlags: 1, isRemote: true });

  for (const [format, encoding] of [
    ['b3', B3InjectEncoding.MULTI_HEADER],
    ['b3-single', B3InjectEncoding.SINGLE_HEADER],
  ] as const) {
    it(`${format}: propagator-b3's headers are read; what the mesh writes, propagator-b3 reads`, async () => {
      const s = await setup({ telemetry: { tracing: { samplingPercentage: 0, propagation: [format] } } });
      try {
        const headers: Record<string, string> = {};
        new B3Propagator({ injectEncoding: encoding }).inject(parent, headers, defaultTextMapSetter);
        await get(s.port, headers);
        const spans = await finished(3);
        assert.equal(server(spans)?.parentSpanContext?.spanId, S, 'the server span continues the B3 context (sampled upstream, though sampling is 0%)');
        const got = s.sink.at(-1) ?? {};
        assert.equal(got.traceparent, undefined, 'only the configured format is written');
        const sc = trace.getSpanContext(new B3Propagator().extract(ROOT_CONTEXT, got, defaultTextMapGetter));
        assert.deepEqual([sc?.traceId, sc?.spanId, sc?.traceFlags], [T, client(spans)?.spanContext().spanId, 1]);
        if (format === 'b3') assert.equal(got['x-b3-parentspanid'], server(spans)?.spanContext().spanId);
      } finally {
        await s.close();
      }
    });
  }

  it('w3c: traceparent and tracestate from the W3C propagator, written back with tracestate kept', async () => {
    const s = await setup({ telemetry: { tracing: { samplingPercentage: 0 } } });
    try {
      const headers: Record<string, string> = {};
      const w3c = new W3CTraceContextPropagator();
      // The caller's context, tracestate included, as the W3C propagator writes it.
      const incoming = w3c.extract(ROOT_CONTEXT, { traceparent: `00-${T}-${S}-01`, tracestate: 'vendor=opaque' }, defaultTextMapGetter);
      w3c.inject(incoming, headers, defaultTextMapSetter);
      assert.equal(headers.tracestate, 'vendor=opaque');
      await get(s.port, headers);
      const spans = await finished(3);
      const got = s.sink.at(-1) ?? {};
      const sc = trace.getSpanContext(w3c.extract(ROOT_CONTEXT, got, defaultTextMapGetter));
      assert.deepEqual([sc?.traceId, sc?.spanId, sc?.traceFlags, sc?.traceState?.get('vendor')], [T, client(spans)?.spanContext().spanId, 1, 'opaque']);
      assert.equal(got['x-b3-traceid'], undefined);
    } finally {
      await s.close();
    }
  });

  it('a B3 caller reaches a W3C mesh: its trace goes on (read as a fallback format), written as W3C', async () => {
    const s = await setup({ telemetry: { tracing: { samplingPercentage: 0 } } });
    try {
      await get(s.port, { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '1' });
      const spans = await finished(3);
      assert.equal(server(spans)?.spanContext().traceId, T);
      assert.match(String(s.sink.at(-1)?.traceparent), new RegExp(`^00-${T}-[0-9a-f]{16}-01$`));
    } finally {
      await s.close();
    }
  });
});

describe('sampling', () => {
  const rows: { name: string; random: number; percent: number; headers?: Record<string, string>; sampled: boolean; traceId?: string }[] = [
    { name: 'a draw under the percentage: sampled', random: 0.2, percent: 50, sampled: true },
    { name: 'a draw over it: not sampled, sampled=0 still propagated', random: 0.8, percent: 50, sampled: false },
    { name: "Istio's default 1%: a draw of 0.5 is not sampled", random: 0.5, percent: Number.NaN, sampled: false },
    { name: "Istio's default 1%: a draw of 0.005 is", random: 0.005, percent: Number.NaN, sampled: true },
    { name: 'an upstream sampled=1 is kept at 0%', random: 0.99, percent: 0, headers: { traceparent: `00-${T}-${S}-01` }, sampled: true, traceId: T },
    { name: 'an upstream sampled=0 is kept at 100%', random: 0, percent: 100, headers: { traceparent: `00-${T}-${S}-00` }, sampled: false, traceId: T },
    { name: 'B3 without a decision: the mesh decides (sampled)', random: 0.1, percent: 50, headers: { 'x-b3-traceid': T, 'x-b3-spanid': S }, sampled: true, traceId: T },
    { name: 'B3 without a decision: the mesh decides (not sampled)', random: 0.9, percent: 50, headers: { 'x-b3-traceid': T, 'x-b3-spanid': S }, sampled: false, traceId: T },
    { name: 'x-envoy-force-trace forces it at 0%', random: 0.99, percent: 0, headers: { 'x-envoy-force-trace': 'true' }, sampled: true },
  ];
  for (const row of rows) {
    it(row.name, async () => {
      const tracing = Number.isNaN(row.percent) ? {} : { samplingPercentage: row.percent };
      const s = await setup({ random: always(row.random), telemetry: { tracing } });
      try {
        await get(s.port, row.headers);
        const spans = await finished(row.sampled ? 3 : 1);
        const tp = String(s.sink.at(-1)?.traceparent);
        assert.match(tp, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
        assert.equal(tp.endsWith('-01'), row.sampled, tp);
        if (row.traceId !== undefined) assert.equal(tp.slice(3, 35), row.traceId);
        if (row.sampled) {
          assert.equal(spans.length, 3, spans.map((x) => x.name).join(', '));
          assert.equal(tp.slice(36, 52), client(spans)?.spanContext().spanId);
        } else assert.equal(spans.length, 0, 'nothing recorded');
      } finally {
        await s.close();
      }
    });
  }
});

describe('an unsampled call made outside any request (a new trace)', () => {
  // Trace headers the app set that none of the formats can read a context from: the call carries its own context instead.
  const stale = { tracestate: 'vendor=stale', 'x-b3-spanid': S, 'x-b3-sampled': '1', 'x-b3-parentspanid': S };
  const rows: { name: string; propagation?: ('w3c' | 'b3' | 'b3-single')[]; want: string[] }[] = [
    { name: 'w3c (the default): one new traceparent, flags 00', want: ['traceparent'] },
    { name: 'b3: the x-b3 headers, sampled 0, no traceparent', propagation: ['b3'], want: ['x-b3-sampled', 'x-b3-spanid', 'x-b3-traceid'] },
    { name: 'w3c and b3-single: both, with the same ids', propagation: ['w3c', 'b3-single'], want: ['b3', 'traceparent'] },
  ];
  for (const row of rows) {
    it(row.name, async () => {
      const s = await setup({ random: always(0.99), telemetry: { tracing: { samplingPercentage: 0, ...(row.propagation === undefined ? {} : { propagation: row.propagation }) } } });
      try {
        sinkSeen.length = 0;
        const ids = new Set<string>();
        for (let i = 0; i < 3; i++) {
          const r = await s.mesh.fetch('http://sink.default.svc.cluster.local/top', { headers: stale });
          await r.text();
          const got = s.sink.at(-1) ?? {};
          const names = Object.keys(got)
            .filter((k) => k === 'traceparent' || k === 'tracestate' || k === 'b3' || k.startsWith('x-b3-'))
            .sort();
          assert.deepEqual(names, row.want);
          assert.match(String(got['x-request-id']), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
          const traceId = got.traceparent === undefined ? String(got['x-b3-traceid'] ?? String(got.b3).slice(0, 32)) : String(got.traceparent).slice(3, 35);
          if (got.traceparent !== undefined) assert.match(String(got.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
          if (got['x-b3-traceid'] !== undefined) {
            assert.match(String(got['x-b3-traceid']), /^[0-9a-f]{32}$/);
            assert.notEqual(got['x-b3-spanid'], S);
            assert.equal(got['x-b3-sampled'], '0');
          }
          if (got.b3 !== undefined) assert.equal(got.b3, `${String(got.traceparent).slice(3, 52)}-0`);
          ids.add(traceId);
          ids.add(String(got['x-request-id']));
        }
        assert.equal(ids.size, 6, 'a new trace id and x-request-id for each call');
        // (Spans of the tests before may still arrive: only these calls' traces count.)
        assert.deepEqual(
          exporter
            .getFinishedSpans()
            .filter((x) => ids.has(x.spanContext().traceId))
            .map((x) => x.name),
          [],
        );
      } finally {
        await s.close();
      }
    });
  }
});

describe('Telemetry customTags and disableSpanReporting', () => {
  const telemetry = (name: string, namespace: string, tracing: object[], selector?: object) => ({
    apiVersion: 'telemetry.istio.io/v1',
    kind: 'Telemetry',
    metadata: { name, namespace, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: { ...(selector === undefined ? {} : { selector }), tracing },
  });

  it('literal, environment and header tags on client and server spans; a workload Telemetry replaces the root one', async () => {
    process.env.MESHLET_TEST_CLUSTER = 'east-1';
    const s = await setup({
      telemetry: { tracing: { samplingPercentage: 0 } },
      telemetryResources: [
        telemetry('mesh-default', 'istio-system', [{ randomSamplingPercentage: 100, customTags: { dropped: { literal: { value: 'x' } } } }]),
        telemetry('app', 'default', [{ customTags: { owner: { literal: { value: 'team-a' } }, cluster: { environment: { name: 'MESHLET_TEST_CLUSTER' } }, zone: { environment: { name: 'MESHLET_TEST_UNSET', defaultValue: 'none' } }, team: { header: { name: 'x-team', defaultValue: 'unknown' } } } }], { matchLabels: { app: 'app' } }),
      ],
    });
    try {
      await get(s.port, { 'x-team': 'from-request' });
      const spans = await finished(3);
      const tags = (x: ReadableSpan | undefined) => [x?.attributes.owner, x?.attributes.cluster, x?.attributes.zone, x?.attributes.team, x?.attributes.dropped];
      assert.deepEqual(tags(server(spans)), ['team-a', 'east-1', 'none', 'from-request', undefined]);
      assert.deepEqual(tags(client(spans)), ['team-a', 'east-1', 'none', 'from-call', undefined]);
      assert.equal(server(spans)?.attributes['istio.canonical_revision'], 'v3');
    } finally {
      delete process.env.MESHLET_TEST_CLUSTER;
      await s.close();
    }
  });

  it('disableSpanReporting for SERVER: no server span, the calls still continue the caller’s trace', async () => {
    const s = await setup({
      telemetry: { tracing: { samplingPercentage: 100 } },
      telemetryResources: [telemetry('no-server', 'default', [{ match: { mode: 'SERVER' }, disableSpanReporting: true }])],
    });
    try {
      await get(s.port, { traceparent: `00-${T}-${S}-01` });
      const spans = await finished(2);
      assert.equal(server(spans), undefined);
      const c = client(spans);
      assert.equal(c?.parentSpanContext?.spanId, S);
      assert.equal(c?.spanContext().traceId, T);
      assert.equal(s.sink.at(-1)?.traceparent, `00-${T}-${c?.spanContext().spanId}-01`);
    } finally {
      await s.close();
    }
  });

  it('disableSpanReporting for CLIENT: no client span; the call carries the server span’s context', async () => {
    const s = await setup({
      telemetry: { tracing: { samplingPercentage: 100 } },
      telemetryResources: [telemetry('no-client', 'default', [{ match: { mode: 'CLIENT' }, disableSpanReporting: true }])],
    });
    try {
      await get(s.port);
      const spans = await finished(1);
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(
        exporter.getFinishedSpans().map((x) => x.kind),
        [SpanKind.SERVER],
      );
      const sc = server(spans)?.spanContext();
      assert.equal(s.sink.at(-1)?.traceparent, `00-${sc?.traceId}-${sc?.spanId}-01`);
    } finally {
      await s.close();
    }
  });
});

describe('more Telemetry fields', () => {
  const telemetry = (tracing: object[]) => ({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name: 't', namespace: 'default' }, spec: { tracing } });

  it('disableContextPropagation: spans are made, no trace header is written on calls (x-request-id still is)', async () => {
    const s = await setup({ telemetry: { tracing: { samplingPercentage: 100 } }, telemetryResources: [telemetry([{ disableContextPropagation: true }])] });
    try {
      await get(s.port);
      const spans = await finished(3);
      assert.ok(client(spans) !== undefined && server(spans) !== undefined);
      const got = s.sink.at(-1) ?? {};
      assert.deepEqual([got.traceparent, got.tracestate, got['x-b3-traceid'], got.b3], [undefined, undefined, undefined, undefined]);
      assert.equal(got['x-request-id'], server(spans)?.attributes['guid:x-request-id']);
    } finally {
      await s.close();
    }
  });

  it('enableIstioTags: false drops the istio.* tags', async () => {
    const s = await setup({ telemetry: { tracing: { samplingPercentage: 100 } }, telemetryResources: [telemetry([{ enableIstioTags: false }])] });
    try {
      await get(s.port);
      const spans = await finished(3);
      for (const x of [server(spans), client(spans)]) {
        assert.ok(x !== undefined);
        assert.deepEqual(
          Object.keys(x.attributes).filter((k) => k.startsWith('istio.')),
          [],
        );
        assert.equal(x.attributes.component, 'proxy');
      }
    } finally {
      await s.close();
    }
  });
});

describe("the app's own instrumentation", () => {
  it('a span the app made active for the request before the mesh saw it is the server span’s parent', async () => {
    const mesh = await createMesh({ service: 'own', config: [], telemetry: { tracing: { samplingPercentage: 0 } }, logger: { warn: () => {} } });
    const tracer = trace.getTracer('app');
    let appSpanId: string | undefined;
    const app = express();
    // Like an HTTP instrumentation: a span per request, active for what follows.
    app.use((_req, res, next) => {
      const span = tracer.startSpan('app request', { kind: SpanKind.SERVER });
      appSpanId = span.spanContext().spanId;
      res.on('finish', () => span.end());
      context.with(trace.setSpan(context.active(), span), next);
    });
    app.use(mesh.express());
    app.get('/x', (_req, res) => {
      res.send(trace.getActiveSpan()?.spanContext().spanId ?? 'none');
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      exporter.reset();
      const r = await request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/x`, { headers: { traceparent: `00-${T}-${S}-00` } });
      const active = await r.body.text();
      const spans = await finished(2);
      const mine = spans.find((x) => x.kind === SpanKind.SERVER && x.name.startsWith('own.'));
      assert.ok(mine !== undefined, spans.map((x) => x.name).join(', '));
      assert.equal(mine.parentSpanContext?.spanId, appSpanId, 'nested under the app’s span (sampled by it), not the header’s unsampled context');
      assert.equal(active, mine.spanContext().spanId, 'the handler sees the mesh’s server span');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await mesh.close();
    }
  });
});

describe('createMesh telemetry.tracing validation', () => {
  const bad: [string, unknown, RegExp][] = [
    ['a percentage over 100', { samplingPercentage: 150 }, /telemetry\.tracing\.samplingPercentage must be a number from 0 to 100; got 150/],
    ['a percentage that is not a number', { samplingPercentage: '5' }, /telemetry\.tracing\.samplingPercentage/],
    ['an unknown format', { propagation: ['w3c', 'jaeger'] }, /telemetry\.tracing\.propagation\[1\]: unknown format "jaeger"/],
    ['no format', { propagation: [] }, /telemetry\.tracing\.propagation must be a non-empty list/],
    ['a provider that is not a name', { providers: [''] }, /telemetry\.tracing\.providers must be a list of provider names/],
  ];
  for (const [name, tracing, message] of bad) {
    it(`refuses ${name}`, async () => {
      await assert.rejects(createMesh({ service: 'x', config: [], telemetry: { tracing: tracing as never }, logger: { warn: () => {} } }), message);
    });
  }
});

describe('x-request-id generated for a request without one', () => {
  const allowAll = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'all', namespace: 'default' }, spec: { action: 'ALLOW', rules: [{}] } };
  for (const [name, resources] of [
    ['no admission phase', []],
    ['with an admission phase (the judged header view)', [allowAll]],
  ] as const) {
    it(`${name}: the app sees it in req.headers and req.rawHeaders, once, and its calls carry it on`, async () => {
      const mesh = await createMesh({ service: 'app', namespace: 'default', labels: { app: 'app' }, logger: { warn: () => {} }, config: [serviceEntry('sink', 'sink.default.svc.cluster.local', 80, [{ port: sinkPort }]), ...resources] });
      const seen: { header: unknown; raw: string[] }[] = [];
      const server = mesh.createServer(async (req, res) => {
        const raw: string[] = [];
        for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]?.toLowerCase() === 'x-request-id') raw.push(req.rawHeaders[i + 1] as string);
        seen.push({ header: req.headers['x-request-id'], raw });
        const r = await mesh.fetch('http://sink.default.svc.cluster.local/down');
        res.end(await r.text());
      });
      const port = await listen(server);
      try {
        await get(port);
        const id = seen[0]?.header;
        assert.match(String(id), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.deepEqual(seen[0]?.raw, [id], 'in rawHeaders exactly once');
        assert.equal(sinkSeen.at(-1)?.['x-request-id'], id, 'the call made while serving it carries it');
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
        await mesh.close();
      }
    });
  }
});
