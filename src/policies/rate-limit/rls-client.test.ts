import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../core/clock.ts';
import { RateLimitServiceClient, type RlsCaller } from './rls-client.ts';

/** A client that records the methods called and answers when told. */
function fakeClients() {
  const made: string[] = [];
  const calls: { target: string; method: string; answer: (err: Error | null) => void }[] = [];
  let failing = false;
  const factory = (target: string): RlsCaller => {
    if (failing) throw new Error('Cannot find package @grpc/grpc-js');
    made.push(target);
    return {
      makeUnaryRequest: (method, _s, _d, _arg, _o, cb) => {
        calls.push({ target, method, answer: (err) => cb(err, err === null ? Buffer.alloc(0) : undefined) });
        return { cancel: () => {} };
      },
    };
  };
  return { made, calls, factory, fail: (f: boolean) => (failing = f) };
}

const turn = () => new Promise((r) => setImmediate(r));

describe('RateLimitServiceClient.warm', () => {
  it('makes each client and sends one health check per service, after the current turn; not again once the client exists', async () => {
    const f = fakeClients();
    const client = new RateLimitServiceClient(f.factory, new ManualClock());
    client.warm(['ratelimit:8081', 'ratelimit:8081', 'other:9000']);
    assert.deepEqual(f.made, [], 'nothing before the mesh is made');
    await turn();
    assert.deepEqual(f.made, ['ratelimit:8081', 'other:9000']);
    assert.deepEqual(f.calls.map((c) => c.method), ['/grpc.health.v1.Health/Check', '/grpc.health.v1.Health/Check']);
    // A config change while the checks are in flight, and after: no second warm-up.
    client.warm(['ratelimit:8081']);
    for (const c of f.calls) c.answer(new Error('12 UNIMPLEMENTED'));
    await turn();
    client.warm(['ratelimit:8081', 'other:9000']);
    await turn();
    assert.equal(f.calls.length, 2);
    assert.deepEqual(f.made, ['ratelimit:8081', 'other:9000']);
  });

  it('without grpc-js, does nothing (the first call fails as before), and tries again with the next config', async () => {
    const f = fakeClients();
    const client = new RateLimitServiceClient(f.factory, new ManualClock());
    f.fail(true);
    client.warm(['ratelimit:8081']);
    await turn();
    assert.deepEqual(f.calls, []);
    f.fail(false);
    client.warm(['ratelimit:8081']);
    await turn();
    assert.deepEqual(f.made, ['ratelimit:8081']);
    assert.equal(f.calls.length, 1);
  });

  it('the warm-up call keeps no process alive (a service that never answers must not hold an app that never calls mesh.close() for its timeout)', async () => {
    const f = fakeClients();
    const timers: boolean[] = [];
    class RecordingClock extends ManualClock {
      override setTimer(fn: () => void, ms: number, keepAlive?: boolean) {
        timers.push(keepAlive === true);
        return super.setTimer(fn, ms);
      }
    }
    const client = new RateLimitServiceClient(f.factory, new RecordingClock());
    client.warm(['ratelimit:8081']);
    await turn();
    assert.equal(f.calls.length, 1);
    assert.deepEqual(timers, [false]);
  });
});
