/**
 * Istio standard metrics, continued (istio-metrics.test.ts has the labels of each reporter): the
 * Telemetry resource's overrides and CEL tag values, a MeterProvider registered later, and
 * bounded cardinality.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { AttemptStartMessage } from '../../core/observe.ts';
import { mergeMetrics } from './config.ts';
import { IstioMetrics } from './istio-metrics.ts';

import { attemptStartCh, callEnd, callEndCh, identity, inboundEnd, inboundEndCh, metricsFixture, TestReader } from '../../../test/helpers/istio-metrics.ts';

describe('Istio standard metrics: overrides, providers, cardinality', () => {
  const f = metricsFixture();

  it('Telemetry overrides: a disabled metric, a disabled mode, a removed tag', async () => {
    f.m.configure(
      mergeMetrics(
        [
          {
            overrides: [
              { match: { metric: 'REQUEST_COUNT', mode: 'CLIENT' }, disabled: true },
              { match: { metric: 'ALL_METRICS', mode: 'SERVER' }, tagOverrides: { response_flags: { operation: 'REMOVE' } } },
              { match: { metric: 'REQUEST_SIZE', mode: 'SERVER' }, disabled: true },
            ],
          },
        ],
        ['prometheus'],
        (p) => p === 'prometheus',
      ),
    );
    callEndCh.publish(callEnd());
    inboundEndCh.publish(inboundEnd());
    const counts = await f.reader.points('istio_requests_total');
    assert.deepEqual(counts.map((p) => p.attributes['reporter']), ['destination']);
    assert.equal('response_flags' in (counts[0]?.attributes ?? {}), false);
    assert.equal(counts[0]?.attributes['response_code'], '200');
    const sizes = await f.reader.points('istio_request_bytes');
    assert.deepEqual(sizes.map((p) => p.attributes['reporter']), ['source']);
    // The client side keeps response_flags.
    const durations = await f.reader.points('istio_request_duration_milliseconds');
    assert.equal(durations.find((p) => p.attributes['reporter'] === 'source')?.attributes['response_flags'], '-');
    f.m.configure(mergeMetrics([{ overrides: [{ disabled: true }] }], ['prometheus'], () => true));
    callEndCh.publish(callEnd({ status: 500 }));
    inboundEndCh.publish(inboundEnd({ status: 500 }));
    assert.equal((await f.reader.points('istio_requests_total')).filter((p) => p.attributes['response_code'] === '500').length, 0);
  });

  it('tagOverrides UPSERT with CEL values (standard and new tags; an error is unknown; one that does not compile is warned and left out)', async () => {
    f.m.configure(
      mergeMetrics(
        [
          {
            overrides: [
              {
                match: { metric: 'REQUEST_COUNT' },
                tagOverrides: {
                  destination_port: { value: 'string(destination.port)' },
                  request_host: { value: 'request.host' },
                  user: { value: "request.headers['x-user']" },
                  literal: { value: '"fixed"' },
                  response_code: { value: 'response.code >= 500 ? "5xx" : "ok"' },
                  request_protocol: { value: '(((' },
                },
              },
            ],
          },
        ],
        ['prometheus'],
        () => true,
      ),
    );
    assert.equal(f.warnings.filter((w) => w.includes('tagOverrides request_protocol') && w.includes('does not compile')).length, 2, 'once per mode');
    inboundEndCh.publish(inboundEnd({ status: 503, authority: 'reviews.shop:9080', headers: { 'x-user': 'jason' }, localPort: 9080 }));
    inboundEndCh.publish(inboundEnd({ status: 200, authority: 'reviews.shop:9080', headers: {}, localPort: 9080 }));
    const points = await f.reader.points('istio_requests_total');
    const bad = points.find((p) => p.attributes['response_code'] === '5xx');
    assert.equal(bad?.attributes['user'], 'jason');
    assert.equal(bad?.attributes['request_host'], 'reviews.shop:9080');
    assert.equal(bad?.attributes['literal'], 'fixed');
    assert.equal(bad?.attributes['destination_port'], '9080');
    assert.equal('request_protocol' in (bad?.attributes ?? {}), false);
    const good = points.find((p) => p.attributes['response_code'] === 'ok');
    assert.equal(good?.attributes['user'], 'unknown', 'a missing header is an error: unknown');
    // Other metrics keep the standard tags.
    const [d] = await f.reader.points('istio_request_duration_milliseconds');
    assert.equal(d?.attributes['request_protocol'], 'http');
    assert.equal('user' in (d?.attributes ?? {}), false);
  });

  it('without a recording MeterProvider only attempt:start is subscribed; a global SDK registered later is picked up', async () => {
    const x = new IstioMetrics({ identity, workloadName: 'reviews-v2', now: () => f.now, warn: (w) => f.warnings.push(w), principal: () => '', inMesh: () => true, ip: '10.1.1.1' });
    x.start();
    f.made.push(x);
    assert.equal(x.recording, false);
    const r = new TestReader();
    const provider = new MeterProvider({ readers: [r] });
    metrics.setGlobalMeterProvider(provider);
    try {
      attemptStartCh.publish({ workload: identity, call: { headers: {} }, attempt: 1, cluster: 'c', endpoint: undefined } satisfies AttemptStartMessage);
      assert.equal(x.recording, true);
      callEndCh.publish(callEnd({ status: 418 }));
      assert.equal((await r.points('istio_requests_total')).filter((p) => p.attributes['response_code'] === '418').length, 1);
    } finally {
      metrics.disable();
    }
  });

  it('cardinality: label sets past maxSeries go to otel.metric.overflow, warned once; idle ones free their room', async () => {
    for (const x of f.made.splice(0)) x.close();
    f.m = f.make({}, { maxSeries: 3, idleSeriesMs: 1000 });
    for (let i = 0; i < 5; i++) callEndCh.publish(callEnd({ path: `/p${i}`, status: 200 + i }));
    let points = await f.reader.points('istio_requests_total');
    assert.equal(points.length, 4);
    assert.equal(points.find((p) => p.attributes['otel.metric.overflow'] === true)?.value, 2);
    assert.equal(f.warnings.filter((w) => w.includes('istio_requests_total reached 3 label sets')).length, 1);
    assert.equal(f.m.overflows['istio_requests_total'], 2);
    assert.equal(f.warnings.length, 4); // once for each of the four metrics
    // A known label set still counts as itself.
    callEndCh.publish(callEnd({ status: 200 }));
    points = await f.reader.points('istio_requests_total');
    assert.equal(points.find((p) => p.attributes['response_code'] === '200')?.value, 2);
    f.now = 5000;
    callEndCh.publish(callEnd({ status: 299 }));
    points = await f.reader.points('istio_requests_total');
    assert.equal(points.find((p) => p.attributes['response_code'] === '299')?.value, 1);
    assert.equal(f.m.overflows['istio_requests_total'], 2);
    assert.equal(f.warnings.length, 4);
  });
});
