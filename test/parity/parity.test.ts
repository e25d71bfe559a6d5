/**
 * HTTP ↔ gRPC parity: every row of ./scenarios.ts — one Istio config — run over HTTP
 * (mesh.fetch) and over gRPC (mesh.grpc.client) against real servers — for the server-side rows,
 * servers under a mesh of their own (mesh.createServer; a grpc-js server with
 * mesh.grpc.serverInterceptors(), bound with mesh.grpc.bind); each protocol's caller gets what
 * Envoy gives it, and the Istio request metrics carry the same labels on both sides.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { grpc } from '../helpers/grpc.ts';
import { type Protocol, removeDevCa, requestKey, run } from './harness.ts';
import { type GrpcExpectation, type HttpExpectation, scenarios } from './scenarios.ts';

describe('HTTP and gRPC parity: one Istio config, both protocols', () => {
  after(() => removeDevCa());

  it('the table has unique row names', () => {
    const names = scenarios.map((s) => s.name);
    assert.equal(new Set(names).size, names.length);
  });

  for (const s of scenarios) {
    for (const protocol of ['http', 'grpc'] as const satisfies Protocol[]) {
      it(`${s.name} [${protocol}]`, async () => {
        const want: HttpExpectation | GrpcExpectation = s[protocol];
        const status = 'status' in want ? want.status : grpc.status[want.code];
        const r = await run(s, protocol);
        const what = protocol === 'http' ? 'HTTP status' : 'gRPC status';
        assert.equal(r.seen.status, status, `${what}: got ${protocol === 'grpc' ? grpc.status[r.seen.status] : r.seen.status}`);
        if (want.flags !== null) assert.equal(r.seen.flags, want.flags ?? '-', 'response flags');
        if (want.details !== undefined) assert.equal(r.seen.details, want.details, 'response body / gRPC status details');
        if (want.upstream !== undefined) assert.equal(r.seen.upstream, want.upstream, 'the workload that answered');
        if (want.hits !== undefined) assert.deepEqual({ ...r.hits }, want.hits, 'calls each workload received');
        for (const [name, [min, max]] of Object.entries(want.served ?? {})) {
          const n = r.served[name] ?? 0;
          assert.ok(n >= min && n <= max, `${name} served ${n} calls, want ${min}..${max} (${JSON.stringify(r.served)})`);
        }
        if (want.requests !== undefined) assert.deepEqual({ ...r.requests }, want.requests, 'istio_requests_total{reporter="source"}');
        else {
          // The last call's point, with the labels Istio gives it.
          const key = requestKey({
            request_protocol: protocol,
            response_code: protocol === 'http' ? String(status) : '200',
            grpc_response_status: protocol === 'http' ? '' : String(status),
            response_flags: want.flags ?? '-',
          });
          const found = want.flags === null ? Object.keys(r.requests).some((k) => k.startsWith(key.slice(0, key.lastIndexOf(' ') + 1))) : (r.requests[key] ?? 0) >= 1;
          assert.ok(found, `istio_requests_total has no point ${key}: ${JSON.stringify(r.requests)}`);
        }
        if (want.inbound !== undefined) assert.deepEqual({ ...r.inbound }, want.inbound, 'istio_requests_total{reporter="destination"}');
        else if (s.server !== undefined) {
          // The workload's mesh reported the last call, with the status the caller got.
          const code = protocol === 'http' ? `http ${status} "" ` : `grpc 200 ${status} `;
          assert.ok(Object.keys(r.inbound).some((k) => k.startsWith(code)), `istio_requests_total{reporter="destination"} has no point ${code}…: ${JSON.stringify(r.inbound)}`);
        } else assert.deepEqual({ ...r.inbound }, {}, 'no workload mesh, no destination metrics');
        if (want.principal !== undefined) assert.equal(r.principal, want.principal, 'the request principal the handler ran with');
      });
    }
  }
});
