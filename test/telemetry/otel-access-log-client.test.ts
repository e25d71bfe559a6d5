/**
 * The access logger's OTel exports reuse one grpc-js client per collector (as the rate limit
 * service client does), not one per Export call.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { channels } from '../../src/core/observe.ts';
import type { UnaryRequester } from '../../src/core/unary-call.ts';
import { createMesh } from '../../src/index.ts';
import { AccessLogger } from '../../src/telemetry/access-log/access-logger.ts';
import { inboundEnd, telemetry } from '../helpers/access-log.ts';

test('one grpc-js client per collector, made at the first export and kept for the next ones', async () => {
  const mesh = await createMesh({ service: 'reviews', namespace: 'default', logger: { warn: () => undefined }, config: [] });
  const clock = new ManualClock(0);
  const made: string[] = [];
  let exports = 0;
  const fake: UnaryRequester = {
    makeUnaryRequest: (_m, _s, _d, _a, _o, cb) => {
      exports++;
      queueMicrotask(() => cb(null, Buffer.alloc(0)));
      return { cancel: () => undefined };
    },
  };
  const logger = new AccessLogger({
    workload: mesh.identity,
    rootNamespace: 'istio-system',
    clock,
    logger: { warn: () => undefined },
    providers: [{ name: 'otel', envoyOtelAls: { service: 'observability/otel.observability.svc.cluster.local', port: 4317 } }],
    options: {},
    otelClient: (target) => {
      made.push(target);
      return fake;
    },
  });
  try {
    logger.install([telemetry('otel', { accessLogging: [{ providers: [{ name: 'otel' }] }] }) as never]);
    for (let i = 0; i < 3; i++) {
      channels.inboundEnd.publish(inboundEnd(mesh));
      clock.advance(1000);
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(exports, 3);
    assert.deepEqual(made, ['otel.observability.svc.cluster.local:4317']);
  } finally {
    await logger.close();
    await mesh.close();
  }
});

test('grpc-js is loaded by createMesh when an envoyOtelAls provider is configured (not by the first export, on a request)', async () => {
  const { execFileSync } = await import('node:child_process');
  const script = `
    import { createRequire } from 'node:module';
    import { createMesh } from ${JSON.stringify(new URL('../../src/index.ts', import.meta.url).href)};
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('@grpc/grpc-js'));
    const before = loaded();
    const mesh = await createMesh({ service: 'reviews', namespace: 'default', logger: { warn: () => undefined }, extensionProviders: [{ name: 'otel', envoyOtelAls: { service: 'otel.observability.svc.cluster.local', port: 4317 } }], config: [] });
    console.log(JSON.stringify({ before, after: loaded() }));
    await mesh.close();`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('../..', import.meta.url).pathname, encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out.trim().split('\n').pop() as string), { before: false, after: true });
});
