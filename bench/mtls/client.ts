/**
 * The bench's client process, one per variant:
 *   plain      undici.request through mesh.dispatcher, DestinationRule tls DISABLE
 *   mtls       the same with ISTIO_MUTUAL (the mesh's certificate, SPIFFE ID of the server checked)
 *   handshake  new TLS connections to the mesh server with the client certificate: full handshakes,
 *              or resumed ones (the last session's ticket offered)
 * It runs a slice of load when the parent asks and answers with what it did.
 */
import { readFileSync } from 'node:fs';
import { connect, type TLSSocket } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { createMesh } from '../../src/index.ts';

const [variant, dir, portText] = process.argv.slice(2) as [string, string, string];
const port = Number(portText);

interface Slice {
  readonly ms: number;
  readonly concurrency: number;
  readonly mode?: 'full' | 'resumed';
}

let run: (s: Slice) => Promise<{ count: number; failures: number; latenciesUs: number[]; resumed: number }>;

if (variant === 'handshake') {
  const key = readFileSync(`${dir}/client.key`);
  const cert = readFileSync(`${dir}/client.crt`);
  const ca = readFileSync(`${dir}/root.crt`);
  let session: Buffer | undefined;
  // Resolves with [handshake µs, resumed] once the handshake is done; the connection is then
  // closed at once. The session ticket of a first full handshake is kept and offered by every
  // resumed connection (TLS 1.3 tickets stay valid for the server's ticket lifetime).
  const once = (resume: boolean) =>
    new Promise<[number, boolean]>((resolve, reject) => {
      const t0 = performance.now();
      const s: TLSSocket = connect({ host: '127.0.0.1', port, key, cert, ca, servername: 'outbound_.0_._.server.bench.svc.cluster.local', ALPNProtocols: ['istio-http/1.1', 'http/1.1'], checkServerIdentity: () => undefined, session: resume ? session : undefined });
      s.on('session', (t: Buffer) => {
        session ??= t;
      });
      s.once('secureConnect', () => {
        const us = (performance.now() - t0) * 1000;
        const reused = s.isSessionReused();
        if (resume && session === undefined) {
          // The first connection waits for its ticket.
          s.once('session', () => s.end());
        } else s.end();
        s.once('close', () => resolve([us, reused]));
      });
      s.once('error', reject);
    });
  run = async ({ ms, mode }) => {
    const end = performance.now() + ms;
    const latenciesUs: number[] = [];
    let count = 0;
    let failures = 0;
    let resumed = 0;
    while (performance.now() < end) {
      try {
        const [us, reused] = await once(mode === 'resumed');
        if (reused) resumed++;
        count++;
        latenciesUs.push(us);
      } catch {
        failures++;
      }
    }
    return { count, failures, latenciesUs, resumed };
  };
} else {
  const mesh = await createMesh({
    service: 'client',
    namespace: 'bench',
    serviceAccount: 'client',
    config: `${dir}/client-${variant}`,
    identity: { certFile: `${dir}/client.crt`, keyFile: `${dir}/client.key`, caFile: `${dir}/root.crt` },
    logger: { warn: (m: string) => console.error(m), error: (m: string) => console.error(m) },
  });
  const url = `http://server.bench.svc.cluster.local:${port}/`;
  run = async ({ ms, concurrency }) => {
    const end = performance.now() + ms;
    const latenciesUs: number[] = [];
    let count = 0;
    let failures = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          const t0 = performance.now();
          try {
            const r = await request(url, { dispatcher: mesh.dispatcher });
            await r.body.dump();
            if (r.statusCode === 200) count++;
            else failures++;
          } catch {
            failures++;
          }
          if (concurrency === 1) latenciesUs.push((performance.now() - t0) * 1000);
        }
      }),
    );
    return { count, failures, latenciesUs, resumed: 0 };
  };
  process.on('disconnect', () => void mesh.close().then(() => process.exit(0)));
}

process.on('message', (m: Slice) => {
  void run(m).then((r) => process.send?.(r));
});
process.send?.({ ready: true });
