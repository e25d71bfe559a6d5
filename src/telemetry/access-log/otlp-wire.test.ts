/**
 * The hand-written OTLP encoding, decoded by @grpc/proto-loader from a .proto with
 * opentelemetry-proto's field numbers (test/fixtures/otlp/logs_service.proto): Envoy's shape
 * (one ResourceLogs, one ScopeLogs), the start time in ns, a string body, string attributes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { otlpCodec } from '../../../test/helpers/otel-collector.ts';
import { decodeExportLogsResponse, encodeExportLogsRequest, encodeLogRecord, spanIdBytes, traceIdBytes } from './otlp-wire.ts';

describe('OTLP logs encoding', () => {
  const codec = otlpCodec();

  test('an Export request decodes with the official field numbers', () => {
    const a = encodeLogRecord({ startTimeMs: Date.UTC(2026, 11, 3, 4, 5, 6) + 0.25, body: '[x] "GET / HTTP/1.1" 200\n', attributes: [['code', '200'], ['empty', ''], ['utf8', 'é✓']] });
    const b = encodeLogRecord({ startTimeMs: 1, body: '', attributes: [] });
    const c = encodeLogRecord({ startTimeMs: 2, body: undefined, attributes: [['k', 'v']], traceId: Buffer.alloc(16, 0xab) });
    const req = codec.requestDeserialize(encodeExportLogsRequest([a, b, c]));
    assert.equal(req.resource_logs.length, 1);
    const rl = req.resource_logs[0] as (typeof req.resource_logs)[0];
    // Istio disables Envoy's built-in labels and sets no resource attributes: an empty resource.
    assert.deepEqual(rl.resource?.attributes, []);
    assert.equal(rl.scope_logs.length, 1);
    assert.equal(rl.scope_logs[0]?.scope, null);
    const [ra, rb, rc] = rl.scope_logs[0]?.log_records ?? [];
    assert.equal(ra?.time_unix_nano, String(BigInt(Date.UTC(2026, 11, 3, 4, 5, 6)) * 1_000_000n + 250_000n));
    assert.equal(ra?.observed_time_unix_nano, '0');
    assert.deepEqual(ra?.body, { string_value: '[x] "GET / HTTP/1.1" 200\n', value: 'string_value' });
    assert.deepEqual(
      ra?.attributes.map((kv) => [kv.key, kv.value.value, kv.value.string_value]),
      [
        ['code', 'string_value', '200'],
        ['empty', 'string_value', ''],
        ['utf8', 'string_value', 'é✓'],
      ],
    );
    assert.equal(ra?.trace_id.length, 0);
    // An empty body is still a string body (a oneof member is written even when empty).
    assert.deepEqual(rb?.body, { string_value: '', value: 'string_value' });
    assert.equal(rb?.time_unix_nano, '1000000');
    assert.equal(rc?.body, null);
    assert.equal(rc?.trace_id.toString('hex'), 'ab'.repeat(16));
    assert.equal(rc?.span_id.length, 0);
  });

  test("trace and span ids: Envoy's populateTraceContext (32 hex digits: 16 bytes; 16 digits padded to 16 bytes; span id 8 bytes)", () => {
    const d = encodeLogRecord({ startTimeMs: 3, body: undefined, attributes: [], traceId: traceIdBytes('0af7651916cd43dd8448eb211c80319c'), spanId: spanIdBytes('b7ad6b7169203331') });
    const e = encodeLogRecord({ startTimeMs: 4, body: undefined, attributes: [], traceId: traceIdBytes('8448eb211c80319c'), spanId: spanIdBytes('B7AD6B7169203331') });
    const [rd, re] = codec.requestDeserialize(encodeExportLogsRequest([d, e])).resource_logs[0]?.scope_logs[0]?.log_records ?? [];
    assert.deepEqual([rd?.trace_id.toString('hex'), rd?.span_id.toString('hex')], ['0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331']);
    assert.deepEqual([re?.trace_id.toString('hex'), re?.span_id.toString('hex')], ['00000000000000008448eb211c80319c', 'b7ad6b7169203331']);
    for (const bad of [undefined, '', 'abc', 'zz'.repeat(16), '0'.repeat(31), '0'.repeat(33)]) assert.equal(traceIdBytes(bad), undefined, String(bad));
    for (const bad of [undefined, '', '0'.repeat(15), '0'.repeat(32), 'g'.repeat(16)]) assert.equal(spanIdBytes(bad), undefined, String(bad));
  });

  test('the answer: partial success with rejected records and a message; an empty answer', () => {
    assert.deepEqual(decodeExportLogsResponse(codec.responseSerialize({ partial_success: { rejected_log_records: 3, error_message: 'too old' } })), { rejected: 3, errorMessage: 'too old' });
    assert.deepEqual(decodeExportLogsResponse(codec.responseSerialize({})), { rejected: 0, errorMessage: '' });
    assert.throws(() => decodeExportLogsResponse(Buffer.from([0x0a, 0x05, 0x08])), RangeError);
  });
});
