/**
 * Retries of gRPC calls are the mesh's, decided by the same retry layer as HTTP calls: on the
 * gRPC statuses `retryOn` names (`cancelled`, `deadline-exceeded`, `internal`,
 * `resource-exhausted`, `unavailable`) — trailers-only answers, decided at the head as Envoy
 * does —, on connect failures and resets, with Istio's default policy when the route has none;
 * grpc-js's own retries are off, so a policy never doubles. A streaming call is retried only
 * before its response starts, with every request message replayed while they fit the replay
 * buffer.
 */
import assert from 'node:assert/strict';
import { constants as h2, createServer as createH2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { createMesh, seededRandom } from '../../src/index.ts';
import { deadPort, virtualService } from '../helpers/upstreams.ts';
import { closedAfter, collect, type Echo, EchoClient, grpc, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, status, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';

describe('gRPC retries through the mesh', () => {
  const { ups, meshes, clients } = closedAfter();

  async function setup(http: unknown[] | undefined, endpoints?: { port: number }[], o: { retryBufferBytes?: number } = {}) {
    const up = await startGrpcUpstream('a');
    ups.push(up);
    const config = [grpcServiceEntry('echo', HOST, 9090, endpoints ?? [{ port: up.port }])];
    if (http !== undefined) config.push(virtualService('echo', ['echo'], http) as never);
    const mesh = await createMesh({ service: 'client', random: seededRandom(3), config, ...o });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    return { up, client, mesh };
  }

  /** Fails the first call with `code` (trailers-only), answers the rest. */
  const failFirst = (code: grpc.status) => (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<never>, hit: number) => {
    if (hit === 1) cb(status(code, 'first fails'));
    else cb(null, { text: call.request.text, server: 'a', seen: [] } as never);
  };

  const rows: [retryOn: string, code: grpc.status, retried: boolean][] = [
    ['cancelled', grpc.status.CANCELLED, true],
    ['deadline-exceeded', grpc.status.DEADLINE_EXCEEDED, true],
    ['internal', grpc.status.INTERNAL, true],
    ['resource-exhausted', grpc.status.RESOURCE_EXHAUSTED, true],
    ['unavailable', grpc.status.UNAVAILABLE, true],
    ['unavailable', grpc.status.INTERNAL, false],
    ['internal', grpc.status.UNAVAILABLE, false],
    ['resource-exhausted', grpc.status.NOT_FOUND, false],
    // An HTTP status in retryOn is an HTTP rule: a gRPC answer is HTTP 200, whatever its grpc-status (Envoy).
    ['503', grpc.status.UNAVAILABLE, false],
  ];
  for (const [retryOn, code, retried] of rows) {
    it(`retryOn ${retryOn}, first answer ${grpc.status[code]}: ${retried ? 'retried' : 'not retried'}`, async () => {
      const { up, client } = await setup([{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 2, retryOn } }]);
      up.behaviour.Unary = failFirst(code) as never;
      const r = await unary(client, { text: 'r' });
      assert.equal(up.hits, retried ? 2 : 1);
      if (retried) assert.equal(r.reply?.text, 'r');
      else assert.equal(r.error?.code, code);
    });
  }

  it("Istio's default policy (no retries on the route): UNAVAILABLE is retried once", async () => {
    const { up, client } = await setup(undefined);
    up.behaviour.Unary = failFirst(grpc.status.UNAVAILABLE) as never;
    const r = await unary(client, { text: 'd' });
    assert.equal(r.reply?.text, 'd');
    assert.equal(up.hits, 2);
    // Each attempt says which it is (x-envoy-attempt-count, as Istio's outbound routes send it).
    assert.deepEqual(
      up.seen.map((s) => s.metadata['x-envoy-attempt-count']),
      ['1', '2'],
    );
  });

  it('retries exhausted: the last status, flagged URX in the initial metadata of a trailers-only answer', async () => {
    const { up, client } = await setup([{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 3, retryOn: 'unavailable' } }]);
    up.behaviour.Unary = (_c, cb) => cb(status(grpc.status.UNAVAILABLE, 'down'));
    const r = await unary(client, { text: 'x' });
    assert.equal(up.hits, 4);
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(r.error?.details, 'down');
    assert.equal(r.error?.metadata.get('x-meshlet-response-flags')[0], 'URX');
  });

  it("a server's grpc-retry-pushback-ms does not stop the route's retries (-1: gRFC A6's 'do not retry'), as Envoy's router does not read it", async () => {
    const { up, client } = await setup([{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 2, retryOn: 'unavailable' } }]);
    up.behaviour.Unary = (call, cb, hit) => {
      if (hit === 1) cb(status(grpc.status.UNAVAILABLE, 'go away', { 'grpc-retry-pushback-ms': '-1' }));
      else cb(null, { text: call.request.text, server: 'a', seen: [] } as never);
    };
    const r = await unary(client, { text: 'p' });
    assert.equal(r.reply?.text, 'p');
    assert.equal(up.hits, 2);
  });

  it('connect failure: retried on the next endpoint (default policy skips the host it tried)', async () => {
    const dead = await deadPort();
    const up = await startGrpcUpstream('live');
    ups.push(up);
    const { client } = await setup(undefined, [{ port: dead }, { port: up.port }]);
    for (let i = 0; i < 4; i++) assert.equal((await unary(client, { text: 'c' })).reply?.server, 'live');
  });

  it('connect failure on every endpoint: UNAVAILABLE, flags URX,UF, Envoy’s text', async () => {
    const dead = await deadPort();
    const { client } = await setup([{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 1, retryOn: 'connect-failure' } }], [{ port: dead }]);
    const r = await unary(client, { text: 'c' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.match(r.error?.details ?? '', /^upstream connect error or disconnect\/reset before headers\. retried and the latest reset reason: remote connection failure/);
    assert.equal(r.error?.metadata.get('x-meshlet-response-flags')[0], 'URX,UF');
  });

  it('client streaming: a retry replays every request message', async () => {
    const { up, client } = await setup([{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 2, retryOn: 'unavailable' } }]);
    const bodies: string[][] = [];
    up.behaviour.ClientStream = (call, cb, hit) => {
      const texts: string[] = [];
      call.on('data', (m: { text: string }) => texts.push(m.text));
      call.on('end', () => {
        bodies.push(texts);
        if (hit === 1) cb(status(grpc.status.UNAVAILABLE, 'again'));
        else cb(null, { text: texts.join(','), server: 'a', seen: texts });
      });
    };
    const reply = await new Promise<{ text: string }>((resolve, reject) => {
      const call = client.ClientStream(new grpc.Metadata(), {}, (err, res) => (err ? reject(err) : resolve(res as { text: string })));
      for (const t of ['1', '2', '3']) call.write({ text: t });
      call.end();
    });
    assert.equal(reply.text, '1,2,3');
    assert.deepEqual(bodies, [['1', '2', '3'], ['1', '2', '3']]);
  });

  it('client streaming past the replay buffer: not retried (the first status reaches the caller)', async () => {
    const { up, client } = await setup([{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 2, retryOn: 'unavailable' } }], undefined, { retryBufferBytes: 16 });
    up.behaviour.ClientStream = (call, cb) => {
      call.on('data', () => undefined);
      call.on('end', () => cb(status(grpc.status.UNAVAILABLE, 'once')));
    };
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      const call = client.ClientStream(new grpc.Metadata(), {}, (e) => resolve(e as grpc.ServiceError));
      for (const t of ['0123456789', 'abcdefghij', 'klmnopqrst']) call.write({ text: t });
      call.end();
    });
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    assert.equal(up.hits, 1);
  });

  it('server streaming: a failure after the first response message is final (never retried)', async () => {
    const { up, client } = await setup([{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 3, retryOn: 'unavailable,internal' } }]);
    up.behaviour.ServerStream = (call) => {
      call.write({ text: 'first', server: 'a', seen: [] });
      call.emit('error', status(grpc.status.UNAVAILABLE, 'broke mid-stream'));
    };
    const r = await collect(client.ServerStream({ text: 's', count: 3 }));
    assert.deepEqual(r.messages.map((m) => m.text), ['first']);
    assert.equal(r.status.code, grpc.status.UNAVAILABLE);
    assert.equal(up.hits, 1);
  });

  it('bidi: a trailers-only UNAVAILABLE before any response is retried with the messages sent so far', async () => {
    const { up, client } = await setup([{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 2, retryOn: 'unavailable' } }]);
    const seen: string[][] = [];
    up.behaviour.Bidi = (call, hit) => {
      const texts: string[] = [];
      seen.push(texts);
      call.on('data', (m: { text: string }) => {
        texts.push(m.text);
        if (hit === 1) call.emit('error', status(grpc.status.UNAVAILABLE, 'not yet'));
        else call.write({ text: m.text, server: 'a', seen: [] });
      });
      call.on('end', () => call.end());
    };
    const call = client.Bidi();
    const done = collect(call);
    call.write({ text: 'one' });
    call.end();
    const r = await done;
    assert.equal(r.status.code, grpc.status.OK);
    assert.deepEqual(r.messages.map((m) => m.text), ['one']);
    assert.deepEqual(seen, [['one'], ['one']]);
  });
  it('a stream the server resets (RST_STREAM INTERNAL_ERROR): a remote reset, UR and Envoy\'s text; retried on `reset`, not by the default policy', async () => {
    let streams = 0;
    const resetter = createH2Server();
    resetter.on('stream', (stream) => {
      streams++;
      stream.on('error', () => undefined); // the server's own side of the reset
      stream.close(h2.NGHTTP2_INTERNAL_ERROR);
    });
    await new Promise<void>((r) => resetter.listen(0, '127.0.0.1', r));
    const port = (resetter.address() as AddressInfo).port;
    ups.push({ close: () => new Promise<void>((r) => resetter.close(() => r())) } as GrpcUpstream);

    const { client: byDefault } = await setup(undefined, [{ port }]);
    const d = await unary(byDefault, { text: 'x' });
    assert.equal(streams, 1, "Istio's default retryOn has no `reset`");
    assert.equal(d.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(d.error?.details, 'upstream connect error or disconnect/reset before headers. reset reason: remote reset');
    assert.equal(d.error?.metadata.get('x-meshlet-response-flags')[0], 'UR');

    const { client: onReset } = await setup([{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 2, retryOn: 'reset' } }], [{ port }]);
    const r = await unary(onReset, { text: 'y' });
    assert.equal(streams, 4);
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(r.error?.details, 'upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote reset');
    assert.equal(r.error?.metadata.get('x-meshlet-response-flags')[0], 'URX,UR');
  });
});
