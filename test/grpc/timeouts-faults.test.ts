/**
 * Deadlines and faults of gRPC calls, on a ManualClock: the call's effective deadline is the
 * soonest of the route timeout, the caller's deadline and the MeshContext's; it reaches the
 * server as grpc-timeout (the server's deadline is what remains), and when it passes the
 * caller gets DEADLINE_EXCEEDED, flag UT. A fault abort answers with its gRPC status (or its
 * HTTP status mapped as gRPC maps it), flag FI, without sending anything; a fault delay holds
 * the call on the mesh clock, flag DI.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh, ManualClock, seededRandom, withDeadline } from '../../src/index.ts';
import { virtualService } from '../helpers/upstreams.ts';
import { closedAfter, collect, type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';

/** Holds unary calls until the test answers them; resolves `arrived` as each reaches the server. */
function holder() {
  const calls: { call: grpc.ServerUnaryCall<{ text: string }, unknown>; cb: grpc.sendUnaryData<unknown> }[] = [];
  let wake: (() => void) | undefined;
  return {
    calls,
    behaviour: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      calls.push({ call, cb });
      wake?.();
    },
    /** Resolves once `n` calls reached the server. */
    arrived(n: number): Promise<void> {
      if (calls.length >= n) return Promise.resolve();
      return new Promise((r) => {
        wake = () => {
          if (calls.length >= n) r();
        };
      });
    },
  };
}

