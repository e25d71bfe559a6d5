/**
 * `splitExternalLocalOriginErrors` counts only failures to connect as consecutive local-origin
 * failures, as Envoy's router reports them: every request handed a connection reports
 * `LocalOriginConnectSuccess` (UpstreamRequest::onPoolReady), which with the split resets the
 * local-origin count (outlier_detection_impl.cc putResultWithLocalExternalSplit →
 * localOriginNoFailure), so a reset after that counts 1 and no more. meshlet used to add up
 * post-connect resets too, and ejected an endpoint that accepts connections and drops each
 * request, which a sidecar keeps in the load-balancing set.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import type { OutboundEvent } from '../../src/index.ts';
import { meshFor } from '../helpers/mesh-calls.ts';
import { call, deadPort, destinationRule } from '../helpers/upstreams.ts';

const OUTLIER = { splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2, consecutive5xxErrors: 0, maxEjectionPercent: 100 };

describe('splitExternalLocalOriginErrors', () => {
  const servers: Server[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  test('an endpoint that accepts connections and resets every request is not ejected; one that refuses connections is', async () => {
    // Resets each request once it has arrived (the connection was made: Envoy's pool ready).
    const dropper = createServer((req) => req.socket.destroy());
    servers.push(dropper);
    await new Promise<void>((r) => dropper.listen(0, '127.0.0.1', r));
    const port = (dropper.address() as AddressInfo).port;
    const mesh = await meshFor([{ port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }], [destinationRule('svc', 'svc', { trafficPolicy: { outlierDetection: OUTLIER } })]);
    const events: OutboundEvent[] = [];
    mesh.on('ejected', (e: OutboundEvent) => events.push(e));
    try {
      for (let i = 0; i < 5; i++) {
        const r = await call(mesh, 'http://svc/');
        assert.equal(r.status, 503);
        assert.equal(r.flags, 'UC');
      }
      assert.deepEqual(events, [], 'post-connect resets do not add up');
    } finally {
      await mesh.close();
    }

    const dead = await deadPort();
    const m2 = await meshFor([{ port: dead }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }], [destinationRule('svc', 'svc', { trafficPolicy: { outlierDetection: OUTLIER } })]);
    const ejected: OutboundEvent[] = [];
    m2.on('ejected', (e: OutboundEvent) => ejected.push(e));
    try {
      for (let i = 0; i < 2; i++) assert.equal((await call(m2, 'http://svc/')).flags, 'UF');
      assert.equal(ejected.length, 1, 'two refused connections in a row eject it');
    } finally {
      await m2.close();
    }
  });

  test('overlapping requests that each got a connection, then a reset, add up (each connection reset the count when it came, as onPoolReady does)', async () => {
    // Holds every request until two have arrived, then resets both.
    const held: (() => void)[] = [];
    const dropper = createServer((req) => {
      held.push(() => req.socket.destroy());
      if (held.length === 2) for (const drop of held.splice(0)) drop();
    });
    servers.push(dropper);
    await new Promise<void>((r) => dropper.listen(0, '127.0.0.1', r));
    const port = (dropper.address() as AddressInfo).port;
    const mesh = await meshFor([{ port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }], [destinationRule('svc', 'svc', { trafficPolicy: { outlierDetection: OUTLIER } })]);
    const events: OutboundEvent[] = [];
    mesh.on('ejected', (e: OutboundEvent) => events.push(e));
    try {
      const both = await Promise.all([call(mesh, 'http://svc/a'), call(mesh, 'http://svc/b')]);
      assert.deepEqual(both.map((r) => r.flags), ['UC', 'UC']);
      assert.equal(events.length, 1, 'two post-connect resets in a row, both connected before either failed: ejected');
    } finally {
      await mesh.close();
    }
  });
});
