/**
 * A registration made anew at another address (its renewal got 404 and the control plane now
 * sees it at another peer address) probes the new address: the probe used to stay on the address
 * the first registration had, reporting the workload's health from a host that is no longer it.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { type CallRequest, type ControlPlaneHttp, HttpStatusError } from '../../src/control-plane/http.ts';
import type { RegisterResponse } from '../../src/control-plane/protocol.ts';
import { Registrar } from '../../src/control-plane/registration.ts';
import { ManualClock } from '../../src/core/clock.ts';

const settle = async () => {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
};

describe('registration probe host', () => {
  it('a registration made anew at another address probes that address', async () => {
    const tcp = createServer((s) => s.destroy());
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const port = (tcp.address() as { port: number }).port;
    const clock = new ManualClock(0);
    let address = '127.0.0.3'; // nothing listens there on `port`
    let forget = false;
    const reports: unknown[] = [];
    const answer = (): RegisterResponse => ({
      name: 'reviews-1',
      namespace: 'default',
      leaseMs: 3000,
      workload: { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'reviews-1', namespace: 'default' }, spec: { address, ports: { http: port } } },
      probe: { periodSeconds: 3600, tcpSocket: { port } },
    });
    const http = {
      call: async (_url: string, req: CallRequest) => {
        if (req.method === 'PUT' && req.path.endsWith('/health')) reports.push(req.body);
        if (req.method === 'PUT' && req.path.endsWith('/lease') && forget) throw new HttpStatusError(404, 'NOT_FOUND', 'not registered');
        return req.method === 'DELETE' ? { deleted: true } : answer();
      },
    } as unknown as ControlPlaneHttp;
    const registrar = new Registrar({ http, urls: ['http://cp'], clock, hasToken: true, service: 'reviews', namespace: 'default', labels: {}, locality: '', timeoutMs: 1000, logger: { warn: () => {} } });
    try {
      await registrar.register({ ports: { http: port } });
      clock.advance(0);
      for (let i = 0; i < 100 && reports.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(reports.map((r) => (r as { healthy: boolean }).healthy), [false], '127.0.0.3 refuses');
      // The control plane forgot the record; registered anew, it now sees the workload at 127.0.0.1.
      forget = true;
      address = '127.0.0.1';
      clock.advance(1000);
      await settle();
      clock.advance(0);
      for (let i = 0; i < 100 && reports.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(reports.at(-1), { healthy: true }, 'the new address is probed');
    } finally {
      forget = false;
      await registrar.closeAll();
      await new Promise<void>((r) => tcp.close(() => r()));
    }
  });
});
