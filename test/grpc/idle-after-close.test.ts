/**
 * A gRPC call still in flight when mesh.close() runs ends after close() cleared the connections'
 * idle timers: its end must not arm a new `idleTimeout` timer on the closed connection (which
 * kept the closed channel referenced until it fired, then closed it a second time).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMesh, ManualClock, seededRandom } from '../../src/index.ts';
import { type Echo, EchoClient, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { destinationRule, virtualService } from '../helpers/upstreams.ts';

async function pendingAfterClose(connectionPool: Record<string, unknown>): Promise<number> {
  const up = await startGrpcUpstream('a');
  const held: (() => void)[] = [];
  const inner = up.behaviour.Unary;
  up.behaviour.Unary = (call, cb, hit) => { held.push(() => inner(call, cb, hit)); };
  const clock = new ManualClock(1_000_000);
  const mesh = await createMesh({ service: 'client', random: seededRandom(5), clock, config: [
    grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: up.port }]),
    destinationRule('echo', 'echo', { trafficPolicy: { connectionPool } }),
    virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 0 } }]),
  ] });
  const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
  const p = unary(client, { text: 'x' });
  while (held.length === 0) await sleep(5);
  const closed = mesh.close();
  await sleep(20);
  for (const h of held.splice(0)) h();
  const r = await p;
  assert.equal(r.error, undefined);
  await closed;
  const n = clock.pending;
  (client as unknown as { close(): void }).close();
  await up.close();
  return n;
}

describe('gRPC idle timer after mesh.close()', () => {
  it('no idle timer is left armed on a closed connection', async () => {
    const base = await pendingAfterClose({ http: { http2MaxRequests: 1000 } });
    const idle = await pendingAfterClose({ http: { http2MaxRequests: 1000, idleTimeout: '60s' } });
    assert.equal(idle, base);
  });
});
