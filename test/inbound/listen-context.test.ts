/**
 * listenInContext: listeners the app adds to a request after admission run in the request's
 * mesh context even when the event comes from elsewhere (a socket read), and EventEmitter's
 * bookkeeping still works on them (removal by the original function, once, listeners()).
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AsyncLocalStorage } from 'node:async_hooks';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { listenInContext } from '../../src/adapters/server/node.ts';
import { currentContext, runInContext } from '../../src/core/context.ts';

test('listeners added in context run in it; removal by the original, once and listeners() work', () => {
  const req = new PassThrough() as unknown as IncomingMessage;
  const seen: number[] = [];
  const onData = () => seen.push(currentContext().deadline);
  const onEnd = () => seen.push(-currentContext().deadline);
  runInContext({ deadline: 1234 }, () => {
    listenInContext(req);
    req.on('data', onData);
    req.once('end', onEnd);
  });
  // Emitted outside any context, as a socket read would.
  assert.equal(currentContext().deadline, Number.POSITIVE_INFINITY);
  req.emit('data', Buffer.from('x'));
  req.emit('end');
  req.emit('end');
  assert.deepEqual(seen, [1234, -1234], 'in context; the once listener ran once');
  assert.deepEqual(req.listeners('data'), [onData]);
  req.removeListener('data', onData);
  assert.equal(req.listenerCount('data'), 0);
  req.emit('data', Buffer.from('y'));
  assert.deepEqual(seen, [1234, -1234]);
});

test("listeners see every async-context store of the request (not only the mesh's), with the emitter as this and the event's arguments", () => {
  const req = new PassThrough() as unknown as IncomingMessage;
  const other = new AsyncLocalStorage<string>();
  const seen: unknown[] = [];
  other.run('span-1', () =>
    runInContext({ deadline: 99 }, () => {
      listenInContext(req);
      req.on('data', function (this: unknown, chunk: Buffer, extra: unknown) {
        seen.push(other.getStore(), currentContext().deadline, this === req, chunk.toString(), extra);
      });
    }),
  );
  other.run('elsewhere', () => {
    req.emit('data', Buffer.from('z'), 7);
    seen.push(other.getStore());
  });
  assert.deepEqual(seen, ['span-1', 99, true, 'z', 7, 'elsewhere'], "the emitter's own context is back after the listener");
});

test('a once listener is removed by its original function (as events.once() and pipe() clean up), and runs in context once', async () => {
  const req = new PassThrough() as unknown as IncomingMessage;
  const seen: number[] = [];
  const onEnd = () => seen.push(currentContext().deadline);
  runInContext({ deadline: 5 }, () => {
    listenInContext(req);
    req.once('end', onEnd);
  });
  assert.deepEqual(req.listeners('end'), [onEnd]);
  req.removeListener('end', onEnd);
  assert.equal(req.listenerCount('end'), 0);
  // events.once() takes its listeners off when it settles: a rejected wait leaves no 'data' listener
  // behind (one would put the stream in flowing mode and swallow the body).
  const waiting = once(req, 'data');
  req.emit('error', new Error('gone'));
  await assert.rejects(waiting, /gone/);
  assert.equal(req.listenerCount('data'), 0);
  assert.equal(req.listenerCount('error'), 0);
  req.once('end', onEnd);
  req.emit('end');
  req.emit('end');
  assert.deepEqual(seen, [5], "once, in the request's context");
  assert.equal(req.listenerCount('end'), 0);
});

test('a request entered twice (a second mesh admits it too): listeners run in the later context, each once, and removal still works', () => {
  const req = new PassThrough() as unknown as IncomingMessage;
  const seen: number[] = [];
  const onData = () => seen.push(currentContext().deadline);
  runInContext({ deadline: 1000 }, () => {
    listenInContext(req);
    runInContext({ deadline: 500 }, () => {
      listenInContext(req);
      req.on('data', onData);
    });
  });
  req.emit('data', Buffer.from('x'));
  assert.deepEqual(seen, [500]);
  assert.deepEqual(req.listeners('data'), [onData]);
  req.removeListener('data', onData);
  assert.equal(req.listenerCount('data'), 0);
  // Another request's wrappers are its own: a listener added to it runs in its context, not this one's.
  const other = new PassThrough() as unknown as IncomingMessage;
  runInContext({ deadline: 42 }, () => listenInContext(other));
  other.on('data', onData);
  other.emit('data', Buffer.from('y'));
  assert.deepEqual(seen, [500, 42]);
});

test("node:http's own 'end' listener on an answered request (clearIncoming) is added as it is; an app's listener of that name is wrapped", async () => {
  const seen: { raw: string[]; wrapped: boolean[]; appDeadlines: number[] } = { raw: [], wrapped: [], appDeadlines: [] };
  let bothRan: () => void = () => {};
  const ran = new Promise<void>((resolve) => {
    bothRan = resolve;
  });
  const server = createServer((req, res) => {
    runInContext({ deadline: 77 }, () => {
      listenInContext(req);
      res.on('finish', () => {
        // node:http added clearIncoming when the response finished before the request's end was read.
        for (const l of req.rawListeners('end')) {
          seen.raw.push(l.name);
          seen.wrapped.push((l as { listener?: unknown }).listener !== undefined);
        }
        // A function of the app's that happens to have the same name runs in the request's context.
        const clearIncoming = () => {
          seen.appDeadlines.push(currentContext().deadline);
          if (seen.appDeadlines.length === 2) bothRan();
        };
        req.on('end', clearIncoming);
        req.resume();
      });
      res.end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  try {
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(await r.text(), 'ok');
    }
    await ran;
  } finally {
    server.closeAllConnections();
    server.close();
  }
  assert.deepEqual(seen.raw, ['clearIncoming', 'clearIncoming'], "node:http's listener, one per request");
  assert.deepEqual(seen.wrapped, [false, false], 'added unwrapped (it needs no context)');
  assert.deepEqual(seen.appDeadlines, [77, 77], "the app's namesake ran in the request's context");
});
