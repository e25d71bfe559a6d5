/**
 * Tracing policy and interop, with the app's own SDK (sdk-trace's in-memory exporter): B3 (multi
 * and single) and W3C read and written as independent propagators (`@opentelemetry/propagator-b3`,
 * `@opentelemetry/core`'s W3C propagator) read and write them; sampling drawn from the mesh's
 * Random, an upstream decision kept, an unsampled request still propagating `sampled=0`
 * (Telemetry fields, the app's own spans and x-request-id: tracing-telemetry.test.ts).
 *
 * Each case: a caller → the mesh's server (`mesh.createServer`) whose handler calls a plain sink
 * server through `mesh.fetch`; the sink records the headers it got.
 */
import assert from 'node:assert/strict';
import { channel } from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { defaultTextMapGetter, defaultTextMapSetter, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { always, attempt, client, exporter, finished, get, S, server, setup, sinkSeen, T, useTracingSdk } from '../helpers/tracing-policy.ts';

useTracingSdk();

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
        assert.deepEqual([sc?.traceId, sc?.spanId, sc?.traceFlags], [T, attempt(spans)?.spanContext().spanId, 1]);
        // The attempt span's parent: the call's span.
        if (format === 'b3') assert.equal(got['x-b3-parentspanid'], client(spans)?.spanContext().spanId);
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
      assert.deepEqual([sc?.traceId, sc?.spanId, sc?.traceFlags, sc?.traceState?.get('vendor')], [T, attempt(spans)?.spanContext().spanId, 1, 'opaque']);
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
    { name: 'x-client-trace-id forces it at 0%', random: 0.99, percent: 0, headers: { 'x-client-trace-id': 'abc' }, sampled: true },
    // A caller's request is external to the inbound listener: Envoy removes x-envoy-force-trace first (force-trace.test.ts).
    { name: "a caller's x-envoy-force-trace does not force it at 0%", random: 0.99, percent: 0, headers: { 'x-envoy-force-trace': 'true' }, sampled: false },
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
          assert.equal(tp.slice(36, 52), attempt(spans)?.spanContext().spanId);
        } else assert.equal(spans.length, 0, 'nothing recorded');
      } finally {
        await s.close();
      }
    });
  }
});

describe('an unsampled call made outside any request (a new trace)', () => {
  // Trace headers the app set that none of the formats can read a context from: the call carries its own context instead,
  // in its formats; the other formats' headers pass as the app set them (Envoy's tracers write their own headers only).
  const stale = { tracestate: 'vendor=stale', 'x-b3-spanid': S, 'x-b3-sampled': '1', 'x-b3-parentspanid': S };
  const rows: { name: string; propagation?: ('w3c' | 'b3' | 'b3-single')[]; want: string[] }[] = [
    { name: 'w3c (the default): one new traceparent, flags 00; the B3 headers as they were', want: ['traceparent', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-spanid'] },
    { name: 'b3: the x-b3 headers, sampled 0, no traceparent; tracestate as it was', propagation: ['b3'], want: ['tracestate', 'x-b3-sampled', 'x-b3-spanid', 'x-b3-traceid'] },
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

describe('attempts are observed for recorded calls only', () => {
  const attemptEnd = channel('meshlet:attempt:end');
  it('the tracer never subscribes to the attempt channels: an unsampled call publishes no attempt:end, a sampled one still gets its attempt span', async () => {
    let draw = 0.99;
    const s = await setup({ random: { next: () => draw }, telemetry: { tracing: { samplingPercentage: 50 } } });
    const call = async () => void (await (await s.mesh.fetch('http://sink.default.svc.cluster.local/x')).text());
    try {
      await call();
      assert.equal(attemptEnd.hasSubscribers, false);
      exporter.reset();
      draw = 0;
      await call();
      const spans = await finished(2);
      const attempt = spans.find((x) => x.name.startsWith('router '));
      // What only attempt:end carries: the attempt's status and endpoint.
      assert.equal(attempt?.attributes['http.status_code'], '200');
      assert.match(String(attempt?.attributes.upstream_address), /^127\.0\.0\.1:\d+$/);
      assert.equal(attempt?.parentSpanContext?.spanId, client(spans)?.spanContext().spanId);
      // The sampled call's attempts went to the tracer through the call itself: other calls in flight publish nothing.
      assert.equal(attemptEnd.hasSubscribers, false);
      draw = 0.99;
      await call();
      assert.equal(attemptEnd.hasSubscribers, false);
    } finally {
      await s.close();
    }
  });
});

describe("a B3 mesh leaves the app's W3C context on its calls (Istio's zipkin provider, an OpenTelemetry SDK on W3C)", () => {
  // Envoy's Zipkin tracer writes the x-b3-* headers only (ZipkinSpan::injectContext): the traceparent the app's own
  // instrumentation wrote goes on, so the next app's W3C instrumentation continues the trace. meshlet removed it, and
  // the next hop's instrumentation started a new trace for every request.
  it('the call carries the app traceparent as it was and its own x-b3-* in the same trace', async () => {
    const s = await setup({ telemetry: { tracing: { samplingPercentage: 100, propagation: ['b3'] } } });
    try {
      sinkSeen.length = 0;
      const r = await s.mesh.fetch('http://sink.default.svc.cluster.local/top', { headers: { traceparent: `00-${T}-${S}-01` } });
      await r.text();
      const got = s.sink.at(-1) ?? {};
      assert.equal(got.traceparent, `00-${T}-${S}-01`);
      assert.equal(got['x-b3-traceid'], T);
      assert.equal(got['x-b3-sampled'], '1');
      assert.notEqual(got['x-b3-spanid'], S);
    } finally {
      await s.close();
    }
  });
});
