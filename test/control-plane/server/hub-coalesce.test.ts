/**
 * A watch stream whose client has not read what was written (the response needs 'drain') is not
 * written every config version in between: changes are held back and, once it drains, it is
 * sent the latest state only — as istiod merges the pushes queued for a connection
 * (pilot/pkg/xds/pushqueue.go). Before, each change queued a full config event, and a client that
 * caught up compiled every stale version in between (or was dropped at 8 MiB and resynced).
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { test } from 'node:test';
import { loadConfig } from '../../../src/config/load-config.ts';
import { contentVersion } from '../../../src/config/version.ts';
import { PushHub } from '../../../src/control-plane-server/hub.ts';
import type { ConfigState } from '../../../src/control-plane-server/store.ts';

/** A response whose client, once `stall()`ed, reads nothing until `drain()`: a write then fills its buffer. */
function slowResponse() {
  const events = new EventEmitter();
  const written: string[] = [];
  const res = {
    destroyed: false,
    writableEnded: false,
    writableNeedDrain: false,
    writableHighWaterMark: 1,
    writableLength: 0,
    stalled: false,
    writeHead: () => res,
    on(e: string, f: () => void) {
      events.on(e, f);
      return res;
    },
    cork() {},
    uncork() {},
    write(c: string | Buffer) {
      written.push(String(c));
      if (!res.stalled) return true;
      res.writableLength += Buffer.byteLength(c);
      res.writableNeedDrain = true;
      return false;
    },
    destroy() {
      res.destroyed = true;
    },
    end() {
      res.writableEnded = true;
    },
    stall() {
      res.stalled = true;
    },
    /** The client read everything. */
    drain() {
      res.stalled = false;
      res.writableLength = 0;
      res.writableNeedDrain = false;
      events.emit('drain');
    },
  };
  return { res, written };
}

async function stateWith(timeout: string): Promise<ConfigState> {
  const loaded = await loadConfig([
    { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'r', namespace: 'foo' }, spec: { hosts: ['r.foo.svc.cluster.local'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC' } },
    { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r', namespace: 'foo' }, spec: { hosts: ['r.foo.svc.cluster.local'], http: [{ timeout, route: [{ destination: { host: 'r.foo.svc.cluster.local' } }] }] } },
  ]);
  assert.equal(loaded.ok, true);
  return { version: contentVersion(loaded.resources), resources: loaded.resources, findings: [] } as unknown as ConfigState;
}

test('a stream that has not drained gets only the latest config once it does', async () => {
  let state = await stateWith('1s');
  let changed: (s: ConfigState) => void = () => undefined;
  const hub = new PushHub({
    store: { current: () => state, onChange: (f: (s: ConfigState) => void) => (changed = f) } as never,
    registry: { list: () => [], onChange: () => {} } as never,
    board: { connect: () => {}, disconnect: () => {}, sent: () => {} } as never,
    serverId: 'test',
    heartbeatMs: 60_000,
    rootNamespace: 'istio-system',
    logger: { info: () => {}, warn: () => {} },
  });
  try {
    const { res, written } = slowResponse();
    const req = { headers: {}, socket: { setNoDelay() {}, setKeepAlive() {} } };
    hub.open(req as unknown as IncomingMessage, res as unknown as ServerResponse, { service: 'app', namespace: 'foo', labels: {} }, 'peer');
    const configs = () => written.filter((w) => w.startsWith('event: config')).map((w) => /id: ([^/]*)\//.exec(w)?.[1]);
    const endpoints = () => written.filter((w) => w.startsWith('event: endpoints')).length;
    assert.deepEqual(configs(), [state.version]);
    assert.equal(endpoints(), 1);
    res.stall();
    const versions: string[] = [];
    for (const t of ['2s', '3s', '4s', '5s']) {
      state = await stateWith(t);
      versions.push(state.version);
      changed(state);
    }
    assert.deepEqual(configs().slice(1), [versions[0]], 'the first change was written; the client has not read it, so the next ones wait');
    assert.equal(res.destroyed, false);
    res.drain();
    assert.deepEqual(configs().slice(2), [versions.at(-1)], 'then the latest config only');
    res.drain();
    assert.equal(configs().length, 3, 'nothing again once it is current');
  } finally {
    hub.close();
  }
});
