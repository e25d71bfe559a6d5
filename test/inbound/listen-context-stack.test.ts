/**
 * node:http's own `clearIncoming` is recognised by the stack of its `req.on('end', …)` call
 * (listen-in-context.ts). An app (or a library) that makes `Error.prototype.stack` something other
 * than a string — `Error.prepareStackTrace` returning the call sites, as V8's API allows — must
 * not make that look throw out of node:http's response 'finish' handler (an uncaught exception):
 * the listener is then simply wrapped, as any other.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { listenInContext } from '../../src/adapters/server/node.ts';
import { currentContext, runInContext } from '../../src/core/context.ts';

test("an Error.prepareStackTrace that returns call sites: node:http's 'end' listener is added (wrapped), nothing throws, the app's listeners keep their context", async () => {
  const saved = Error.prepareStackTrace;
  const errors: unknown[] = [];
  const onUncaught = (e: unknown) => errors.push(e);
  process.on('uncaughtException', onUncaught);
  const deadlines: number[] = [];
  const server = createServer((req, res) => {
    runInContext({ deadline: 55 }, () => {
      listenInContext(req);
      req.on('end', () => deadlines.push(currentContext().deadline as number));
      res.end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  try {
    Error.prepareStackTrace = (_e, sites) => sites;
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: 'x'.repeat(10) });
      assert.equal(await r.text(), 'ok');
    }
  } finally {
    Error.prepareStackTrace = saved;
    process.off('uncaughtException', onUncaught);
    server.closeAllConnections();
    server.close();
  }
  assert.deepEqual(errors, []);
  assert.deepEqual(deadlines, [55, 55]);
});

test("an app's Error.stackTraceLimit below the frames looked at: node:http's 'end' listener is still recognised (added unwrapped), and the app's limit is kept", async () => {
  const savedLimit = Error.stackTraceLimit;
  const wrapped: boolean[] = [];
  const limits: number[] = [];
  const server = createServer((req, res) => {
    runInContext({ deadline: 9 }, () => {
      listenInContext(req);
      res.on('finish', () => {
        limits.push(Error.stackTraceLimit);
        for (const l of req.rawListeners('end')) if (l.name === 'clearIncoming' || (l as { listener?: { name?: string } }).listener?.name === 'clearIncoming') wrapped.push((l as { listener?: unknown }).listener !== undefined);
        req.resume();
      });
      res.end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  try {
    Error.stackTraceLimit = 1;
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(await r.text(), 'ok');
    }
  } finally {
    Error.stackTraceLimit = savedLimit;
    server.closeAllConnections();
    server.close();
  }
  assert.deepEqual(wrapped, [false, false], 'added unwrapped, as with the default limit');
  assert.deepEqual(limits, [1, 1], "the app's limit is as it set it");
});
