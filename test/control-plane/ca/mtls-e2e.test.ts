/**
 * End to end with the server side: a mesh whose certificate comes from the control plane serves
 * with `mesh.createServer` (PERMISSIVE: plaintext and mTLS on one port); a client certificate the
 * control plane issued (admin, another identity) is accepted over a real TLS handshake and named
 * as the peer; the status shows the workload's inbound mTLS and plaintext counts (not ready for
 * STRICT while plaintext arrives); after a root rotation the server presents a certificate from
 * the new root and still accepts the old root's clients.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { strictReady } from '../../../src/cli/commands/status.ts';
import { ManualClock } from '../../../src/core/clock.ts';
import { createMesh, type Mesh } from '../../../src/index.ts';
import { createCsr, generateKeyPair } from '../../../src/security/pki/index.ts';
import { plainGet, tlsGet } from '../../inbound/mtls-helpers.ts';
import { startTestControlPlane, type TestControlPlane, until } from '../client-helpers.ts';
import { api } from '../server/helpers.ts';

const opened: { close(): Promise<void> }[] = [];
after(async () => {
  for (const o of opened.reverse()) await o.close();
});

function listen(server: Server): Promise<number> {
  opened.push({ close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
}

async function clientCert(t: TestControlPlane, admin: string): Promise<{ key: string; cert: string; ca: string }> {
  const keys = generateKeyPair();
  const r = await api(t.cp.url, 'POST', '/v1/certificates', { token: admin, body: { csr: await createCsr(keys, { spiffeId: 'spiffe://cluster.local/ns/default/sa/sleep' }), namespace: 'default', serviceAccount: 'sleep' } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { key: keys.privateKeyPem, cert: r.body.certChain, ca: r.body.trustBundle.join('') };
}

describe("a mesh serving with the control plane's certificate", () => {
  it('accepts mTLS from a control-plane-issued client and plaintext (PERMISSIVE); the status counts both; a rotation swaps the server certificate', async () => {
    const t = await startTestControlPlane({}, { certTtlMs: 120_000 });
    opened.push(t);
    const admin = await t.cp.mintToken({ admin: true });
    const clock = new ManualClock();
    const mesh: Mesh = await createMesh({ service: 'httpbin', controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'httpbin', namespace: 'default', serviceAccount: 'httpbin' }), drainMs: 0, clock, logger: { warn: () => undefined } });
    opened.push(mesh);
    const port = await listen(
      mesh.createServer((req: IncomingMessage, res: ServerResponse) => {
        res.end((req as { meshlet?: { peer?: { principal: string } } }).meshlet?.peer?.principal ?? 'none');
      }),
    );
    const sleep = await clientCert(t, admin);
    const mtls = await tlsGet(port, sleep);
    assert.deepEqual({ status: (mtls as { status: number }).status, body: (mtls as { body: string }).body }, { status: 200, body: 'spiffe://cluster.local/ns/default/sa/sleep' });
    const first = mesh.credentials.current!;
    assert.equal((mtls as { serverSerial: string }).serverSerial, new X509Certificate(first.certChain).serialNumber, 'the server presents the certificate the control plane issued');
    const plain = await plainGet(port);
    assert.equal((plain as { status: number }).status, 200);
    assert.deepEqual({ plaintext: mesh.diagnostics().inboundTls.plaintext, mtls: mesh.diagnostics().inboundTls.mtls }, { plaintext: 1, mtls: 1 });

    // A rotation pushes the bundle (a credential change: the mesh reports its counts with it).
    await t.cp.ca.rotate({});
    await until(() => t.cp.status().workloads.some((w) => w.inboundTls?.mtls === 1 && w.inboundTls.plaintext === 1), 'the status to show the counts');
    const row = t.cp.status().workloads.find((w) => w.service === 'httpbin' && w.inboundTls !== undefined)!;
    assert.equal(row.identity?.spiffeId, 'spiffe://cluster.local/ns/default/sa/httpbin');
    // The mesh's ManualClock starts at 0, which reads as the process's start (as the system clock's
    // readings do): the plaintext request came then, and is reported in whole Unix milliseconds.
    const last = row.inboundTls?.lastPlaintextAt ?? Number.NaN;
    assert.equal(last, Math.round(performance.timeOrigin));
    assert.equal(strictReady(row, last + 600_000), `no: 1 plaintext request, the last ${new Date(last).toISOString()} (10m ago)`);
    // A time no Date holds (from a control plane that let it through) is printed, not thrown over the table.
    assert.match(strictReady({ ...row, inboundTls: { ...row.inboundTls!, lastPlaintextAt: 9e15 } }, last), /the last 9000000000000000 \(not a date\)/);

    // Renewal after the rotation: the server's certificate comes from the new root; the old root's client is still accepted.
    clock.advance(Math.floor((first.notAfter - Date.now()) / 2) + 3000);
    await until(() => mesh.credentials.current!.certChain !== first.certChain, 'the renewal');
    const again = await tlsGet(port, { ...sleep, ca: mesh.credentials.current!.trustBundle });
    assert.equal((again as { status: number }).status, 200, JSON.stringify(again));
    assert.equal((again as { serverSerial: string }).serverSerial, new X509Certificate(mesh.credentials.current!.certChain).serialNumber);
    assert.notEqual((again as { serverSerial: string }).serverSerial, (mtls as { serverSerial: string }).serverSerial);
  });
});
