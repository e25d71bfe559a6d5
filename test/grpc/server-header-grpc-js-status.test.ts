/**
 * Istio's `proxyHeaders.server.value` on the answers grpc-js makes itself, below the mesh's
 * server interceptor: a sidecar's connection manager writes `server` on every response it
 * encodes (`server_header_transformation: OVERWRITE`), whoever made it — the app's gRPC library
 * included. Read on the wire with node:http2, for a server bound through the mesh
 * (`mesh.grpc.bind`) and one bound by the app (`bindAsync`, plaintext, with `mesh.grpc.judgeUnserved`):
 *
 * - a method the server does not serve: UNIMPLEMENTED;
 * - a request message over `grpc.max_receive_message_length`: RESOURCE_EXHAUSTED;
 * - a request message the method's deserializer cannot read: INTERNAL;
 * - the handler's own answer, for comparison.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createMesh } from '../../src/index.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const PATH = '/meshlet.test.Strict/Call';

/** A service whose request deserializer refuses a message starting with 0xff. */
const service: grpc.ServiceDefinition = {
  Call: {
    path: PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => {
      if (b[0] === 0xff) throw new Error('not a request');
      return b;
    },
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

/** One unary call over node:http2 with `message` as its one message: the HEADERS as they came (trailers-only or not) and the trailers. */
function call(port: number, path: string, message: Buffer): Promise<{ headers: Record<string, unknown>; trailers: Record<string, unknown> }> {
  const session = connect(`http://127.0.0.1:${port}`);
  return new Promise<{ headers: Record<string, unknown>; trailers: Record<string, unknown> }>((resolve, reject) => {
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    let headers: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    req.on('response', (h) => (headers = { ...h }));
    req.on('trailers', (t) => (trailers = { ...t }));
    req.on('error', reject);
    req.resume();
    req.on('close', () => resolve({ headers, trailers }));
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    req.end(frame);
  }).finally(() => session.close());
}

function statusOf(r: { headers: Record<string, unknown>; trailers: Record<string, unknown> }): string {
  return String(r.trailers['grpc-status'] ?? r.headers['grpc-status']);
}

describe("proxyHeaders.server on grpc-js's own answers", () => {
  for (const bind of ['mesh.grpc.bind', 'bindAsync'] as const) {
    it(`${bind}: UNIMPLEMENTED, RESOURCE_EXHAUSTED and a deserialization error carry server.value as the handler's answer does`, async () => {
      const mesh = await createMesh({ service: 'httpbin', namespace: 'default', config: [], logger: quiet, proxyHeaders: { server: { value: 'edge/1' } } });
      const server = new grpc.Server({ interceptors: mesh.grpc.serverInterceptors(), 'grpc.max_receive_message_length': 16 });
      server.addService(service, { Call: (_c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from('ok')) });
      let port: number;
      if (bind === 'mesh.grpc.bind') port = await mesh.grpc.bind(server, '127.0.0.1:0');
      // A server the app binds is given the stand-in for unserved methods as docs/grpc.md says (bind does it itself).
      else port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
      if (bind === 'bindAsync') mesh.grpc.judgeUnserved(server);
      try {
        const cases: [string, string, Buffer, string][] = [
          ['served', PATH, Buffer.from('hi'), '0'],
          ['unknown method', '/meshlet.test.Strict/Nope', Buffer.from('hi'), String(grpc.status.UNIMPLEMENTED)],
          ['over the size limit', PATH, Buffer.alloc(64, 1), String(grpc.status.RESOURCE_EXHAUSTED)],
          ['undeserializable', PATH, Buffer.from([0xff, 1]), String(grpc.status.INTERNAL)],
        ];
        for (const [what, path, message, status] of cases) {
          const r = await call(port, path, message);
          assert.equal(statusOf(r), status, `${what}: ${JSON.stringify(r)}`);
          assert.equal(r.headers.server, 'edge/1', `${what}: ${JSON.stringify(r)}`);
        }
      } finally {
        server.forceShutdown();
        await mesh.close();
      }
    });
  }
});
