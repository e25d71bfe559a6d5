/**
 * IPv6 addresses are written `[address]:port` (core/host-port.ts) wherever meshlet prints one
 * next to a port, so the port cannot be read as part of the address — over real IPv6 loopback
 * sockets (::1):
 *
 * - the control plane's record of a watching workload's peer (`GET /status`, `meshlet status`);
 * - the admin endpoint's and startTelemetry()'s Prometheus endpoint's "cannot listen on" errors.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { createMesh } from '../../../src/index.ts';
import { startTelemetry } from '../../../src/telemetry/sdk/index.ts';
import { api, startTestServer, watch } from './helpers.ts';

const quiet = { warn: () => undefined, error: () => undefined };

async function takenOnLoopback6(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '::1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

describe('IPv6 addresses with their ports', () => {
  it("the control plane records a workload's IPv6 peer as [::1]:port", async () => {
    const s = await startTestServer(undefined, { host: '::1' });
    try {
      const token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
      const w = await watch(s.url, 'service=reviews&namespace=default', { token });
      try {
        await w.next('hello');
        const doc = (await api(s.url, 'GET', '/status', { token: s.admin })).body;
        const peer = doc.workloads.find((x: { service: string }) => x.service === 'reviews')?.peer as string;
        assert.match(peer, /^\[::1\]:\d+$/, peer);
      } finally {
        w.close();
      }
    } finally {
      await s.close();
    }
  });

  it('the admin endpoint says it cannot listen on [::1]:port', async () => {
    const taken = await takenOnLoopback6();
    try {
      await assert.rejects(createMesh({ service: 'client', logger: quiet, config: [], admin: { host: '::1', port: taken.port } }), (e: Error) => e.message.includes(`cannot listen on [::1]:${taken.port}: address in use`));
    } finally {
      taken.server.close();
    }
  });

  it("startTelemetry()'s Prometheus endpoint says it cannot listen on [::1]:port", async () => {
    const taken = await takenOnLoopback6();
    try {
      await assert.rejects(startTelemetry({ serviceName: 'web', prometheus: { host: '::1', port: taken.port } }), (e: Error) => e.message.includes(`cannot listen on [::1]:${taken.port}: address in use`));
    } finally {
      taken.server.close();
    }
  });
});
