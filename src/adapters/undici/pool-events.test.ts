import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { UpstreamConnectionMessage } from '../../core/observe-connections.ts';
import { observedPool } from './pool-events.ts';

describe('observedPool', () => {
  it("publishes undici's connect, connectionError (a connect timeout named as one) and disconnect (the upstream's close or reset named remote) only while subscribed", () => {
    const cs = { name: 'outbound|80||svc' };
    const pool = observedPool(new EventEmitter(), cs);
    const seen: UpstreamConnectionMessage[] = [];
    pool.emit('connect', 'http://x', []);
    const on = (m: unknown) => seen.push(m as UpstreamConnectionMessage);
    subscribe('meshlet:upstream:connection', on);
    try {
      pool.emit('connect', 'http://x', []);
      pool.emit('connectionError', 'http://x', [], Object.assign(new Error('Connect Timeout Error'), { code: 'UND_ERR_CONNECT_TIMEOUT' }));
      pool.emit('connectionError', 'http://x', [], Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
      pool.emit('disconnect', 'http://x', [], Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }));
      pool.emit('disconnect', 'http://x', [], Object.assign(new Error('socket idle timeout'), { code: 'UND_ERR_INFO' }));
    } finally {
      unsubscribe('meshlet:upstream:connection', on);
    }
    pool.emit('connect', 'http://x', []);
    assert.deepEqual(
      seen.map((m) => [m.cluster, m.owner === cs, m.event, m.timeout, m.remote]),
      [
        ['outbound|80||svc', true, 'connect', false, false],
        ['outbound|80||svc', true, 'error', true, false],
        ['outbound|80||svc', true, 'error', false, false],
        ['outbound|80||svc', true, 'disconnect', false, true],
        ['outbound|80||svc', true, 'disconnect', false, false],
      ],
    );
  });
});
