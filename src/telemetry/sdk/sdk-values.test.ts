import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyResource } from '@opentelemetry/resources';
import { AggregationTemporality, AggregationType, DataPointType, InstrumentType } from '@opentelemetry/sdk-metrics';
import { loadPeers } from './peers.ts';
import { COUNTER_INSTRUMENT, CUMULATIVE, DEFAULT_AGGREGATION, DELTA, EMPTY_RESOURCE, GAUGE_POINTS, HISTOGRAM_INSTRUMENT, HISTOGRAM_POINTS, SUM_POINTS } from './sdk-values.ts';
import { InvalidArgumentError } from '../../core/errors.ts';

describe('the SDK values meshlet/telemetry spells out (so importing it loads no SDK package)', () => {
  it('are the installed SDK enums\' values', () => {
    assert.equal(DELTA, AggregationTemporality.DELTA);
    assert.equal(CUMULATIVE, AggregationTemporality.CUMULATIVE);
    assert.equal(HISTOGRAM_POINTS, DataPointType.HISTOGRAM);
    assert.equal(GAUGE_POINTS, DataPointType.GAUGE);
    assert.equal(SUM_POINTS, DataPointType.SUM);
    assert.equal(COUNTER_INSTRUMENT, InstrumentType.COUNTER);
    assert.equal(HISTOGRAM_INSTRUMENT, InstrumentType.HISTOGRAM);
    assert.deepEqual(DEFAULT_AGGREGATION, { type: AggregationType.DEFAULT });
  });

  it('the empty resource behaves as emptyResource()', () => {
    assert.deepEqual(EMPTY_RESOURCE.attributes, emptyResource().attributes);
    assert.deepEqual(EMPTY_RESOURCE.getRawAttributes(), emptyResource().getRawAttributes());
    const other = emptyResource();
    assert.equal(EMPTY_RESOURCE.merge(other), other);
    assert.equal(EMPTY_RESOURCE.merge(null), EMPTY_RESOURCE);
  });
});

describe('loadPeers', () => {
  const missing = (name: string) => () => Promise.reject(Object.assign(new Error(`Cannot find package '${name}' imported from /app/x.js`), { code: 'ERR_MODULE_NOT_FOUND' }));
  it('returns the packages, in order', async () => {
    const [a, b] = await loadPeers('f', [
      ['a', async () => 1],
      ['b', async () => 'two'],
    ]);
    assert.equal(a, 1);
    assert.equal(b, 'two');
  });
  it('names every missing package and the npm install line', async () => {
    await assert.rejects(
      loadPeers('startTelemetry', [['@x/one', missing('@x/one')], ['ok', async () => 1], ['@x/two', missing('@x/two')]], 'or else'),
      (e: unknown) => {
        assert.ok(e instanceof InvalidArgumentError);
        assert.equal(e.message, 'startTelemetry needs @x/one and @x/two, which are not installed (optional peer dependencies of meshlet); install them next to meshlet: npm install @x/one @x/two; or else');
        return true;
      },
    );
    await assert.rejects(loadPeers('f', [['@x/one', missing('@x/one')]]), /^InvalidArgumentError: f needs @x\/one, which is not installed .*; install it next to meshlet: npm install @x\/one$/);
  });
  it('rethrows anything else, a missing dependency of an installed package included', async () => {
    await assert.rejects(loadPeers('f', [['a', missing('dep-of-a')]]), (e: unknown) => !(e instanceof InvalidArgumentError) && /dep-of-a/.test(String(e)));
  });
});
