/**
 * The caller's own undici `headersTimeout` and `bodyTimeout` through the mesh are the caller's deadline, as its
 * AbortSignal is: it reaches the caller as plain undici reports it (`HeadersTimeoutError`), is
 * flagged DC (the caller gave up, as Envoy flags a downstream reset), is never retried and is not
 * charged to outlier detection. It used to become a mesh 503 UC (`connection termination`),
 * charged as a gateway error: an app's own short timeout ejected a healthy endpoint.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { createMesh, type OutboundEvent } from '../../src/index.ts';
import { destinationRule, serviceEntry, startUpstream, virtualService } from '../helpers/upstreams.ts';

const SVC = 'svc.default.svc.cluster.local';

describe("the caller's own headersTimeout and bodyTimeout", () => {
  it('reaches the caller as HeadersTimeoutError, DC, not retried, no endpoint ejected', async () => {
    const held: { end(): void }[] = [];
    const up = await startUpstream('slow', (_q, res) => void held.push(res));
    const mesh = await createMesh({
      service: 'client',
      config: [
        serviceEntry('svc', SVC, 80, [{ port: up.port }]),
        virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 2, retryOn: 'reset,5xx,gateway-error' } }]),
        destinationRule('svc', 'svc', { trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1, consecutiveGatewayErrors: 1, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 100 } } }),
      ],
    });
    const events: OutboundEvent[] = [];
    mesh.on('ejected', (e) => events.push(e));
    const flags: string[] = [];
    const { subscribe, unsubscribe } = await import('node:diagnostics_channel');
    const onEnd = (m: unknown) => flags.push((m as { flags?: string }).flags ?? '');
    subscribe('meshlet:call:end', onEnd);
    try {
      for (const path of ['/a', '/b']) {
        await assert.rejects(request(`http://svc${path}`, { dispatcher: mesh.dispatcher, headersTimeout: 50 }), (e: Error & { code?: string }) => e.name === 'HeadersTimeoutError' && e.code === 'UND_ERR_HEADERS_TIMEOUT');
      }
      assert.equal(up.hits, 2, 'one attempt per call: never retried');
      assert.deepEqual(events, []);
      assert.ok(!mesh.diagnostics().clusters.some((c) => c.endpoints.some((e) => e.ejected)), 'no endpoint ejected');
      assert.deepEqual(flags, ['DC', 'DC']);
    } finally {
      unsubscribe('meshlet:call:end', onEnd);
      for (const r of held) r.end();
      await mesh.close();
      await up.close();
    }
  });

  it('bodyTimeout too: BodyTimeoutError, DC (not UC), no endpoint ejected', async () => {
    const held: { end(): void }[] = [];
    const up = await startUpstream('stalls', (_q, res) => {
      res.writeHead(200);
      res.write('x');
      held.push(res);
    });
    const mesh = await createMesh({
      service: 'client',
      config: [
        serviceEntry('svc', SVC, 80, [{ port: up.port }]),
        destinationRule('svc', 'svc', { trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1, consecutiveGatewayErrors: 1, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 100 } } }),
      ],
    });
    const flags: string[] = [];
    const { subscribe, unsubscribe } = await import('node:diagnostics_channel');
    const onEnd = (m: unknown) => flags.push((m as { flags?: string }).flags ?? '');
    subscribe('meshlet:call:end', onEnd);
    try {
      for (const path of ['/a', '/b']) {
        const r = await request(`http://svc${path}`, { dispatcher: mesh.dispatcher, bodyTimeout: 50 });
        assert.equal(r.statusCode, 200, 'the second call is not refused: 503 UH when the first ejected the endpoint');
        await assert.rejects(r.body.text(), (e: Error & { code?: string }) => e.name === 'BodyTimeoutError' && e.code === 'UND_ERR_BODY_TIMEOUT');
      }
      assert.ok(!mesh.diagnostics().clusters.some((c) => c.endpoints.some((e) => e.ejected)), 'no endpoint ejected');
      assert.deepEqual(flags, ['DC', 'DC']);
    } finally {
      unsubscribe('meshlet:call:end', onEnd);
      for (const r of held) r.end();
      await mesh.close();
      await up.close();
    }
  });
  it('to a host outside the mesh (passthrough) too, and a request body whose source fails: the errors plain undici gives, not MESHLET_ERR_INVALID_ARG "reset reason: local"', async () => {
    const held: { end(): void }[] = [];
    const up = await startUpstream('outside', (_q, res) => void held.push(res));
    const mesh = await createMesh({ service: 'client', config: [] });
    try {
      await assert.rejects(request(`http://127.0.0.1:${up.port}/a`, { dispatcher: mesh.dispatcher, headersTimeout: 50 }), (e: Error & { code?: string }) => e.name === 'HeadersTimeoutError' && e.code === 'UND_ERR_HEADERS_TIMEOUT');
      const body = new Readable({
        read() {
          this.destroy(new Error('source broke'));
        },
      });
      await assert.rejects(request(`http://127.0.0.1:${up.port}/b`, { dispatcher: mesh.dispatcher, method: 'POST', body }), (e: Error & { code?: string }) => e.message === 'source broke' && e.code === undefined);
    } finally {
      for (const r of held) r.end();
      await mesh.close();
      await up.close();
    }
  });
});
