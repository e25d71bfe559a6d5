/**
 * Clients for the server-side mTLS tests: plaintext HTTP, TLS with or without a client
 * certificate (node:https, a fresh connection each unless an agent is given), and what they saw —
 * the answer, or that the connection was refused before any answer; plus PeerAuthentication
 * documents.
 */
import { request as httpRequest } from 'node:http';
import { type Agent, request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** What a client got: an HTTP answer (with the server certificate's serial for TLS), or a refusal. */
export type Outcome = { readonly status: number; readonly body: string; readonly serverSerial?: string; readonly reused?: boolean } | { readonly refused: string };

/** TLS client settings: a client certificate (or none), the roots to trust, the SNI. */
export interface TlsClient {
  readonly key?: string;
  readonly cert?: string;
  readonly ca: string;
  readonly servername?: string;
  readonly agent?: Agent;
  /** The TLS 1.2 cipher suites offered (OpenSSL names), and the highest and lowest versions. */
  readonly ciphers?: string;
  readonly maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  readonly minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
}

/** A plaintext GET. */
export function plainGet(port: number, path = '/'): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (e: NodeJS.ErrnoException) => resolve({ refused: e.code ?? e.message }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ refused: e.code ?? e.message }));
    req.end();
  });
}

/** A GET over TLS. The server certificate's chain is checked against `ca`; its host name is not (SPIFFE certificates have none). */
export function tlsGet(port: number, c: TlsClient, path = '/'): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        key: c.key,
        cert: c.cert,
        ca: c.ca,
        servername: c.servername,
        agent: c.agent ?? false,
        checkServerIdentity: () => undefined,
        ...(c.ciphers === undefined ? {} : { ciphers: c.ciphers }),
        ...(c.maxVersion === undefined ? {} : { maxVersion: c.maxVersion }),
        ...(c.minVersion === undefined ? {} : { minVersion: c.minVersion }),
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const serverSerial = socket.getPeerCertificate().serialNumber;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (x: string) => (body += x));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, serverSerial, reused: req.reusedSocket }));
        res.on('error', (e: NodeJS.ErrnoException) => resolve({ refused: e.code ?? e.message }));
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ refused: e.code ?? e.message }));
    req.end();
  });
}

/** A PeerAuthentication (mesh-wide in istio-system when `namespace` is istio-system and no selector). */
export function peerAuthentication(name: string, namespace: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name, namespace }, spec };
}

/** An AuthorizationPolicy. */
export function authorizationPolicy(name: string, namespace: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace }, spec };
}

/** One TLS connection kept open, for requests one after another (keep-alive), and the server certificate it got. */
export async function tlsConnection(port: number, c: TlsClient): Promise<{ readonly serverSerial: string; get(path?: string): Promise<{ status: number; body: string }>; close(): void }> {
  const socket = tlsConnect({ host: '127.0.0.1', port, key: c.key, cert: c.cert, ca: c.ca, servername: c.servername, ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  const serverSerial = socket.getPeerCertificate().serialNumber;
  let buffered = '';
  let waiting: (() => void) | undefined;
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    buffered += d;
    waiting?.();
  });
  const read = async (): Promise<{ status: number; body: string }> => {
    for (;;) {
      const end = buffered.indexOf('\r\n\r\n');
      if (end !== -1) {
        const head = buffered.slice(0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? '0');
        if (buffered.length >= end + 4 + length) {
          const body = buffered.slice(end + 4, end + 4 + length);
          buffered = buffered.slice(end + 4 + length);
          return { status: Number(head.split(' ')[1]), body };
        }
      }
      if (socket.destroyed) throw new Error('the connection closed');
      await new Promise<void>((r) => {
        waiting = r;
        socket.once('close', r);
      });
    }
  };
  return {
    serverSerial,
    get(path = '/') {
      socket.write(`GET ${path} HTTP/1.1\r\nhost: httpbin\r\n\r\n`);
      return read();
    },
    close: () => socket.destroy(),
  };
}
