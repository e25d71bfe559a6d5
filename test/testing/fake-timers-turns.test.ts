/**
 * A test runner's fake timers (`vi.useFakeTimers()`, `jest.useFakeTimers()`: @sinonjs/fake-timers
 * replaces the global `setImmediate` among others) must not hold what meshlet does "on the next
 * turn": a turn is not time, and nothing advances fake time for it. Each test below replaces the
 * global `setImmediate` with one that never runs its callback — what a fake one does until the
 * test advances the fake clock — and checks that the work still happens:
 *
 * - the OTLP access-log exporter's send of a full batch (sent on the next turn, not in `log()`);
 * - the global rate-limit client's warm-up of its services (after the current turn);
 * - the control-plane client's start events (`connected`, `config`, on the next turn so listeners
 *   added after `await createMesh` see them), its ACKs (queued for one turn) and the verdict on a
 *   silent watch stream after a stall (one more poll of the loop before giving up on it).
 *
 * Timeouts stay on the mesh's clock (ManualClock here, fake time under fake timers).
 */
import assert from 'node:assert/strict';
import { setImmediate as realSetImmediate } from 'node:timers';
import { setTimeout as realSleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import type { UnaryRequester } from '../../src/core/unary-call.ts';
import { AckOutbox } from '../../src/control-plane/ack-outbox.ts';
import type { ControlPlaneHttp } from '../../src/control-plane/http.ts';
import { readWatchStream } from '../../src/control-plane/watch-stream.ts';
import { createMesh, type Mesh } from '../../src/index.ts';
import { OtelLogExporter } from '../../src/telemetry/access-log/otel-exporter.ts';
import { encodeLogRecord } from '../../src/telemetry/access-log/otlp-wire.ts';
import { RateLimitServiceClient } from '../../src/policies/rate-limit/rls-client.ts';
import { serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { quietLogger, startTestControlPlane, type TestControlPlane } from '../control-plane/client-helpers.ts';

const realGlobal = globalThis.setImmediate;
/** Holds the global setImmediate (as a runner's fake timers do) for the rest of the test. */
function holdImmediates(): void {
  globalThis.setImmediate = ((): NodeJS.Immediate => ({}) as NodeJS.Immediate) as unknown as typeof setImmediate;
}
function release(): void {
  globalThis.setImmediate = realGlobal;
}
/** A few real turns of the event loop. */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => realSetImmediate(r));
}
/** Waits (in real time, at most 5 s) for `cond`. */
async function eventually(cond: () => boolean): Promise<boolean> {
  for (let i = 0; i < 500 && !cond(); i++) await realSleep(10);
  return cond();
}

test('the OTLP access-log exporter sends a full batch while the global setImmediate is faked', async (t) => {
  t.after(release);
  const sent: number[] = [];
  const client: UnaryRequester = {
    makeUnaryRequest(_method, _s, _d, _argument, _o, callback) {
      sent.push(1);
      callback(null, Buffer.alloc(0));
      return { cancel: () => undefined };
    },
  };
  const ex = new OtelLogExporter({ provider: 'otel', target: 'c:4317', clock: new ManualClock(0), client: () => client, warn: () => undefined, onDropped: () => undefined });
  holdImmediates();
  for (let i = 0; i < 5; i++) ex.log(encodeLogRecord({ startTimeMs: 0, body: 'x'.repeat(4000), attributes: [] })); // over 16 KiB
  await turns();
  assert.equal(sent.length, 1, 'the full batch was not sent (it waited on the faked setImmediate)');
  release();
  await ex.close(0);
});

test("the global rate-limit client warms its services up while the global setImmediate is faked", async (t) => {
  t.after(release);
  const made: string[] = [];
  const client = new RateLimitServiceClient(
    (target) => {
      made.push(target);
      return {
        makeUnaryRequest: (_m, _s, _d, _a, _o, cb) => {
          cb(null, Buffer.alloc(0));
          return { cancel: () => undefined };
        },
      };
    },
    new ManualClock(),
  );
  holdImmediates();
  client.warm(['ratelimit:8081']);
  await turns();
  assert.deepEqual(made, ['ratelimit:8081'], 'the warm-up never ran (it waited on the faked setImmediate)');
});

test('an ACK queued for a turn is sent while the global setImmediate is faked', async (t) => {
  t.after(release);
  const posted: string[] = [];
  const http = { call: async (url: string) => void posted.push(url) } as unknown as ControlPlaneHttp;
  const outbox = new AckOutbox(http, new ManualClock());
  holdImmediates();
  outbox.post('http://cp', { connection: 'c1', kind: 'config', version: 'v1', status: 'ACK' });
  await turns();
  assert.deepEqual(posted, ['http://cp'], 'the ACK was never sent');
});

test('a watch stream silent past its limit after a stall is given up while the global setImmediate is faked', async (t) => {
  t.after(release);
  const clock = new ManualClock();
  // A server that never answers: the request ends only when the stream is aborted.
  const agent = { request: ({ signal }: { signal: AbortSignal }) => new Promise((_r, reject) => signal.addEventListener('abort', () => reject(signal.reason))) };
  const http = { agent, headers: (h: Record<string, string>) => h } as unknown as ControlPlaneHttp;
  const workload = { service: 's', namespace: 'default', labels: {}, serviceAccount: 'default' } as never;
  const ac = new AbortController();
  const ended = readWatchStream({ http, workload, clock, connectTimeoutMs: 1000 }, 'http://cp', '', ac, () => false, { hello: () => 1000, event: () => undefined, comment: () => undefined });
  holdImmediates();
  clock.advance(1000); // the limit passed: one more poll of the loop, then the stream is given up
  const r = await Promise.race([ended, turns(20).then(() => 'stuck' as const)]);
  assert.notEqual(r, 'stuck', 'the silent stream was never given up');
  assert.match(String((r as { error: Error }).error), /no hello within 1000 ms/);
});

let up: Upstream;
let cp: TestControlPlane;
before(async () => {
  up = await startUpstream('a');
  cp = await startTestControlPlane({ se: [serviceEntry('a', 'a.example', 80, [{ port: up.port }])] });
});
after(async () => {
  await cp.close();
  await up.close();
});

test("createMesh against a control plane: its start events are emitted and it ACKs the config while the global setImmediate is faked", async (t) => {
  t.after(release);
  const token = await cp.cp.mintToken({ service: 'client', namespace: 'default' });
  holdImmediates();
  const mesh: Mesh = await createMesh({ service: 'client', controlPlane: cp.cp.url, token, logger: quietLogger });
  const events: string[] = [];
  mesh.on('connected', () => events.push('connected'));
  mesh.on('config', () => events.push('config'));
  try {
    assert.ok(await eventually(() => events.includes('connected') && events.includes('config')), `start events: ${events.join(', ')}`);
    const acked = await eventually(() => cp.cp.status().workloads.some((w) => w.acked.config?.version === mesh.configVersion));
    assert.ok(acked, 'the control plane never got the ACK');
  } finally {
    release();
    await mesh.close();
  }
});
