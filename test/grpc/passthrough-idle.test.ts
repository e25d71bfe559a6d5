/**
 * gRPC calls to hosts outside the mesh (ALLOW_ANY passthrough) get a channel per address the
 * caller named. A long-running process that calls many addresses (pod IPs, per-tenant hosts) must
 * not keep every one of them: as Envoy removes an ORIGINAL_DST cluster's (Istio's
 * PassthroughCluster's) hosts left unused for its cleanup interval (5 s) and drains their
 * connections, an address's channel is closed once no call has used it for that long — never
 * under a call still running. Seen on the upstream's side through a TCP relay that counts
 * connections; time is the mesh's ManualClock.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { createMesh, ManualClock } from '../../src/index.ts';
import { type Echo, EchoClient, type GrpcUpstream, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { until } from '../helpers/until.ts';

/** A TCP relay to `port` that counts the connections it accepted and those still open. */
interface Relay {
  port: number;
  accepted: number;
  readonly open: Set<net.Socket>;
  close(): Promise<void>;
}

async function relay(port: number): Promise<Relay> {
  const r: Relay = { port: 0, accepted: 0, open: new Set<net.Socket>(), close: async () => undefined };
  const server = net.createServer((down) => {
    r.accepted++;
    r.open.add(down);
    const up = net.connect(port, '127.0.0.1');
    down.pipe(up).pipe(down);
    const end = () => {
      r.open.delete(down);
      down.destroy();
      up.destroy();
    };
    down.on('close', end).on('error', end);
    up.on('close', end).on('error', end);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  r.port = (server.address() as net.AddressInfo).port;
  r.close = () =>
    new Promise<void>((ok) => {
      for (const s of r.open) s.destroy();
      server.close(() => ok());
    });
  return r;
}

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('gRPC passthrough channels are closed once unused (Envoy ORIGINAL_DST cleanup)', () => {
  const closers: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('an address unused for the cleanup interval loses its connection; one in use keeps it; the next call connects again', async () => {
    const up: GrpcUpstream = await startGrpcUpstream('outside');
    closers.push(() => up.close());
    const tcp = await relay(up.port);
    closers.push(() => tcp.close());
    const clock = new ManualClock(0);
    const mesh = await createMesh({ service: 'client', clock, config: [] });
    closers.push(() => mesh.close());
    const client = mesh.grpc.client(EchoClient, `127.0.0.1:${tcp.port}`) as unknown as Echo;
    closers.push(() => client.close());

    assert.equal((await unary(client, { text: 'a' })).reply?.server, 'outside');
    assert.equal((await unary(client, { text: 'b' })).reply?.server, 'outside');
    assert.equal(tcp.accepted, 1, 'calls to one address share its connection');

    // A call that stays in flight across several cleanup intervals keeps its connection.
    let release!: () => void;
    let arrived!: () => void;
    const there = new Promise<void>((r) => (arrived = r));
    up.behaviour.Unary = (call, cb) => {
      release = () => cb(null, { text: call.request.text, server: 'outside', seen: [] });
      arrived();
    };
    const held = unary(client, { text: 'held' });
    await there;
    clock.advance(20_000);
    await turns(5);
    assert.equal(tcp.open.size, 1, 'the connection of a call in flight stays open');
    release();
    assert.equal((await held).reply?.text, 'held');

    // Unused for a whole cleanup interval: the channel and its connection are closed.
    clock.advance(10_000);
    await until(() => tcp.open.size === 0, 'the idle passthrough connection to close');

    // The address is called again: a new connection.
    up.behaviour.Unary = (call, cb) => cb(null, { text: call.request.text, server: 'outside', seen: [] });
    assert.equal((await unary(client, { text: 'c' })).reply?.text, 'c');
    assert.equal(tcp.accepted, 2);
  });
});
