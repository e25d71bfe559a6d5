/**
 * VirtualService `mirror` on every gRPC call type: the mirror gets the whole request stream —
 * every request message, in order, then the half-close — once the primary call has sent it;
 * the mirror's responses are thrown away and its failures never reach the caller; a request
 * stream larger than the replay buffer is not mirrored (counted as dropped, as for HTTP). Real
 * grpc-js servers on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, describe, it } from 'node:test';
import { createMesh, type Mesh, type MeshOptions, seededRandom } from '../../src/index.ts';
import { destinationRule, virtualService } from '../helpers/upstreams.ts';
import { collect, type Echo, EchoClient, type EchoRequest, grpc, grpcServiceEntry, startGrpcUpstream, status } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';

/** What the mirror saw of one call: its method, its request messages and whether the half-close came. */
interface Seen {
  readonly method: string;
  readonly texts: string[];
  ended: boolean;
}

describe('gRPC mirroring: the whole request stream is copied', () => {
  const open: { close(): unknown }[] = [];
  after(async () => {
    for (const o of open.reverse()) await o.close();
  });

  async function setup(o: Partial<MeshOptions> = {}) {
    const primary = await startGrpcUpstream('primary');
    const mirror = await startGrpcUpstream('mirror');
    open.push(primary, mirror);
    const mesh: Mesh = await createMesh({
      service: 'client',
      random: seededRandom(4),
      config: [
        grpcServiceEntry('echo', HOST, 9090, [
          { port: primary.port, labels: { version: 'v1' } },
          { port: mirror.port, labels: { version: 'v2' } },
        ]),
        destinationRule('echo', 'echo', { subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }),
        virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo', subset: 'v1' } }], retries: { attempts: 0 }, mirror: { host: 'echo', subset: 'v2' }, mirrorPercentage: { value: 100 } }]),
      ],
      ...o,
    });
    open.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    open.push(client);
    // The mirror records what it receives and answers (its answers must never reach the caller).
    const seen: Seen[] = [];
    let wake: (() => void) | undefined;
    const record = (method: string, call: grpc.ServerReadableStream<EchoRequest, unknown> | grpc.ServerDuplexStream<EchoRequest, unknown>): Seen => {
      const s: Seen = { method, texts: [], ended: false };
      seen.push(s);
      call.on('data', (m: EchoRequest) => s.texts.push(m.text));
      call.on('end', () => {
        s.ended = true;
        wake?.();
      });
      return s;
    };
    mirror.behaviour.ClientStream = (call, cb) => {
      const s = record('ClientStream', call);
      call.on('end', () => cb(null, { text: `mirror:${s.texts.join(',')}`, server: 'mirror', seen: [] }));
    };
    mirror.behaviour.Bidi = (call) => {
      record('Bidi', call);
      call.on('data', (m: EchoRequest) => call.write({ text: `mirror:${m.text}`, server: 'mirror', seen: [] }));
      call.on('end', () => call.end());
    };
    mirror.behaviour.ServerStream = (call) => {
      seen.push({ method: 'ServerStream', texts: [call.request.text], ended: true });
      wake?.();
      call.write({ text: 'mirror', server: 'mirror', seen: [] });
      call.end();
    };
    // Copies the mesh drops instead of sending (a test waiting for the mirror fails on one).
    const drops: string[] = [];
    const onDrop = (m: unknown) => {
      drops.push((m as { reason: string }).reason);
      wake?.();
    };
    subscribe('meshlet:mirror:dropped', onDrop);
    open.push({ close: () => unsubscribe('meshlet:mirror:dropped', onDrop) });
    /** Resolves once the mirror saw `n` calls end; fails if the mesh dropped a copy instead. */
    const mirrored = (n: number) =>
      new Promise<Seen[]>((resolve, reject) => {
        const check = () => {
          if (drops.length > 0) reject(new Error(`the copy was dropped: ${drops.join(', ')}`));
          else if (seen.filter((s) => s.ended).length >= n) resolve(seen);
        };
        wake = check;
        check();
      });
    return { mesh, client, primary, mirror, seen, mirrored };
  }

  it('client streaming: the mirror gets every message in order and the half-close; the caller gets the primary’s reply', async () => {
    const { client, primary, mirrored } = await setup();
    const reply = await new Promise<{ text: string; server: string } | undefined>((resolve) => {
      const call = client.ClientStream(new grpc.Metadata(), {}, (_e, r) => resolve(r));
      for (const t of ['a', 'b', 'c']) call.write({ text: t });
      call.end();
    });
    assert.deepEqual({ text: reply?.text, server: reply?.server }, { text: 'a,b,c', server: 'primary' });
    const [m] = await mirrored(1);
    assert.deepEqual(m, { method: 'ClientStream', texts: ['a', 'b', 'c'], ended: true });
    assert.equal(primary.hits, 1);
  });

  it('bidi: the mirror gets the request stream; only the primary’s responses reach the caller', async () => {
    const { client, mirrored } = await setup();
    const call = client.Bidi();
    const done = collect(call);
    call.write({ text: 'x' });
    call.write({ text: 'y' });
    call.end();
    const r = await done;
    assert.equal(r.status.code, grpc.status.OK);
    assert.deepEqual(
      r.messages.map((m) => `${m.server}:${m.text}`),
      ['primary:x', 'primary:y'],
    );
    const [m] = await mirrored(1);
    assert.deepEqual(m, { method: 'Bidi', texts: ['x', 'y'], ended: true });
  });

  it('client streaming with no message: the mirror gets a call with no message', async () => {
    const { client, mirrored } = await setup();
    await new Promise((resolve) => client.ClientStream(new grpc.Metadata(), {}, resolve).end());
    const [m] = await mirrored(1);
    assert.deepEqual(m, { method: 'ClientStream', texts: [], ended: true });
  });

  it('server streaming (one request message) is mirrored; the caller gets the primary’s stream', async () => {
    const { client, mirrored } = await setup();
    const r = await collect(client.ServerStream({ text: 's', count: 2 }));
    assert.deepEqual(
      r.messages.map((m) => m.server),
      ['primary', 'primary'],
    );
    const [m] = await mirrored(1);
    assert.deepEqual(m, { method: 'ServerStream', texts: ['s'], ended: true });
  });

  it("the copy carries the call's deadline (grpc-timeout), as Envoy's shadow copies the request's headers", async () => {
    const { client, primary, mirror } = await setup();
    const deadlines: Record<string, number> = {};
    const capture = (who: string) => (call: grpc.ServerWritableStream<EchoRequest, unknown>) => {
      const d = call.getDeadline();
      deadlines[who] = (d instanceof Date ? d.getTime() : Number(d)) - Date.now();
      call.write({ text: who, server: who, seen: [] });
      call.end();
    };
    primary.behaviour.ServerStream = capture('primary') as never;
    mirror.behaviour.ServerStream = capture('mirror') as never;
    const got = await collect(client.ServerStream({ text: 'x' }, new grpc.Metadata(), { deadline: Date.now() + 30_000 }));
    assert.equal(got.error, undefined);
    for (let i = 0; i < 50 && deadlines.mirror === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(deadlines.primary !== undefined && deadlines.primary > 20_000 && deadlines.primary <= 30_000, `primary ${deadlines.primary}`);
    assert.ok(deadlines.mirror !== undefined && deadlines.mirror > 20_000 && deadlines.mirror <= 30_000, `mirror ${deadlines.mirror}`);
  });

  it('a mirror that fails never reaches the caller', async () => {
    const { client, mirror, mesh } = await setup();
    let failed!: () => void;
    const mirrorFailed = new Promise<void>((r) => (failed = r));
    mirror.behaviour.ClientStream = (call, cb) => {
      call.on('data', () => undefined);
      call.on('end', () => {
        cb(status(grpc.status.INTERNAL, 'mirror broke'));
        failed();
      });
    };
    const reply = await new Promise<{ err: grpc.ServiceError | null; server?: string }>((resolve) => {
      const call = client.ClientStream(new grpc.Metadata(), {}, (err, r) => resolve({ err, server: r?.server }));
      call.write({ text: 'a' });
      call.write({ text: 'b' });
      call.end();
    });
    assert.equal(reply.err, null);
    assert.equal(reply.server, 'primary');
    await mirrorFailed;
    assert.equal(mesh.outbound.mirrorStats.sent, 1);
  });

  it('a request stream larger than the replay buffer is not mirrored (meshlet:mirror:dropped, body-too-large); the call is served', async () => {
    const { client, seen, mesh } = await setup({ retryBufferBytes: 64 });
    const drops: string[] = [];
    const onDrop = (m: unknown) => drops.push((m as { reason: string }).reason);
    subscribe('meshlet:mirror:dropped', onDrop);
    try {
      const reply = await new Promise<string | undefined>((resolve) => {
        const call = client.ClientStream(new grpc.Metadata(), {}, (_e, r) => resolve(r?.server));
        for (let i = 0; i < 8; i++) call.write({ text: `message-${i}-${'x'.repeat(16)}` });
        call.end();
      });
      assert.equal(reply, 'primary');
      for (let i = 0; i < 50 && drops.length === 0; i++) await new Promise((r) => setImmediate(r));
      assert.deepEqual(drops, ['body-too-large']);
      assert.equal(seen.length, 0);
      assert.equal(mesh.outbound.mirrorStats.sent, 0);
    } finally {
      unsubscribe('meshlet:mirror:dropped', onDrop);
    }
  });
});