describe('gRPC deadlines and faults through the mesh', () => {
  const { ups, meshes, clients } = closedAfter();

  async function setup(route: Record<string, unknown>) {
    const up = await startGrpcUpstream('a');
    ups.push(up);
    const clock = new ManualClock(1_000_000);
    const mesh = await createMesh({
      service: 'client',
      clock,
      random: seededRandom(5),
      config: [grpcServiceEntry('echo', HOST, 9090, [{ port: up.port }]), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 0 }, ...route }])],
    });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    return { up, client, clock };
  }

  /** The server's deadline for a held call, as ms from now (wall clock, as grpc-js keeps it). */
  const remaining = (h: ReturnType<typeof holder>, i = 0): number => {
    const d = h.calls[i]?.call.getDeadline();
    return (d instanceof Date ? d.getTime() : (d as number)) - Date.now();
  };

  const deadlineRows: [name: string, routeTimeout: string, callerMs: number | undefined, contextMs: number | undefined, advanceMs: number][] = [
    ['route timeout (2s) sooner than the caller deadline (60s)', '2s', 60_000, undefined, 2000],
    ['caller deadline (3s) sooner than the route timeout (30s)', '30s', 3000, undefined, 3000],
    ['MeshContext deadline (4s) sooner than both', '30s', 60_000, 4000, 4000],
  ];
  for (const [name, timeout, callerMs, contextMs, advanceMs] of deadlineRows) {
    it(`${name}: the server's deadline is what remains of it; when it passes, DEADLINE_EXCEEDED, UT`, async () => {
      const { up, client, clock } = await setup({ timeout });
      const h = holder();
      up.behaviour.Unary = h.behaviour as never;
      const send = () => unary(client, { text: 't' }, callerMs === undefined ? {} : { deadline: Date.now() + callerMs });
      const pending = contextMs === undefined ? send() : withDeadline(contextMs, send);
      await h.arrived(1);
      const left = remaining(h);
      assert.ok(left > 0 && left <= advanceMs, `server deadline ${left} ms from now, want at most ${advanceMs}`);
      const cancelled = new Promise<void>((r) => h.calls[0]?.call.once('cancelled', () => r()));
      clock.advance(advanceMs);
      const r = await pending;
      assert.equal(r.error?.code, grpc.status.DEADLINE_EXCEEDED);
      assert.match(r.error?.details ?? '', /^upstream request timeout/);
      assert.equal(r.error?.metadata.get('x-meshlet-response-flags')[0], 'UT');
      // The attempt on the wire is cancelled, so the server stops too.
      await cancelled;
    });
  }

  it('a route timeout that has not passed leaves the call alone (the answer arrives)', async () => {
    const { up, client, clock } = await setup({ timeout: '2s' });
    const h = holder();
    up.behaviour.Unary = h.behaviour as never;
    const pending = unary(client, { text: 'ok' });
    await h.arrived(1);
    clock.advance(1999);
    h.calls[0]?.cb(null, { text: 'in time', server: 'a', seen: [] });
    const r = await pending;
    assert.equal(r.reply?.text, 'in time');
  });

  const abortRows: [name: string, abort: Record<string, unknown>, code: grpc.status][] = [
    ['grpcStatus UNAVAILABLE', { grpcStatus: 'UNAVAILABLE' }, grpc.status.UNAVAILABLE],
    ['grpcStatus RESOURCE_EXHAUSTED', { grpcStatus: 'RESOURCE_EXHAUSTED' }, grpc.status.RESOURCE_EXHAUSTED],
    ['httpStatus 503 (gRPC maps it to UNAVAILABLE)', { httpStatus: 503 }, grpc.status.UNAVAILABLE],
    ['httpStatus 403 (PERMISSION_DENIED)', { httpStatus: 403 }, grpc.status.PERMISSION_DENIED],
    ['httpStatus 404 (UNIMPLEMENTED)', { httpStatus: 404 }, grpc.status.UNIMPLEMENTED],
  ];
  for (const [name, abort, code] of abortRows) {
    it(`fault abort ${name}: that status, flag FI, nothing sent`, async () => {
      const { up, client } = await setup({ fault: { abort: { ...abort, percentage: { value: 100 } } } });
      const r = await unary(client, { text: 'f' });
      assert.equal(r.error?.code, code);
      assert.equal(r.error?.details, 'fault filter abort');
      assert.equal(r.error?.metadata.get('x-meshlet-response-flags')[0], 'FI');
      assert.equal(up.hits, 0);
    });
  }

  it('fault abort on a server-streaming call: the status, no message', async () => {
    const { up, client } = await setup({ fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } } });
    const r = await collect(client.ServerStream({ text: 's', count: 3 }));
    assert.equal(r.status.code, grpc.status.UNAVAILABLE);
    assert.equal(r.messages.length, 0);
    assert.equal(up.hits, 0);
  });

  it('fault abort at 0%: the call goes through', async () => {
    const { up, client } = await setup({ fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 0 } } } });
    assert.equal((await unary(client, { text: 'z' })).reply?.text, 'z');
    assert.equal(up.hits, 1);
  });

  it('fault delay: the call waits on the mesh clock, then goes; flag DI in the response metadata', async () => {
    const { up, client, clock } = await setup({ fault: { delay: { fixedDelay: '5s', percentage: { value: 100 } } } });
    const pending = unary(client, { text: 'late' });
    await new Promise((r) => setImmediate(r));
    clock.advance(4999);
    await new Promise((r) => setImmediate(r));
    assert.equal(up.hits, 0, 'still delayed');
    clock.advance(1);
    const r = await pending;
    assert.equal(r.reply?.text, 'late');
    assert.equal(up.hits, 1);
    assert.equal(r.metadata?.get('x-meshlet-response-flags')[0], 'DI');
  });

  it("fault delay longer than the caller's deadline: the call ends at the deadline (DEADLINE_EXCEEDED, DI and UT), nothing sent", async () => {
    const { up, client, clock } = await setup({ fault: { delay: { fixedDelay: '5s', percentage: { value: 100 } } } });
    let settled = false;
    const pending = unary(client, { text: 'late' }, { deadline: Date.now() + 1000 }).finally(() => {
      settled = true;
    });
    await new Promise((r) => setImmediate(r));
    // (The deadline is taken over onto the mesh clock when the call starts, a few ms after Date.now() above.)
    clock.advance(900);
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, 'waits until the deadline');
    clock.advance(100);
    const r = await pending;
    assert.equal(r.error?.code, grpc.status.DEADLINE_EXCEEDED);
    assert.match(r.error?.details ?? '', /^upstream request timeout/);
    assert.deepEqual(r.error?.metadata.get('x-meshlet-response-flags')[0]?.toString().split(',').sort(), ['DI', 'UT']);
    assert.equal(up.hits, 0);
  });

  it('fault delay inside a MeshContext deadline (withDeadline) that ends first: DEADLINE_EXCEEDED at the deadline', async () => {
    const { up, client, clock } = await setup({ fault: { delay: { fixedDelay: '5s', percentage: { value: 100 } } } });
    const pending = withDeadline(50, () => unary(client, { text: 'late' }));
    await new Promise((r) => setTimeout(r, 80));
    // The delay waits on the mesh clock for what remained of the context deadline (50 ms), which has passed by then in real time too.
    clock.advance(50);
    const r = await pending;
    assert.equal(r.error?.code, grpc.status.DEADLINE_EXCEEDED, r.error?.details);
    assert.equal(up.hits, 0);
  });
  // grpc-js outputs a status other than OK at once, unread messages or not (subchannel-call.ts
  // maybeOutputStatus): a caller that stopped reading a stream still ends at its deadline.
  for (const kind of ['Bidi', 'ServerStream'] as const) {
    it(`a ${kind} call whose caller does not read the messages that came still ends at its deadline (DEADLINE_EXCEEDED, cancelled on the wire)`, async () => {
      const { up, client, clock } = await setup({});
      let serverCall: grpc.ServerWritableStream<unknown, unknown> | undefined;
      let arrived!: () => void;
      const inServer = new Promise<void>((r) => (arrived = r));
      up.behaviour[kind] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
        serverCall = call;
        call.write({ text: 'one', server: 'a', seen: [] });
        call.write({ text: 'two', server: 'a', seen: [] });
        arrived();
      }) as never;
      const opts = { deadline: Date.now() + 3000 };
      const stream = kind === 'Bidi' ? client.Bidi(new grpc.Metadata(), opts) : client.ServerStream({ text: 's', count: 0 }, new grpc.Metadata(), opts);
      if (kind === 'Bidi') (stream as grpc.ClientDuplexStream<unknown, unknown>).write({ text: 'hi' });
      // No 'data' listener: the caller reads nothing.
      const ended = new Promise<grpc.ServiceError>((r) => stream.on('error', r));
      await inServer;
      const cancelled = new Promise<void>((r) => serverCall?.once('cancelled', () => r()));
      // Let the messages reach the client before the deadline passes.
      await new Promise((r) => setTimeout(r, 50));
      clock.advance(3000);
      const err = await ended;
      assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
      assert.match(err.details, /^upstream request timeout/);
      await cancelled;
    });
  }
});
