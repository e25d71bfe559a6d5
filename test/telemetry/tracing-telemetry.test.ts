/**
 * Tracing policy from the Telemetry resource and the mesh's options, with the app's own SDK:
 * `customTags` (literal, header, environment), `disableSpanReporting` by mode, more Telemetry
 * fields, the app's own instrumentation inside a request, `telemetry.tracing` validation, and the
 * x-request-id made for a request without one. Set-up as in tracing-policy.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { context, SpanKind, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import express from 'express';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { createMesh } from '../../src/index.ts';
import { listen } from '../helpers/frameworks.ts';
import { attempt, client, exporter, finished, get, S, server, setup, sinkSeen, sinkService, T, useTracingSdk } from '../helpers/tracing-policy.ts';

useTracingSdk();

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

  it('formatter tags (Envoy substitution formats, empty values omitted) on client and server spans; one that does not compile is warned about and left out', async () => {
    const warnings: string[] = [];
    const formatter = (value: string) => ({ formatter: { value } });
    const s = await setup({
      telemetry: { tracing: { samplingPercentage: 100 } },
      logger: { warn: (m: string) => warnings.push(m) },
      telemetryResources: [
        telemetry('app', 'default', [
          {
            customTags: {
              line: formatter('%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %REQ(x-team)%'),
              cluster: formatter('%UPSTREAM_CLUSTER_RAW%'),
              missing: formatter('%REQ(x-missing)%'),
              partly: formatter('v=%REQ(x-missing)%'),
              bad: formatter('%NO_SUCH_OPERATOR%'),
            },
          },
        ]),
      ],
    });
    try {
      await get(s.port, { 'x-team': 'from-request' });
      const spans = await finished(3);
      const tags = (x: ReadableSpan | undefined) => [x?.attributes.line, x?.attributes.cluster, x?.attributes.missing, x?.attributes.partly, x?.attributes.bad];
      assert.deepEqual(tags(server(spans)), ['GET /up 200 from-request', `inbound|${s.port}||`, undefined, 'v=', undefined]);
      assert.deepEqual(tags(client(spans)), ['GET /down 200 from-call', 'outbound|80||sink.default.svc.cluster.local', undefined, 'v=', undefined]);
      assert.ok(
        warnings.some((w) => /tracing custom tag "bad": formatter "%NO_SUCH_OPERATOR%" .*NO_SUCH_OPERATOR.*; the tag is left out/.test(w)),
        warnings.join('\n'),
      );
    } finally {
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
      assert.equal(s.sink.at(-1)?.traceparent, `00-${T}-${attempt(spans)?.spanContext().spanId}-01`);
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
      const mesh = await createMesh({ service: 'app', namespace: 'default', labels: { app: 'app' }, logger: { warn: () => {} }, config: [sinkService(), ...resources] });
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
