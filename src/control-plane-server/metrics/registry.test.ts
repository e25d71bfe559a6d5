import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseExposition, sampleValue } from '../../../test/helpers/prometheus-text.ts';
import { escapeHelp, escapeLabelValue, formatValue, MetricsRegistry } from './registry.ts';

describe('Prometheus text registry', () => {
  test('escaping and values, as the 0.0.4 format wants them', () => {
    const rows: [string, string, string][] = [
      ['plain', 'a/b c', 'a/b c'],
      ['backslash', 'C:\\dir', 'C:\\\\dir'],
      ['quote', 'say "hi"', 'say \\"hi\\"'],
      ['line feed', 'one\ntwo', 'one\\ntwo'],
      ['all', '\\"\n', '\\\\\\"\\n'],
    ];
    for (const [name, input, want] of rows) assert.equal(escapeLabelValue(input), want, name);
    assert.equal(escapeHelp('a "quoted" \\ and\nnewline'), 'a "quoted" \\\\ and\\nnewline', 'HELP keeps quotes');
    assert.deepEqual([1, 0, 2.5, -3, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN, 1e21].map(formatValue), ['1', '0', '2.5', '-3', '+Inf', '-Inf', 'NaN', '1e+21']);
  });

  test('counters, gauges (set and collected) and histograms, exposed and parsed back strictly', () => {
    const r = new MetricsRegistry();
    const c = r.counter('x_pushes', 'Pushes, by "type".\nSecond line \\ here.', ['type']);
    c.inc({ type: 'config' });
    c.inc({ type: 'config' }, 2);
    c.inc({ type: 'we"ird\\\n' });
    r.gauge('x_open', 'Open now.').collect(() => [[{}, 7]]);
    r.gauge('x_set', 'Set.', ['kind']).set({ kind: 'a' }, -1.5);
    const h = r.histogram('x_seconds', 'Durations.', ['type'], [0.1, 1]);
    h.observe({ type: 'config' }, 0.05);
    h.observe({ type: 'config' }, 0.5);
    h.observe({ type: 'config' }, 5);
    h.observe({ type: 'endpoints' }, 1);
    r.counter('x_empty', 'Nothing yet.');
    const text = r.expose();
    const fams = parseExposition(text);
    assert.equal(fams.get('x_pushes')?.help, 'Pushes, by "type".\nSecond line \\ here.');
    assert.equal(fams.get('x_pushes')?.type, 'counter');
    assert.equal(sampleValue(fams, 'x_pushes', { type: 'config' }), 3);
    assert.equal(sampleValue(fams, 'x_pushes', { type: 'we"ird\\\n' }), 1, 'the odd label value round-trips');
    assert.equal(sampleValue(fams, 'x_open'), 7);
    assert.equal(sampleValue(fams, 'x_set', { kind: 'a' }), -1.5);
    assert.deepEqual(
      fams.get('x_seconds')?.samples.filter((s) => s.labels.type === 'config').map((s) => [s.name, s.labels.le ?? '', s.value]),
      [
        ['x_seconds_bucket', '0.1', 1],
        ['x_seconds_bucket', '1', 2],
        ['x_seconds_bucket', '+Inf', 3],
        ['x_seconds_sum', '', 5.55],
        ['x_seconds_count', '', 3],
      ],
    );
    assert.equal(sampleValue(fams, 'x_seconds_bucket', { type: 'endpoints', le: '1' }), 1, 'le is inclusive');
    assert.deepEqual(fams.get('x_empty')?.samples, [], 'a family without series is HELP and TYPE only');
    assert.match(text, /^# HELP x_pushes Pushes, by "type"\.\\nSecond line \\\\ here\.\n# TYPE x_pushes counter\nx_pushes\{type="config"\} 3\n/);
  });

  test('refuses what would break the format or the meaning', () => {
    const r = new MetricsRegistry();
    const rows: [string, () => unknown, RegExp][] = [
      ['bad metric name', () => r.counter('1abc', 'h'), /not a Prometheus name/],
      ['bad label name', () => r.counter('ok_a', 'h', ['a-b']), /label name "a-b"/],
      ['reserved label', () => r.counter('ok_b', 'h', ['__x']), /label name "__x"/],
      ['le on a non-histogram', () => r.gauge('ok_c', 'h', ['le']), /label name "le"/],
      ['unsorted buckets', () => r.histogram('ok_d', 'h', [], [1, 0.5]), /increasing/],
      ['infinite bucket', () => r.histogram('ok_e', 'h', [], [1, Number.POSITIVE_INFINITY]), /finite/],
    ];
    for (const [name, fn, err] of rows) assert.throws(fn, err, name);
    r.counter('twice', 'h');
    assert.throws(() => r.counter('twice', 'h'), /registered twice/);
    const c = r.counter('labelled', 'h', ['type']);
    assert.throws(() => c.inc({}), /labels \[\] are not \["type"\]/);
    assert.throws(() => c.inc({ type: 'a', other: 'b' }), /are not/);
    assert.throws(() => c.inc({ type: 'a' }, -1), /only goes up/);
  });
});

describe('the strict exposition parser (test helper) fails what it must', () => {
  const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 2\n';
  test('accepts a valid exposition', () => {
    assert.equal(sampleValue(parseExposition(ok), 'a_total', { x: '1' }), 2);
  });
  const rows: [string, string, RegExp][] = [
    ['no final line feed', ok.slice(0, -1), /end with a line feed/],
    ['empty line', `${ok}\n`, /empty line/],
    ['sample without TYPE', 'b 1\n', /no TYPE/],
    ['TYPE twice', '# TYPE a counter\n# TYPE a counter\na 1\n', /TYPE for a twice/],
    ['HELP after samples', `${ok}# HELP a_total again\n`, /after its samples/],
    ['unknown type', '# TYPE a countr\n', /unknown TYPE/],
    ['bad escape', '# TYPE a gauge\na{x="\\t"} 1\n', /invalid escape/],
    ['unterminated value', '# TYPE a gauge\na{x="1} 1\n', /unterminated|expected/],
    ['duplicate label', '# TYPE a gauge\na{x="1",x="2"} 1\n', /label x twice/],
    ['duplicate series', '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n', /twice/],
    ['two spaces', '# TYPE a gauge\na  1\n', /value/],
    ['bad value', '# TYPE a gauge\na one\n', /not a sample value/],
    ['negative counter', '# TYPE a counter\na -1\n', /negative/],
    ['families interleaved', '# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\n', /not together/],
    ['histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /\+Inf/],
    ['histogram not cumulative', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /cumulative/],
    ['histogram count differs', '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n', /differs/],
    ['histogram without sum', '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\n', /_sum/],
  ];
  for (const [name, text, err] of rows) {
    test(`refuses: ${name}`, () => assert.throws(() => parseExposition(text), err));
  }
});
