import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { EvictingPrometheusReader } from './evicting-prometheus.ts';

describe('EvictingPrometheusReader', () => {
  let now = 1_000_000;
  const reader = new EvictingPrometheusReader({ port: 0, host: '127.0.0.1', idleSeriesMs: 60_000, now: () => now, withoutTargetInfo: true });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('meshlet');
  const requests = meter.createCounter('istio_requests_total');
  const duration = meter.createHistogram('istio_request_duration_milliseconds', { unit: 'ms', advice: { explicitBucketBoundaries: [0.5, 1, 5, 10] } });
  const bytes = meter.createHistogram('istio_request_bytes', { unit: 'By', advice: { explicitBucketBoundaries: [0.5, 1, 5, 10] } });
  after(() => provider.shutdown());

  it('writes Istio names exactly: no doubled _total, no unit suffix, _bucket/_sum/_count', async () => {
    requests.add(1, { reporter: 'source', response_code: '200' });
    duration.record(3, { reporter: 'source' });
    bytes.record(7, { reporter: 'source' });
    const text = await reader.text();
    assert.match(text, /^istio_requests_total\{reporter="source",response_code="200"\} 1$/m);
    assert.match(text, /^istio_request_duration_milliseconds_bucket\{reporter="source",le="5"\} 1$/m);
    assert.match(text, /^istio_request_duration_milliseconds_sum\{reporter="source"\} 3$/m);
    assert.match(text, /^istio_request_duration_milliseconds_count\{reporter="source"\} 1$/m);
    assert.match(text, /^istio_request_bytes_bucket\{reporter="source",le="\+Inf"\} 1$/m);
    assert.doesNotMatch(text, /_total_total|milliseconds_milliseconds|_ms_|bytes_By|otel_scope/);
  });

  it('adds deltas up into cumulative values across scrapes', async () => {
    requests.add(2, { reporter: 'source', response_code: '200' });
    duration.record(20, { reporter: 'source' });
    const text = await reader.text();
    assert.match(text, /^istio_requests_total\{reporter="source",response_code="200"\} 3$/m);
    assert.match(text, /^istio_request_duration_milliseconds_count\{reporter="source"\} 2$/m);
    assert.match(text, /^istio_request_duration_milliseconds_sum\{reporter="source"\} 23$/m);
    assert.match(text, /^istio_request_duration_milliseconds_bucket\{reporter="source",le="10"\} 1$/m);
  });

  it('drops a series idle for idleSeriesMs; one that comes back starts from zero', async () => {
    requests.add(1, { reporter: 'source', response_code: '503' });
    now += 30_000;
    let text = await reader.text();
    assert.match(text, /response_code="503"\} 1$/m);
    now += 45_000; // 200 last changed 75 s ago, 503 45 s ago
    requests.add(1, { reporter: 'source', response_code: '503' });
    text = await reader.text();
    assert.doesNotMatch(text, /response_code="200"/);
    assert.doesNotMatch(text, /istio_request_duration_milliseconds/);
    assert.match(text, /response_code="503"\} 2$/m);
    requests.add(1, { reporter: 'source', response_code: '200' });
    text = await reader.text();
    assert.match(text, /response_code="200"\} 1$/m);
    assert.equal(reader.seriesCount, 2);
  });

  it('serves /stats/prometheus and /metrics over HTTP, 404 elsewhere', async () => {
    const addr = await reader.listen();
    const base = `http://127.0.0.1:${addr.port}`;
    for (const p of ['/stats/prometheus', '/metrics']) {
      const res = await fetch(base + p);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
      assert.match(await res.text(), /istio_requests_total/);
    }
    const other = await fetch(`${base}/other`);
    assert.equal(other.status, 404);
    assert.match(await other.text(), /the metrics are at \/stats\/prometheus/);
  });
});

it('idleness is measured on the monotonic clock: the wall clock stepped a day forward (NTP) does not evict a series unchanged for a moment', async () => {
  const realNow = Date.now;
  let step = 0; // what NTP stepped the wall clock by
  Date.now = () => realNow() + step;
  const reader = new EvictingPrometheusReader({ port: 0, host: '127.0.0.1', idleSeriesMs: 60_000, withoutTargetInfo: true });
  const provider = new MeterProvider({ readers: [reader] });
  try {
    const requests = provider.getMeter('meshlet').createCounter('istio_requests_total');
    requests.add(1, { response_code: '200' });
    assert.match(await reader.text(), /response_code="200"\} 1$/m);
    step = 86_400_000;
    requests.add(1, { response_code: '503' });
    const text = await reader.text();
    assert.match(text, /response_code="200"\} 1$/m, 'unchanged for milliseconds, not a day');
    assert.match(text, /response_code="503"\} 1$/m);
  } finally {
    Date.now = realNow;
    await provider.shutdown();
  }
});
