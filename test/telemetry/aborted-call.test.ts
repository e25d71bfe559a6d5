/**
 * A call the app aborts carries Envoy's DC (downstream connection termination) in every report of
 * it — the `meshlet:call:end` message the span and the metrics read, `istio_requests_total`'s
 * `response_flags`, and the access log — before the answer (response_code 0) and in the middle
 * of the body (the status it had got), as Envoy's client sidecar reports a downstream that went away.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, test } from 'node:test';
import type { CallEndMessage } from '../../src/core/observe.ts';
import { createMesh } from '../../src/index.ts';
import { capture, until } from '../helpers/access-log.ts';
import { sdk } from '../helpers/metric-reader.ts';
import { serviceEntry, startUpstream } from '../helpers/upstreams.ts';

describe('a call the app aborts', () => {
  test('DC in the call:end message, the metric and the access log, before the answer and mid-body', async () => {
    const held: (() => void)[] = [];
    const up = await startUpstream('slow', (q, res) => {
      if (q.url === '/body') {
        res.writeHead(200);
        res.write('first');
        held.push(() => res.end('rest'));
      } else held.push(() => res.end('late'));
    });
    const m = sdk();
    const log = capture();
    const ends: CallEndMessage[] = [];
    const onEnd = (x: unknown) => ends.push(x as CallEndMessage);
    subscribe('meshlet:call:end', onEnd);
    const mesh = await createMesh({
      service: 'reviews',
      logger: log.logger,
      telemetry: { metrics: { meterProvider: m.provider }, accessLog: { file: '/dev/stdout', format: '%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n' } },
      config: [serviceEntry('slow', 'slow.default.svc.cluster.local', 80, [{ port: up.port }])],
    });
    try {
      const before = new AbortController();
      const p = mesh.fetch('http://slow/wait', { signal: before.signal });
      await until(() => up.hits === 1, 'the upstream to get the request');
      before.abort();
      await assert.rejects(p);

      const mid = new AbortController();
      const res = await mesh.fetch('http://slow/body', { signal: mid.signal });
      assert.equal(res.status, 200);
      const reader = res.body?.getReader();
      await reader?.read();
      mid.abort();
      await assert.rejects(reader?.read() ?? Promise.reject(new Error('no body')));

      await until(() => ends.length === 2 && log.lines().length === 2, 'both calls to end');
      assert.deepEqual(
        ends.map((e) => [e.path, e.status, e.flags]),
        [
          ['/wait', 0, 'DC'],
          ['/body', 200, 'DC'],
        ],
        'the message the span (response_flags) and the metrics read',
      );
      const points = (await m.points('istio_requests_total')).map((p) => [p.attributes['response_code'], p.attributes['response_flags'], p.value]);
      assert.deepEqual(
        points.sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
        [
          ['0', 'DC', 1],
          ['200', 'DC', 1],
        ],
      );
      assert.deepEqual(log.lines(), ['/wait 0 DC downstream_remote_disconnect', '/body 200 DC downstream_remote_disconnect']);
    } finally {
      unsubscribe('meshlet:call:end', onEnd);
      for (const r of held.splice(0)) r();
      await mesh.close();
      await m.shutdown();
      await up.close();
    }
  });
});
