/**
 * The gRPC transport's request flow control against a real grpc-js server that stops reading,
 * compared with a raw grpc-js client on the same server: a caller that writes while its writes
 * are acknowledged (`write()` true, or `'drain'`) stops when the server stops reading, and when
 * the call ends under it — cancelled by the caller, or failed by the server — its writes are not
 * acknowledged inside `call.cancel()` nor before the status reached it (they were: such a caller
 * wrote its whole source within `cancel()`, the event loop blocked; one with no end never
 * returned).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { type Echo, EchoClient, grpc, grpcServiceEntry } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';
/** The caller's source: far more than the connection's flow-control windows take (64 KiB messages). */
const SOURCE = 3000;
const MESSAGE = 'y'.repeat(64 * 1024);

interface Run {
  /** Writes made before the call's status reached the caller. */
  atStatus: number;
  /** Writes made inside call.cancel(). */
  inCancel: number;
  /** Writes made before the call ended (the server stopped reading). */
  beforeEnd: number;
  code: number | undefined;
}

/** A client stream whose caller writes until its writes stop being acknowledged or the call ends; the call is then ended by `end`. */
function pump(client: Echo, end: 'cancel' | 'server', serverStalled: Promise<void>): Promise<Run> {
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    if (end === 'server') md.set('x-fail', '1');
    const run: Run = { atStatus: -1, inCancel: 0, beforeEnd: 0, code: undefined };
    let stopped = false;
    let n = 0;
    const call = client.ClientStream(md, {}, (err) => {
      stopped = true;
      run.atStatus = n;
      run.code = err?.code;
      resolve(run);
    });
    call.on('error', () => undefined);
    const write = (): void => {
      while (!stopped && n < SOURCE) {
        n++;
        if (!call.write({ text: MESSAGE })) {
          call.once('drain', write);
          return;
        }
      }
    };
    write();
    void serverStalled.then(() => {
      run.beforeEnd = n;
      if (end !== 'cancel') return;
      call.cancel();
      run.inCancel = n - run.beforeEnd;
    });
  });
}

describe('gRPC transport: a caller writing under backpressure, the call ending under it (as a grpc-js client)', () => {
  let server: grpc.Server;
  let mesh: Mesh;
  let viaMesh: Echo;
  let direct: Echo;
  /** Resolved when the server has the call and stopped reading it (set per call). */
  let stalled: () => void = () => undefined;
  let fail: (() => void) | undefined;

  before(async () => {
    server = new grpc.Server();
    server.addService(EchoClient.service, {
      Unary: () => undefined,
      ServerStream: () => undefined,
      Bidi: () => undefined,
      ClientStream: (call: grpc.ServerReadableStream<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        // Reads nothing: the client's writes fill the flow-control windows, then wait.
        call.pause();
        fail = call.metadata.get('x-fail').length > 0 ? () => cb({ code: grpc.status.FAILED_PRECONDITION, details: 'not reading' }) : undefined;
        stalled();
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    mesh = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', HOST, 9090, [{ port }])], logger: { warn: () => undefined } });
    viaMesh = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    direct = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Echo;
  });
  after(async () => {
    viaMesh.close();
    direct.close();
    await mesh.close();
    server.forceShutdown();
  });

  /** Resolves once the server has the call and the caller's writes stopped being acknowledged (no write for a few turns). */
  function serverStalled(): Promise<void> {
    return new Promise<void>((resolve) => {
      stalled = () => {
        // The server took the call; the caller's writes fill the windows and stop (HTTP/2 flow control).
        const settle = (left: number): void => void (left === 0 ? resolve() : setImmediate(() => settle(left - 1)));
        settle(20);
      };
    });
  }

  for (const end of ['cancel', 'server'] as const) {
    it(`${end === 'cancel' ? 'call.cancel()' : 'the server failing the call'} while the caller waits to write: no write is acknowledged before the status reaches it`, async () => {
      const runs: Record<string, Run> = {};
      for (const [name, client] of [
        ['grpc-js', direct],
        ['mesh', viaMesh],
      ] as const) {
        const wait = serverStalled();
        if (end === 'server') void wait.then(() => fail?.());
        runs[name] = await pump(client, end, wait);
      }
      const { mesh: m, 'grpc-js': g } = runs as { mesh: Run; 'grpc-js': Run };
      // The server stopped reading: neither caller wrote its whole source.
      assert.ok(g.beforeEnd < SOURCE && m.beforeEnd < SOURCE, `writes before the end: grpc-js ${g.beforeEnd}, mesh ${m.beforeEnd} of ${SOURCE}`);
      assert.equal(m.code, g.code);
      assert.equal(m.code, end === 'cancel' ? grpc.status.CANCELLED : grpc.status.FAILED_PRECONDITION);
      // Nothing written inside cancel(), nor between the end and the status reaching the caller.
      assert.equal(m.inCancel, 0);
      assert.equal(m.atStatus, m.beforeEnd, `mesh: ${m.atStatus - m.beforeEnd} writes acknowledged after the call ended, before its status`);
      assert.equal(g.atStatus, g.beforeEnd);
    });
  }
});
