/**
 * Starts a real single-member etcd (Debian's `etcd-server`) on free loopback ports with a
 * temporary data dir, for tests. Election/heartbeat timings are shortened so the member
 * becomes leader fast and etcd's minimum lease TTL drops to 1 s (with the defaults etcd
 * silently raises a 1 s TTL to 2 s).
 *
 * etcd cannot listen on port 0, so its ports are picked first and bound by etcd a moment
 * later. Two things keep another process from taking them in between: the ports come from
 * below the kernel's ephemeral range (no port-0 listener or outgoing connection is ever given
 * one), and a start that fails with etcd's `bind: address already in use` is tried again on
 * fresh ports (another test picking the same port the same way).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { TOOLS } from './tools.ts';
import { freePort } from './upstreams.ts';

export { freePort };

export interface EtcdOptions {
  /** Reuse a data dir (and keep it on stop). */
  dataDir?: string;
  clientPort?: number;
  peerPort?: number;
  /** Where unset ports come from. Default {@link freePort}. */
  pickPort?: () => Promise<number>;
  /** Milliseconds to wait for `/health`. Default 15000. */
  startTimeoutMs?: number;
  /**
   * Serve clients over TLS (`https://` endpoints) with this server certificate, and require a
   * client certificate signed by `caFile` (etcd's `--client-cert-auth`). `client` is the
   * certificate the helper itself checks `/health` with.
   */
  tls?: { certFile: string; keyFile: string; caFile: string; client: { cert: string; key: string } };
}

export interface EtcdServer {
  readonly endpoints: string[];
  readonly dataDir: string;
  readonly clientPort: number;
  readonly peerPort: number;
  /** Kills etcd (SIGKILL when `hard`) and keeps the data dir: `start()` brings it back on the same ports and data. */
  kill(hard?: boolean): Promise<void>;
  /** Starts etcd again after `kill()`. */
  start(): Promise<void>;
  /** SIGSTOP: etcd keeps its ports (connections are accepted) and answers nothing, as in a partition. */
  freeze(): void;
  /** SIGCONT after {@link freeze}. */
  thaw(): void;
  /** Kills etcd and removes the data dir. */
  stop(): Promise<void>;
}

function findEtcd(): string {
  const bin = TOOLS.etcd.find();
  if (bin === undefined) throw new Error(`etcd is not installed: these tests need a real etcd. Install ${TOOLS.etcd.install}.`);
  return bin;
}

/** etcd exited because a port it was given is taken, or another etcd answers on it. */
class PortTakenError extends Error {}

const BIND_FAILED = /bind: address already in use/;

type Fetch = (url: string, init: { method?: string; body?: string; signal: AbortSignal }) => Promise<{ json(): Promise<unknown> }>;

async function waitHealthy(endpoint: string, peer: string, child: ChildProcess, log: () => string, timeoutMs: number, fetch: Fetch): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      const Failure = BIND_FAILED.test(log()) ? PortTakenError : Error;
      throw new Failure(`etcd exited with ${child.exitCode}:\n${log()}`);
    }
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(500) });
      const body = (await res.json()) as { health?: string };
      if (body.health === 'true') {
        // Ours, not an etcd that held the client port while ours failed to bind it (and has not exited yet).
        const list = await fetch(`${endpoint}/v3/cluster/member/list`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(500) });
        const members = ((await list.json()) as { members?: { peerURLs?: string[] }[] }).members ?? [];
        if (members.some((m) => m.peerURLs?.includes(peer) === true)) return;
        throw new PortTakenError(`another etcd answers on ${endpoint} (members ${JSON.stringify(members)})`);
      }
    } catch (err) {
      if (err instanceof PortTakenError) throw err;
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`etcd at ${endpoint} not healthy after ${timeoutMs} ms:\n${log()}`);
}

/** Starts made on fresh ports when etcd's ports turn out taken. */
const PORT_ATTEMPTS = 5;

export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdServer> {
  const bin = findEtcd();
  const ownDir = options.dataDir === undefined;
  const base = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'meshlet-etcd-')));
  let clientPort = 0;
  let peerPort = 0;
  let client = '';
  let peer = '';
  const pickPorts = async (): Promise<void> => {
    const pick = options.pickPort ?? freePort;
    clientPort = options.clientPort ?? (await pick());
    do peerPort = options.peerPort ?? (await pick());
    while (peerPort === clientPort);
    client = `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${clientPort}`;
    peer = `http://127.0.0.1:${peerPort}`;
  };
  let child: ChildProcess | undefined;
  let output = '';
  const { tls } = options;
  const agent = tls === undefined ? undefined : new Agent({ connect: { ca: readFileSync(tls.caFile, 'utf8'), cert: tls.client.cert, key: tls.client.key } });
  const get: Fetch = agent === undefined ? fetch : (url, init) => undiciFetch(url, { ...init, dispatcher: agent });

  /** One start of etcd on the current ports; PortTakenError when they turned out taken (etcd stopped again). */
  const startOnce = async (): Promise<void> => {
    output = '';
    const proc = spawn(
      bin,
      [
        '--name', 'default',
        '--data-dir', join(base, 'data'),
        '--listen-client-urls', client,
        '--advertise-client-urls', client,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `default=${peer}`,
        '--heartbeat-interval', '10',
        '--election-timeout', '100',
        '--logger', 'zap',
        '--log-level', 'warn',
        ...(tls === undefined ? [] : ['--cert-file', tls.certFile, '--key-file', tls.keyFile, '--client-cert-auth', '--trusted-ca-file', tls.caFile]),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    const keep = (d: Buffer): void => {
      output = (output + d.toString()).slice(-8000);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    try {
      await waitHealthy(client, peer, proc, () => output, options.startTimeoutMs ?? 15_000, get);
    } catch (err) {
      await kill(true);
      throw err;
    }
  };

  const kill = async (hard = false): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill(hard ? 'SIGKILL' : 'SIGTERM');
    await exited;
  };

  /** A restart keeps its ports (clients know them): a taken one is waited for a little. */
  const start = async (): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await startOnce();
      } catch (err) {
        if (!(err instanceof PortTakenError) || attempt === PORT_ATTEMPTS) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };

  const fixedPorts = options.clientPort !== undefined || options.peerPort !== undefined;
  for (let attempt = 1; ; attempt++) {
    await pickPorts();
    try {
      await startOnce();
      break;
    } catch (err) {
      if (err instanceof PortTakenError && !fixedPorts && attempt < PORT_ATTEMPTS) continue;
      if (ownDir) await rm(base, { recursive: true, force: true });
      throw err;
    }
  }
  return {
    endpoints: [client],
    dataDir: base,
    clientPort,
    peerPort,
    kill,
    start,
    freeze: () => void child?.kill('SIGSTOP'),
    thaw: () => void child?.kill('SIGCONT'),
    async stop() {
      await kill(true);
      await agent?.close();
      if (ownDir) await rm(base, { recursive: true, force: true });
    },
  };
}
