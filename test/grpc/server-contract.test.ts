/**
 * The grpc-js server behaviour the mesh's server interceptor and listener rely on (grpc-js 1.14;
 * the minor is pinned by grpc-js-contract.test.ts): when each kind of handler starts (the
 * interceptor enters the call's context only around callbacks that run app code), that
 * `grpc-timeout` is taken out of the metadata interceptors see and given by `getDeadline()`,
 * that `createConnectionInjector` exists (`mesh.grpc.bind`), and that a method the server does
 * not serve never reaches an interceptor unless the server has a handler for it — the mesh's
 * stand-in (`mesh.grpc.judgeUnserved`) is found through `_retrieveHandler(path)`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { collect, type Echo, EchoClient, grpc, unary } from '../helpers/grpc.ts';
import { OWN_CONNECTIONS } from '../helpers/grpc-server.ts';

describe('the grpc-js server seam', () => {
  let server: grpc.Server;
  let client: Echo;
  const events: string[] = [];
  const seen: { deadline: unknown; timeoutInMetadata: boolean }[] = [];
  const recorder: grpc.ServerInterceptor = (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (md, go) => {
            seen.push({ deadline: call.getDeadline(), timeoutInMetadata: md.get('grpc-timeout').length > 0 });
            events.push(`${method.path.split('/')[2]}:metadata`);
            go(md);
          },
          onReceiveHalfClose: (go) => {
            events.push('half-close');
            go();
          },
        }),
    });

  before(async () => {
    server = new grpc.Server({ interceptors: [recorder] });
    const mark = (name: string) => events.push(`${name}:handler`);
    server.addService(EchoClient.service, {
      Unary: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        mark('Unary');
        cb(null, { text: call.request.text });
      },
      ServerStream: (call: grpc.ServerWritableStream<unknown, unknown>) => {
        mark('ServerStream');
        call.end();
      },
      ClientStream: (call: grpc.ServerReadableStream<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        mark('ClientStream');
        call.on('data', () => undefined);
        call.on('end', () => cb(null, {}));
      },
      Bidi: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
        mark('Bidi');
        call.on('data', () => undefined);
        call.on('end', () => call.end());
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), OWN_CONNECTIONS) as unknown as Echo;
  });
  after(() => {
    client.close();
    server.forceShutdown();
  });

  it('createConnectionInjector exists (mesh.grpc.bind)', () => {
    assert.equal(typeof server.createConnectionInjector, 'function');
  });

  it('_retrieveHandler(path) gives a registered method’s handler, null for one the server does not serve (mesh.grpc.judgeUnserved)', () => {
    const lookup = (server as unknown as { _retrieveHandler(path: string): { type: string; path: string } | null })._retrieveHandler.bind(server);
    assert.deepEqual({ ...lookup('/meshlet.test.Echo/Bidi'), func: undefined, serialize: undefined, deserialize: undefined }, { type: 'bidi', path: '/meshlet.test.Echo/Bidi', func: undefined, serialize: undefined, deserialize: undefined });
    assert.equal(lookup('/meshlet.test.Echo/Missing'), null);
  });

  const rows: { method: string; call: () => Promise<unknown>; order: string[] }[] = [
    { method: 'Unary', call: () => unary(client, { text: 'x' }), order: ['Unary:metadata', 'half-close', 'Unary:handler'] },
    { method: 'ServerStream', call: () => collect(client.ServerStream({ text: 'x', count: 0 })), order: ['ServerStream:metadata', 'half-close', 'ServerStream:handler'] },
    {
      method: 'ClientStream',
      call: () =>
        new Promise((resolve) => {
          const c = client.ClientStream(new grpc.Metadata(), {}, resolve);
          c.end();
        }),
      order: ['ClientStream:metadata', 'ClientStream:handler', 'half-close'],
    },
    {
      method: 'Bidi',
      call: () => {
        const c = client.Bidi();
        const done = collect(c);
        c.end();
        return done;
      },
      order: ['Bidi:metadata', 'Bidi:handler', 'half-close'],
    },
  ];
  for (const row of rows) {
    it(`${row.method}: the handler starts ${row.order.indexOf(`${row.method}:handler`) === 1 ? 'when the metadata arrives' : 'at the half-close'}`, async () => {
      events.length = 0;
      await row.call();
      assert.deepEqual(events, row.order);
    });
  }

  it('grpc-timeout is not in the metadata an interceptor sees; getDeadline() gives it (ms since the epoch)', async () => {
    seen.length = 0;
    const deadline = Date.now() + 5000;
    await unary(client, { text: 'x' }, { deadline });
    assert.equal(seen[0]?.timeoutInMetadata, false);
    assert.equal(typeof seen[0]?.deadline, 'number');
    assert.ok(Math.abs((seen[0]?.deadline as number) - deadline) < 1000);
  });

  it('a method the server does not serve is answered UNIMPLEMENTED without reaching any interceptor', async () => {
    events.length = 0;
    const generic = new grpc.Client(`127.0.0.1:${(client.getChannel().getTarget().split(':').at(-1) as string)}`, grpc.credentials.createInsecure(), OWN_CONNECTIONS);
    const code = await new Promise<number>((resolve) =>
      generic.makeUnaryRequest('/meshlet.test.Echo/Missing', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (err) => resolve(err?.code ?? 0)),
    );
    generic.close();
    assert.equal(code, grpc.status.UNIMPLEMENTED);
    assert.deepEqual(events, []);
  });
});
