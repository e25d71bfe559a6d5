/**
 * A unary call through the mesh drives the event loop and HTTP/2 no harder than a raw grpc-js
 * client's call does: no more promises, microtasks, ticks, immediates, timers or HTTP/2 streams
 * per call, and no more socket reads and writes. The mesh's attempt opens its HTTP/2 stream
 * synchronously (the request's HEADERS, its message and the half-close leave in one write) and
 * hands the answer back as its stream delivers it (no turn of its own); an extra turn, a deferred
 * start (HEADERS and DATA flushed apart: a write more on the client, a read more on the server)
 * or a timer per call shows here as one more of its kind per call. (Attaching the body a setImmediate later fails
 * it: Immediate 5 against 4, writes 4 against 3, reads 4 against 3.)
 *
 * Counted over sequential calls (c=1) against a real grpc-js server in this process (its share
 * is the same for both clients: the same request on the wire): async resources with
 * async_hooks, read and write system calls from /proc/self/io (Linux; left out elsewhere).
 */
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { type Echo, EchoClient, grpc, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';

/** Kinds of async resources a call's turns and writes show up as. */
const KINDS = ['PROMISE', 'Microtask', 'TickObject', 'Immediate', 'Timeout', 'HTTP2STREAM', 'WRITEWRAP'] as const;
const CALLS = 100;

/** This process's read and write system calls so far (Linux: /proc/self/io), or undefined. */
function syscalls(): { reads: number; writes: number } | undefined {
  try {
    const io = readFileSync('/proc/self/io', 'utf8');
    const n = (k: string) => Number(new RegExp(`^${k}: (\\d+)$`, 'm').exec(io)?.[1]);
    return { reads: n('syscr'), writes: n('syscw') };
  } catch {
    return undefined;
  }
}

/** Async resources made per call over `CALLS` sequential unary calls of `client`, by kind. */
async function perCall(client: Echo): Promise<Record<string, number>> {
  const counts = new Map<string, number>();
  let on = false;
  const hook = createHook({
    init(_id, type) {
      if (on) counts.set(type, (counts.get(type) ?? 0) + 1);
    },
  });
  hook.enable();
  let s0: ReturnType<typeof syscalls>;
  let s1: ReturnType<typeof syscalls>;
  try {
    on = true;
    s0 = syscalls();
    for (let i = 0; i < CALLS; i++) {
      const r = await unary(client, { text: 'x' });
      assert.equal(r.error, undefined);
    }
    s1 = syscalls();
    on = false;
  } finally {
    hook.disable();
  }
  const out: Record<string, number> = Object.fromEntries(KINDS.map((k) => [k, (counts.get(k) ?? 0) / CALLS]));
  if (s0 !== undefined && s1 !== undefined) {
    out.reads = (s1.reads - s0.reads) / CALLS;
    out.writes = (s1.writes - s0.writes) / CALLS;
  }
  return out;
}

describe('gRPC client through the mesh: event-loop and wire parity with a raw grpc-js client', () => {
  let up: GrpcUpstream;
  let mesh: Mesh;
  let meshClient: Echo;
  let rawClient: Echo;
  before(async () => {
    up = await startGrpcUpstream('a');
    mesh = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: up.port }])] });
    meshClient = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    rawClient = new EchoClient(`127.0.0.1:${up.port}`, grpc.credentials.createInsecure()) as unknown as Echo;
    // Connected, and past first-call work (module loading, route and channel set-up).
    for (let i = 0; i < 20; i++) {
      await unary(meshClient, { text: 'warm' });
      await unary(rawClient, { text: 'warm' });
    }
  });
  after(async () => {
    meshClient.close();
    rawClient.close();
    await mesh.close();
    await up.close();
  });

  it('a unary call makes no more promises, ticks, immediates, timers, streams, socket reads or writes than a raw call', async () => {
    const raw = await perCall(rawClient);
    const viaMesh = await perCall(meshClient);
    // The server's streams, reads and writes are counted too (it runs in this process): the same for both.
    assert.ok((raw.HTTP2STREAM as number) > 0, `raw: ${JSON.stringify(raw)}`);
    // A quarter of a resource per call is slack for what is not the call's (a background timer firing); an extra turn per call is 1.
    if (process.env.SHOW_COUNTS !== undefined) console.log({ raw, viaMesh });
    // Socket reads depend on how the kernel happens to coalesce the server's two writes per call
    // (timing), so they get half a call of slack; a deferred start is a whole write and read more.
    for (const k of [...KINDS, 'reads', 'writes']) assert.ok((viaMesh[k] as number) <= (raw[k] as number) + (k === 'reads' || k === 'writes' ? 0.5 : 0.25), `${k} per call: mesh ${viaMesh[k]} > raw ${raw[k]} (mesh ${JSON.stringify(viaMesh)}, raw ${JSON.stringify(raw)})`);
  });
});
