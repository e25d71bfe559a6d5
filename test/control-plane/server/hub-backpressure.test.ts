/**
 * The push hub drops a watch stream whose client stopped reading — once its unsent bytes pass
 * `maxBufferedBytes`, counted once. A response's `writableLength` already includes its socket's
 * (Node's OutgoingMessage); counting the socket's again dropped streams at half the limit, so a
 * config event over 4 MiB (with the 8 MiB default) was never followed by another event.
 * The response here reports unsent bytes exactly as Node's does, and never drains: a client that
 * does not read.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { test } from 'node:test';
import { loadConfig } from '../../../src/config/load-config.ts';
import { contentVersion } from '../../../src/config/version.ts';
import { PushHub } from '../../../src/control-plane-server/hub.ts';

/** A response that never drains, reporting writableLength as Node's does (its socket's unsent bytes included). */
function stalledResponse() {
  const socket = { writableLength: 0 };
  const written: string[] = [];
  const res = {
    socket,
    destroyed: false,
    writableEnded: false,
    get writableLength() {
      return socket.writableLength;
    },
    writeHead() {
      return res;
    },
    on() {
      return res;
    },
    cork() {},
    uncork() {},
    write(c: string | Buffer) {
      written.push(String(c));
      socket.writableLength += Buffer.byteLength(c);
      return false;
    },
    destroy() {
      res.destroyed = true;
    },
    end() {
      res.writableEnded = true;
    },
  };
  return { res, written };
}

async function hubWith(maxBufferedBytes: number) {
  const loaded = await loadConfig([
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'big', namespace: 'foo' },
      spec: { hosts: ['big.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS', endpoints: Array.from({ length: 20 }, (_, i) => ({ address: `host-${i}.example.com` })) },
    },
  ]);
  assert.equal(loaded.ok, true);
  const state = { version: contentVersion(loaded.resources), resources: loaded.resources, findings: [] };
  const hub = new PushHub({
    store: { current: () => state, onChange: () => {} } as never,
    registry: { list: () => [], onChange: () => {} } as never,
    board: { connect: () => {}, disconnect: () => {}, sent: () => {} } as never,
    serverId: 'test',
    heartbeatMs: 60_000,
    rootNamespace: 'istio-system',
    maxBufferedBytes,
    logger: { info: () => {}, warn: () => {}, error: () => {} } as never,
  });
  return hub;
}

function open(hub: PushHub) {
  const { res, written } = stalledResponse();
  const req = { headers: {}, socket: { setNoDelay() {}, setKeepAlive() {} } };
  hub.open(req as unknown as IncomingMessage, res as unknown as ServerResponse, { service: 'app', namespace: 'foo', labels: {} }, 'test');
  return { res, written };
}

test('unsent bytes are counted once: hello and config pending, the endpoints event still goes out', async () => {
  // Measure what hello + config come to, then allow a little more than that.
  const probe = await hubWith(Number.MAX_SAFE_INTEGER);
  const p = open(probe);
  const beforeEndpoints = p.written.slice(0, p.written.findIndex((w) => w.startsWith('event: endpoints'))).reduce((n, w) => n + Buffer.byteLength(w), 0);
  probe.close();
  assert.ok(beforeEndpoints > 500, `hello + config are ${beforeEndpoints} bytes`);

  const hub = await hubWith(Math.round(beforeEndpoints * 1.5));
  const { res, written } = open(hub);
  assert.equal(res.destroyed, false, 'the stream is kept: its unsent bytes are under the limit');
  assert.ok(written.some((w) => w.startsWith('event: endpoints')), 'the endpoints event was written');
  hub.close();
});

test('a stream whose unsent bytes pass the limit is dropped', async () => {
  const hub = await hubWith(100);
  const { res, written } = open(hub);
  assert.equal(res.destroyed, true);
  assert.ok(!written.some((w) => w.startsWith('event: endpoints')));
  hub.close();
});
