/**
 * node:https upstreams on 127.0.0.1 for client TLS tests, independent of meshlet's own server
 * side: each records, per request, what the handshake carried (SNI, ALPN, the client
 * certificate's SANs and fingerprint) so tests can check what meshlet sent.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** What one request's connection carried. */
export interface SeenTls {
  readonly url: string;
  readonly servername: string | false | undefined;
  readonly alpn: string | false | null;
  /** The client certificate's `subjectaltname`, '' when none was presented. */
  readonly clientSans: string;
  readonly clientFingerprint: string;
  /** The client port: requests on one connection share it. */
  readonly remotePort: number | undefined;
}

export interface TlsUpstream {
  readonly port: number;
  readonly seen: SeenTls[];
  /** Handshakes that failed on the server's side (its reason). */
  readonly refused: string[];
  /** Holds the next request until the returned function is called. */
  hold(): () => void;
  close(): Promise<void>;
}

/** Starts an HTTPS upstream; `ca` + `requestCert` make it an mTLS server that refuses clients without a certificate from `ca`. */
export async function startTlsUpstream(o: { cert: string; key: string; ca?: string; requestCert?: boolean; alpn?: string[]; name?: string }): Promise<TlsUpstream> {
  const seen: SeenTls[] = [];
  const refused: string[] = [];
  let holds: Promise<void>[] = [];
  const server: Server = createServer(
    { cert: o.cert, key: o.key, ca: o.ca, requestCert: o.requestCert ?? false, rejectUnauthorized: o.requestCert ?? false, ...(o.alpn === undefined ? {} : { ALPNProtocols: o.alpn }) },
    async (req, res) => {
      const s = req.socket as TLSSocket;
      const peer = s.getPeerCertificate();
      seen.push({ url: req.url ?? '', servername: (s as { servername?: string | false }).servername, alpn: s.alpnProtocol, clientSans: peer?.subjectaltname ?? '', clientFingerprint: peer?.fingerprint256 ?? '', remotePort: s.remotePort });
      const hold = holds.shift();
      for await (const _ of req) {
        // drain the body
      }
      if (hold !== undefined) await hold;
      res.setHeader('x-upstream', o.name ?? 'tls');
      res.end(o.name ?? 'tls');
    },
  );
  server.on('tlsClientError', (err) => refused.push(String((err as { code?: string }).code ?? err.message)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    refused,
    hold() {
      let release!: () => void;
      holds.push(new Promise<void>((r) => (release = r)));
      return () => release();
    },
    close: () =>
      new Promise<void>((r) => {
        holds = [];
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** The error a mesh.fetch that must fail rejects with (fails the test if it answers instead). */
export async function failure(mesh: { fetch(url: string): Promise<Response> }, url: string): Promise<Error> {
  try {
    const r = await mesh.fetch(url);
    assert.fail(`expected a failure, got ${r.status} ${await r.text()}`);
  } catch (e) {
    return e as Error;
  }
}
