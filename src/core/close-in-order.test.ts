import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closeInOrder } from './close-in-order.ts';

test('every step runs in order, a group together, each after the one before settled', async () => {
  const log: string[] = [];
  const later = (name: string) => () => {
    log.push(`${name} starts`);
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        log.push(`${name} closed`);
        resolve();
      }),
    );
  };
  await closeInOrder([later('a'), () => [later('b1')(), later('b2')(), undefined], () => undefined, later('c')]);
  assert.deepEqual(log, ['a starts', 'a closed', 'b1 starts', 'b2 starts', 'b1 closed', 'b2 closed', 'c starts', 'c closed']);
});

test('a failing step does not stop the later ones; its error is the one thrown', async () => {
  const log: string[] = [];
  const boom = new Error('cache flush failed');
  await assert.rejects(
    closeInOrder([
      () => Promise.reject(boom),
      () => [Promise.resolve(log.push('pools')), Promise.resolve(log.push('servers'))],
      () => {
        log.push('telemetry');
        return undefined;
      },
    ]),
    (e) => e === boom,
  );
  assert.deepEqual(log, ['pools', 'servers', 'telemetry']);
});

test('several failures (a throw, a rejection in a group) are all reported, in order', async () => {
  const closed: string[] = [];
  await assert.rejects(
    closeInOrder([
      () => {
        throw new Error('source');
      },
      () => [Promise.reject(new Error('pool')), Promise.resolve(closed.push('server'))],
      async () => {
        closed.push('telemetry');
      },
    ]),
    (e: unknown) => {
      assert.ok(e instanceof AggregateError);
      assert.deepEqual(e.errors.map((x: Error) => x.message), ['source', 'pool']);
      assert.match(e.message, /2 parts failed to close: source; pool/);
      return true;
    },
  );
  assert.deepEqual(closed, ['server', 'telemetry']);
});
