/**
 * A workload that only serves, created before the OpenTelemetry SDK (the app's own MeterProvider
 * registered globally, or startTelemetry()): it makes no outbound call and its config does not
 * change, yet the SDK is found (the mesh looks once a second) and the requests it serves from
 * then on are counted — Istio's metrics and meshlet's own. The wait is bounded only against a
 * hang (test/helpers/until.ts); nothing checks how long it took.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { channels } from '../../src/core/observe.ts';
import { createMesh } from '../../src/index.ts';
import { startTelemetry } from '../../src/telemetry/sdk/index.ts';
import { sdk } from '../helpers/metric-reader.ts';
import { until } from '../helpers/until.ts';

describe('an SDK started after a serve-only mesh', () => {
  for (const way of ["the app's own MeterProvider, registered globally", 'startTelemetry()'] as const) {
    test(`${way}: found without an outbound call or a config change; the requests served from then on are counted`, async () => {
      const mesh = await createMesh({ service: 'ratings', workloadName: 'ratings-v1', logger: { warn: () => undefined }, config: [] });
      const server = mesh.createServer((_req, res) => res.end('ok'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const serve = async (n: number) => {
        for (let i = 0; i < n; i++) await (await fetch(url)).text();
      };
      let read: (name: string) => Promise<number>;
      let stop: () => Promise<void>;
      try {
        await serve(2);
        assert.equal(channels.inboundEnd.hasSubscribers, false, 'no SDK yet: nothing observed');
        if (way === 'startTelemetry()') {
          const t = await startTelemetry({ prometheus: { port: 0, host: '127.0.0.1' }, otlp: false });
          stop = () => t.shutdown();
          read = async (name) => {
            const text = await (await fetch(`${t.prometheusUrl}/metrics`)).text();
            return text
              .split('\n')
              .filter((l) => l.startsWith(`${name}{`) && l.includes('reporter="destination"') === name.startsWith('istio_'))
              .filter((l) => !name.startsWith('meshlet_') || l.includes('mesh_service="ratings"'))
              .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
          };
        } else {
          const m = sdk();
          metrics.setGlobalMeterProvider(m.provider);
          stop = async () => {
            metrics.disable();
            await m.shutdown();
          };
          read = async (name) => (await m.points(name)).filter((p) => (name.startsWith('istio_') ? p.attributes['reporter'] === 'destination' : p.attributes['mesh_service'] === 'ratings')).reduce((n, p) => n + p.value, 0);
        }
        try {
          await until(() => channels.inboundEnd.hasSubscribers, 'the mesh to find the SDK');
          await serve(3);
          await until(async () => (await read('istio_requests_total')) === 3, 'the 3 requests served since to be counted');
          // meshlet's own metrics started too: the inbound requests of the mesh's life so far.
          assert.equal(await read('meshlet_inbound_tls_requests_total'), 5);
        } finally {
          await stop();
        }
      } finally {
        await mesh.close();
        await new Promise<void>((r) => server.close(() => r()));
      }
    });
  }
});
