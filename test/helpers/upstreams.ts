/**
 * Real node:http upstreams on 127.0.0.1 for data-plane tests: each counts its hits and
 * answers with a behaviour the test sets (status, delay, reset, headers), and each reply names
 * the upstream so tests can tell who served a request.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What an upstream does with one request. */
export type Behaviour = (req: IncomingMessage, res: ServerResponse, hit: number) => void | Promise<void>;

export interface Upstream {
  readonly name: string;
  /** The loopback address it listens on (127.0.0.1 unless asked otherwise). */
  readonly host: string;
  readonly port: number;
  hits: number;
  /** Requests as received: method, url, headers, body. */
  readonly seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[];
  behaviour: Behaviour;
  close(): Promise<void>;
}

/** Default behaviour: 200 with `name` as the body. */
export function ok(name: string): Behaviour {
  return (_req, res) => {
    res.setHeader('x-upstream', name);
    res.end(name);
  };
}

/** Answers every request with `status` and `body` (an upstream that fails, for outlier detection and retries). */
export function answering(status: number, body: string): Behaviour {
  return (_req, res) => {
    res.statusCode = status;
    res.end(body);
  };
}

/**
 * Starts an upstream on `host` (any 127.x.y.z on Linux, which routes all of 127/8 to the
 * loopback interface), port 0.
 */
export async function startUpstream(name: string, behaviour?: Behaviour, host = '127.0.0.1'): Promise<Upstream> {
  const u: Upstream = {
    name,
    host,
    port: 0,
    hits: 0,
    seen: [],
    behaviour: behaviour ?? ok(name),
    close: async () => undefined,
  };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    try {
      for await (const c of req) chunks.push(c as Buffer);
    } catch {
      return; // the client gave up mid-upload: nothing to answer
    }
    u.hits++;
    u.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
    res.setHeader('x-upstream', name);
    await u.behaviour(req, res, u.hits);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  (u as { port: number }).port = (server.address() as AddressInfo).port;
  u.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return u;
}

/** A port the kernel handed a port-0 listener and took back (it may hand it out again at any time). */
async function portZeroPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The first port of the kernel's ephemeral range (what port 0 and outgoing connections get), or 0 when unknown or too low to leave room below it. */
function ephemeralStart(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return low > FIXED_FROM + 1000 ? low : 0;
  } catch {
    return 0;
  }
}

/** Where picked ports start: above the fixed ports tests and products use (15020, 19081…). */
const FIXED_FROM = 20_000;
const EPHEMERAL_START = ephemeralStart();

function canListen(port: number): Promise<boolean> {
  const s = createNetServer();
  return new Promise((resolve) => {
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A TCP port on 127.0.0.1, free now and below the kernel's ephemeral range, so that nothing but
 * a listener asking for that very port can take it before it is used (or, for a dead endpoint,
 * while it is meant to refuse) — and reserved for this process, so that another test file's
 * freePort() (the suite runs files in parallel processes) cannot pick it too while it waits
 * unbound (a dead endpoint, a control plane started later on it). Falls back to a port-0 one where
 * the range is unknown.
 */
export async function freePort(): Promise<number> {
  if (EPHEMERAL_START === 0) return portZeroPort();
  for (let i = 0; i < 100; i++) {
    const port = FIXED_FROM + Math.floor(Math.random() * (EPHEMERAL_START - FIXED_FROM));
    if (reserve(port) && (await canListen(port))) return port;
  }
  return portZeroPort();
}

/** Where test processes reserve the ports freePort() gave them: a file per port, made exclusively, removed when the process exits. */
const RESERVED_DIR = join(tmpdir(), 'meshlet-test-ports');
const reserved: string[] = [];
let releasing = false;

function reserve(port: number): boolean {
  const file = join(RESERVED_DIR, String(port));
  try {
    if (!releasing) {
      mkdirSync(RESERVED_DIR, { recursive: true });
      process.once('exit', release);
      releasing = true;
    }
    closeSync(openSync(file, 'wx'));
  } catch {
    // Another process holds it (or one that ended without cleaning up: the range is large).
    return false;
  }
  reserved.push(file);
  return true;
}

function release(): void {
  for (const file of reserved) {
    try {
      unlinkSync(file);
    } catch {
      // Gone already.
    }
  }
}

/**
 * A port with nothing listening (connection refused) — and nothing that will: it comes from
 * {@link freePort}, so another test's port-0 server cannot be given it while it is meant to refuse.
 */
export function deadPort(): Promise<number> {
  return freePort();
}

/** A ServiceEntry for `host` with one endpoint per upstream (labels per endpoint). */
export function serviceEntry(
  name: string,
  host: string,
  port: number,
  endpoints: { port: number; labels?: Record<string, string>; locality?: string; address?: string }[],
  extra: Record<string, unknown> = {},
): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name, namespace: 'default' },
    spec: {
      hosts: [host],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: port, name: 'http', protocol: 'HTTP' }],
      endpoints: endpoints.map((e) => ({ address: e.address ?? '127.0.0.1', ports: { http: e.port }, labels: e.labels, locality: e.locality })),
      ...extra,
    },
  };
}

export function virtualService(name: string, hosts: string[], http: unknown[]): object {
  return { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: 'default' }, spec: { hosts, http } };
}

export function destinationRule(name: string, host: string, spec: Record<string, unknown>): object {
  return { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name, namespace: 'default' }, spec: { host, ...spec } };
}

/** Reads a fetch response as text with its status, upstream and flags. */
export async function call(mesh: { fetch(u: string, i?: RequestInit): Promise<Response> }, url: string, init?: RequestInit) {
  const res = await mesh.fetch(url, init);
  const body = await res.text();
  return { status: res.status, body, upstream: res.headers.get('x-upstream'), flags: res.headers.get('x-meshlet-response-flags'), headers: res.headers };
}

/** An upstream that answers 503 to every odd request and 200 to every even one (counting from 1); `reset()` starts the count and its log again. */
export async function startFlakyUpstream(name = 'flaky'): Promise<Upstream & { reset(): void }> {
  let n = 0;
  const u = await startUpstream(name, (_req, res) => {
    n++;
    res.statusCode = n % 2 === 1 ? 503 : 200;
    res.end(n % 2 === 1 ? 'down' : 'up');
  });
  return Object.assign(u, {
    reset: () => {
      n = 0;
      u.seen.length = 0;
    },
  });
}
