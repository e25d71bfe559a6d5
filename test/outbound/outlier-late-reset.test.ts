/**
 * An endpoint that fails after its response head — its connection closes mid-body — is charged
 * to outlier detection, as Envoy's router charges every upstream reset (a local-origin
 * `LocalOriginConnectFailed`, a 503 when local-origin errors are not split): after the head's
 * 200 reset the consecutive counters, the reset counts one. A body the caller gives up on (its
 * abort) and a whole response count nothing.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { ManualClock, type OutboundEvent } from '../../src/index.ts';
import { meshFor } from '../helpers/mesh-calls.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

describe('outlier detection after the response head', () => {
  const ups: Upstream[] = [];
  after(async () => {
    await Promise.all(ups.map((u) => u.close()));
  });

  test('a reset mid-body counts as a failure of the endpoint; an abort and a whole answer do not', async () => {
    const up = await startUpstream('up', (q, res) => {
      res.writeHead(200);
      if (q.url === '/whole') res.end('whole');
      else if (q.url === '/reset') res.write('partial', () => q.socket.destroy());
      else res.write('partial'); // held until the caller goes away
    });
    ups.push(up);
    const events: OutboundEvent[] = [];
    const mesh = await meshFor(
      [{ port: up.port }],
      [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }],
      [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'DestinationRule',
          metadata: { name: 'svc', namespace: 'default' },
          spec: { host: 'svc', trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 100 } } },
        },
      ],
      { clock: new ManualClock(1000) },
    );
    mesh.on('ejected', (e: OutboundEvent) => events.push(e));
    try {
      const whole = await mesh.fetch('http://svc/whole');
      assert.equal(await whole.text(), 'whole');
      const ac = new AbortController();
      const held = await mesh.fetch('http://svc/held', { signal: ac.signal });
      const reader = held.body?.getReader();
      await reader?.read();
      ac.abort();
      await assert.rejects(reader?.read() ?? Promise.reject(new Error('no body')));
      assert.equal(events.length, 0, 'neither a whole answer nor the caller going away is the endpoint failing');

      const reset = await mesh.fetch('http://svc/reset');
      assert.equal(reset.status, 200);
      await assert.rejects(reset.text());
      assert.deepEqual(
        events.map((e) => e.endpoint),
        [`127.0.0.1:${up.port}`],
        'the reset after the head ejects the endpoint (consecutive5xxErrors: 1)',
      );
    } finally {
      await mesh.close();
    }
  });
});
