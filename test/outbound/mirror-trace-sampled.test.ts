/**
 * Istio configures every mirror policy with `trace_sampled: false`, so Envoy's shadow request
 * carries a trace context that says "not sampled": the mirror destination's spans stay out of
 * the caller's trace. Before, meshlet sent the copy the primary's context unchanged (sampled),
 * so a shadow deployment's spans joined production traces.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createMesh } from '../../src/index.ts';
import type { Headers } from '../../src/core/handler.ts';
import { unsampleTraceContext } from '../../src/policies/mirror.ts';
import { call, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';
import { until } from '../helpers/until.ts';

const ups: Upstream[] = [];
after(() => Promise.all(ups.map((u) => u.close())));

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

test('the mirrored copy says "not sampled"; the primary request keeps the caller’s decision', async () => {
  const primary = await startUpstream('primary');
  const shadow = await startUpstream('shadow');
  ups.push(primary, shadow);
  const mesh = await createMesh({
    service: 'productpage',
    config: [
      serviceEntry('reviews', 'reviews.example', 80, [{ port: primary.port }]),
      serviceEntry('shadow', 'shadow.example', 80, [{ port: shadow.port }]),
      virtualService('reviews', ['reviews.example'], [{ route: [{ destination: { host: 'reviews.example' } }], mirror: { host: 'shadow.example' } }]),
    ],
  });
  try {
    const headers = { traceparent: `00-${TRACE}-${SPAN}-01`, 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': '1' };
    assert.equal((await call(mesh, 'http://reviews.example/', { headers })).status, 200);
    await until(() => shadow.seen.length === 1, 'the mirrored copy');
    const main = primary.seen[0]?.headers;
    const copy = shadow.seen[0]?.headers;
    assert.equal(main?.traceparent, `00-${TRACE}-${SPAN}-01`);
    assert.equal(main?.['x-b3-sampled'], '1');
    assert.equal(copy?.traceparent, `00-${TRACE}-${SPAN}-00`);
    assert.equal(copy?.['x-b3-sampled'], '0');
    assert.equal(copy?.['x-b3-traceid'], TRACE);
  } finally {
    await mesh.close();
  }
});

describe('unsampleTraceContext', () => {
  const cases: [string, Headers, Headers][] = [
    ['W3C sampled', { traceparent: `00-${TRACE}-${SPAN}-01` }, { traceparent: `00-${TRACE}-${SPAN}-00` }],
    ['W3C other flag bits kept', { traceparent: `00-${TRACE}-${SPAN}-03` }, { traceparent: `00-${TRACE}-${SPAN}-02` }],
    ['W3C not sampled stays', { traceparent: `00-${TRACE}-${SPAN}-00` }, { traceparent: `00-${TRACE}-${SPAN}-00` }],
    ['B3 without a decision gets one', { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN }, { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': '0' }],
    ['B3 debug dropped', { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-flags': '1' }, { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': '0' }],
    ['b3 single with parent', { b3: `${TRACE}-${SPAN}-1-${SPAN}` }, { b3: `${TRACE}-${SPAN}-0-${SPAN}` }],
    ['b3 single without a decision', { b3: `${TRACE}-${SPAN}` }, { b3: `${TRACE}-${SPAN}-0` }],
    ['b3 single decision only', { b3: 'd' }, { b3: '0' }],
    ['no trace context: untouched', { 'x-other': 'a' }, { 'x-other': 'a' }],
  ];
  for (const [name, input, want] of cases) {
    test(name, () => {
      const h = { ...input };
      unsampleTraceContext(h);
      assert.deepEqual(h, want);
    });
  }
});
