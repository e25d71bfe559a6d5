/**
 * What a grpc-js caller sees of an answer — its `metadata` event and its status's metadata — is
 * what a raw grpc-js client gets from the same server: the same names in the same order and the
 * same values (the server's `content-type` and `date` too, which Envoy passes on to the app behind
 * a sidecar; the mesh dropped `content-type`), for a head with metadata, trailers, and a
 * trailers-only error. Only `date` may differ (the second each answer was made in), and the head
 * gets what Envoy's router adds to every upstream head, `x-envoy-upstream-service-time`, last.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { type Echo, EchoClient, grpc, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream } from '../helpers/grpc.ts';

type Seen = { head?: [string, unknown][]; status: { code: number; details: string; md: [string, unknown][] } };

const SERVICE_TIME = 'x-envoy-upstream-service-time';

/** A unary call's `metadata` event and `status`, as name/value lists in order (`date` and the service time blanked). */
function call(client: Echo, text: string): Promise<Seen> {
  const list = (md: grpc.Metadata): [string, unknown][] => Object.entries(md.getMap()).map(([k, v]) => [k, k === 'date' || (k === SERVICE_TIME && /^\d+$/.test(String(v))) ? typeof v : v]);
  return new Promise((resolve) => {
    const seen: Partial<Seen> = {};
    const c = client.Unary({ text }, new grpc.Metadata(), {}, () => undefined);
    c.on('metadata', (md: grpc.Metadata) => (seen.head = list(md)));
    c.on('status', (s: grpc.StatusObject) => resolve({ ...seen, status: { code: s.code, details: s.details, md: list(s.metadata) } }));
  });
}

describe('gRPC response metadata: what the caller sees is what a raw grpc-js client sees', () => {
  let up: GrpcUpstream;
  let mesh: Mesh;
  let viaMesh: Echo;
  let direct: Echo;
  before(async () => {
    up = await startGrpcUpstream('a', {
      Unary: (c, cb) => {
        if (c.request.text === 'fail') {
          const md = new grpc.Metadata();
          md.set('x-why', 'gone');
          cb(Object.assign(new Error('nope'), { code: grpc.status.NOT_FOUND, details: 'nope', metadata: md }));
          return;
        }
        const head = new grpc.Metadata();
        head.set('x-head', 'h');
        head.set('x-head-bin', Buffer.from([9, 8]));
        c.sendMetadata(head);
        const trailers = new grpc.Metadata();
        trailers.set('x-trailer', 't');
        cb(null, { text: 'ok', server: 'a', seen: [] }, trailers);
      },
    });
    mesh = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: up.port }])] });
    viaMesh = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    direct = new EchoClient(`127.0.0.1:${up.port}`, grpc.credentials.createInsecure()) as unknown as Echo;
  });
  after(async () => {
    viaMesh.close();
    direct.close();
    await mesh.close();
    await up.close();
  });

  it('a head with metadata, then trailers', async () => {
    const d = await call(direct, 'ok');
    const m = await call(viaMesh, 'ok');
    assert.deepEqual(d.head?.map(([k]) => k), ['content-type', 'x-head', 'x-head-bin', 'date']);
    assert.deepEqual(m, { ...d, head: [...(d.head ?? []), [SERVICE_TIME, 'string']] });
  });

  it('a trailers-only error: its metadata in the status', async () => {
    const d = await call(direct, 'fail');
    const m = await call(viaMesh, 'fail');
    assert.equal(d.status.code, grpc.status.NOT_FOUND);
    assert.deepEqual(
      d.status.md.map(([k]) => k),
      ['content-type', 'x-why', 'date'],
    );
    assert.deepEqual(m, { ...d, status: { ...d.status, md: [...d.status.md, [SERVICE_TIME, 'string']] } });
  });
});
