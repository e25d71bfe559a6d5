/**
 * A status grpc-js sends itself, below the server's interceptors — a `grpc-timeout` it cannot
 * parse, a request message in an encoding it does not know, one over
 * `grpc.max_receive_message_length` — is what `meshlet:inbound:end` (and so Istio's metrics and the access log) reports: the
 * gRPC status the caller got, response code 200, no flag, as Envoy records the app's answer
 * behind a sidecar; not a downstream disconnect (DC) the caller never made. A caller that does
 * go away before any status still is DC. Raw HTTP/2 callers on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { connect as connectH2, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import type { InboundEndMessage } from '../../src/core/observe.ts';
import { grpc } from '../helpers/grpc.ts';
import { type MeshGrpcServer, startMeshGrpcServer } from '../helpers/grpc-server.ts';
import { until } from '../helpers/access-log.ts';

/** EchoRequest { text: "h" } framed. */
const MESSAGE = Buffer.from([0, 0, 0, 0, 3, 0x0a, 0x01, 0x68]);

describe('a status grpc-js sends itself is reported as the answer, not as a disconnect', () => {
  let mesh: Mesh;
  let server: MeshGrpcServer;
  let session: ClientHttp2Session;
  const ends: InboundEndMessage[] = [];
  const onEnd = (m: unknown): void => void ends.push(m as InboundEndMessage);
  let starts = 0;
  const onStart = (): void => void starts++;

  before(async () => {
    subscribe('meshlet:inbound:end', onEnd);
    subscribe('meshlet:inbound:start', onStart);
    mesh = await createMesh({ service: 'echo', namespace: 'foo', config: [] });
    server = await startMeshGrpcServer(mesh, 'insecure');
    session = connectH2(`http://127.0.0.1:${server.port}`);
    session.on('error', () => undefined);
  });
  after(async () => {
    unsubscribe('meshlet:inbound:end', onEnd);
    unsubscribe('meshlet:inbound:start', onStart);
    session.close();
    await server.close();
    await mesh.close();
  });

  /** One call: the grpc-status the caller got, and the end message published for it; `gone`: the caller's connection closes once the mesh has the call. */
  async function call(extra: OutgoingHttpHeaders, body: Buffer, gone = false): Promise<{ status: string | undefined; end: InboundEndMessage }> {
    const from = ends.length;
    const started = starts;
    const s = gone ? connectH2(`http://127.0.0.1:${server.port}`) : session;
    s.on('error', () => undefined);
    const stream = s.request({ ':method': 'POST', ':path': '/meshlet.test.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers', ...extra });
    const status = await new Promise<string | undefined>((resolve) => {
      let got: string | undefined;
      stream.on('response', (h) => (got ??= h['grpc-status'] as string | undefined));
      stream.on('trailers', (t) => (got ??= t['grpc-status'] as string | undefined));
      stream.on('close', () => resolve(got));
      stream.on('error', () => undefined);
      stream.resume();
      if (gone) {
        // A unary handler starts only at the half-close, which never comes: the connection goes first.
        stream.write(body);
        until(() => starts > started, 'the call to start').then(() => s.destroy());
      } else stream.end(body);
    });
    await until(() => ends.length > from, 'the end message');
    return { status, end: ends[from] as InboundEndMessage };
  }

  const rows: [name: string, extra: OutgoingHttpHeaders, body: Buffer, code: number][] = [
    ['a grpc-timeout grpc-js cannot parse', { 'grpc-timeout': 'soon' }, MESSAGE, grpc.status.INTERNAL],
    ['a message compressed with an unknown grpc-encoding', { 'grpc-encoding': 'zstdx' }, Buffer.from([1, 0, 0, 0, 2, 0x7a, 0x7a]), grpc.status.UNIMPLEMENTED],
    ["a message over grpc-js's receive limit", {}, Buffer.concat([Buffer.from([0, 0x7f, 0, 0, 0]), MESSAGE]), grpc.status.RESOURCE_EXHAUSTED],
  ];
  for (const [name, extra, body, code] of rows) {
    it(`${name}: ${grpc.status[code]}, reported as the answer (response code 200, no flag)`, async () => {
      const { status, end } = await call(extra, body);
      assert.equal(status, String(code));
      assert.equal(end.grpcStatus, code);
      assert.equal(end.status, 200);
      assert.equal(end.flags, '');
      assert.equal(end.details, 'via_upstream');
    });
  }

  it('a caller that goes away before any status: DC, as before', async () => {
    const { status, end } = await call({}, MESSAGE, true);
    assert.equal(status, undefined);
    assert.equal(end.flags, 'DC', JSON.stringify({ g: end.grpcStatus, s: end.status, d: end.details }));
    assert.equal(end.grpcStatus, -1);
  });
});
