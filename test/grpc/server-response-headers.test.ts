/**
 * Headers the admission phases add to a gRPC call's response (a local rate limit's
 * `response_headers_to_add`, an external authorizer's headers) go into its metadata — except the
 * ones HTTP/2 and gRPC keep for themselves. A connection-specific header (`connection`,
 * `transfer-encoding`, …) is refused by Node's http2 as grpc-js writes the head: taken as metadata,
 * it threw out of the server's stream handler and ended the process at the first rate-limited
 * call. A `content-type` would replace gRPC's own, so a client that checks it (grpc-go, grpc-java)
 * would not read the status; Envoy's gRPC local reply sets `content-type: application/grpc` after
 * a filter's headers. Real grpc-js server; the answer's head read with node:http2.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { type Echo, grpc, unary } from '../helpers/grpc.ts';
import { plainClient, startMeshGrpcServer } from '../helpers/grpc-server.ts';
import { localRateLimitFilter } from '../helpers/rate-limit.ts';

/** One Echo/Unary call with an empty message over a new plaintext HTTP/2 connection: the head and trailers together. */
function rawCall(port: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = connect(`http://127.0.0.1:${port}`);
    s.on('error', reject);
    const st = s.request({ ':method': 'POST', ':path': '/meshlet.test.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
    let h: Record<string, unknown> = {};
    st.on('response', (x) => (h = { ...h, ...x }));
    st.on('trailers', (x) => (h = { ...h, ...x }));
    st.on('error', reject);
    st.on('close', () => {
      s.close();
      resolve(h);
    });
    st.resume();
    st.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

describe('gRPC server: response headers from config that HTTP/2 or gRPC keep for themselves', () => {
  it('a rate limit adding connection, transfer-encoding, content-type and content-length: the call ends UNAVAILABLE with gRPC’s content-type, the other headers kept, the server still up', async () => {
    const limit = localRateLimitFilter({ name: 'rl', namespace: 'foo' }, 1, '60s', {
      response_headers_to_add: [
        { append_action: 'OVERWRITE_IF_EXISTS_OR_ADD', header: { key: 'connection', value: 'close' } },
        { append_action: 'OVERWRITE_IF_EXISTS_OR_ADD', header: { key: 'transfer-encoding', value: 'chunked' } },
        { append_action: 'OVERWRITE_IF_EXISTS_OR_ADD', header: { key: 'content-type', value: 'text/plain' } },
        { append_action: 'OVERWRITE_IF_EXISTS_OR_ADD', header: { key: 'content-length', value: '17' } },
        { append_action: 'OVERWRITE_IF_EXISTS_OR_ADD', header: { key: 'x-local-rate-limit', value: 'true' } },
      ],
    });
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', config: [limit], clock: new ManualClock(), logger: { warn: () => undefined } });
    const server = await startMeshGrpcServer(mesh);
    const client = plainClient(server.port) as Echo;
    try {
      assert.equal((await unary(client, { text: 'r' })).error, undefined);
      const head = await rawCall(server.port);
      assert.deepEqual(
        [head[':status'], head['grpc-status'], head['grpc-message'], head['x-local-rate-limit'], head.connection, head['transfer-encoding'], head['content-length']],
        [200, '14', 'local_rate_limited', 'true', undefined, undefined, undefined],
      );
      assert.match(String(head['content-type']), /^application\/grpc/);
      // The server still answers.
      const again = await unary(client, { text: 'r' });
      assert.equal(again.error?.code, grpc.status.UNAVAILABLE);
      assert.equal(again.error?.details, 'local_rate_limited');
    } finally {
      client.close();
      await server.close();
      await mesh.close();
    }
  });
});
