/**
 * A TCP server that accepts and holds every connection, answering nothing: a connect timeout's
 * upstream (the TCP connect succeeds; the HTTP/2 settings or the TLS handshake never come).
 *
 * @module
 */
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';

export interface Blackhole {
  readonly server: Server;
  readonly port: number;
  /** Every connection accepted, in order. */
  readonly sockets: Socket[];
  /** The connections closed, in order. */
  readonly closed: Socket[];
  /** Resolves once the `n`th connection has sent its first bytes (the HTTP/2 preface or a TLS ClientHello). */
  connected(n: number): Promise<void>;
  /** Destroys every connection and stops listening. */
  close(): void;
}

/** Starts a {@link Blackhole} on 127.0.0.1, port 0. */
export async function blackhole(): Promise<Blackhole> {
  const sockets: Socket[] = [];
  const closed: Socket[] = [];
  let wake: (() => void) | undefined;
  const server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => undefined);
    s.on('close', () => closed.push(s));
    // Wait for the client's first bytes, then say nothing.
    s.once('data', () => wake?.());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const connected = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (sockets.length >= n && sockets[n - 1]?.bytesRead !== 0) resolve();
      };
      wake = check;
      check();
    });
  const close = () => {
    for (const s of sockets) s.destroy();
    server.close();
  };
  return { server, port: (server.address() as AddressInfo).port, sockets, closed, connected, close };
}

/** Lets the client and the sockets take `n` turns of the event loop (no time is asserted). */
export async function turns(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/**
 * Starts a call toward `h` (`start`) and checks it waits for the connect timeout on the mesh's
 * ManualClock: not ended 1 ms before `timeoutMs`, ended once it passes (a few turns for the
 * failure to come through); the call's result.
 */
export async function endsAtConnectTimeout<T>(h: Blackhole, clock: { advance(ms: number): void }, timeoutMs: number, start: () => Promise<T>): Promise<T> {
  let ended = false;
  const pending = start().finally(() => (ended = true));
  await h.connected(1);
  clock.advance(timeoutMs - 1);
  await turns();
  if (ended) throw new Error(`the call ended before the connect timeout (${timeoutMs} ms)`);
  clock.advance(1);
  for (let i = 0; i < 500 && !ended; i++) await turns(1);
  if (!ended) throw new Error(`the call did not end at the connect timeout (${timeoutMs} ms)`);
  return pending;
}
