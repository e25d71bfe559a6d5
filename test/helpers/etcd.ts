/**
 * Starts a real single-member etcd (Debian's `etcd-server`) on free loopback ports with a
 * temporary data dir, for tests. Election/heartbeat timings are shortened so the member
 * becomes leader fast and etcd's minimum lease TTL drops to 1 s (with the defaults etcd
 * silently raises a 1 s TTL to 2 s).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TOOLS } from './tools.ts';
import { deadPort } from './upstreams.ts';

export interface EtcdOptions {
  /** Reuse a data dir (and keep it on stop). */
  dataDir?: string;
  clientPort?: number;
  peerPort?: number;
  /** Milliseconds to wait for `/health`. Default 15000. */
  startTimeoutMs?: number;
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
  /** Kills etcd and removes the data dir. */
  stop(): Promise<void>;
}

function findEtcd(): string {
  const bin = TOOLS.etcd.find();
  if (bin === undefined) throw new Error(`etcd is not installed: these tests need a real etcd. Install ${TOOLS.etcd.install}.`);
  return bin;
}

/** A free TCP port on 127.0.0.1 (bound then released): the upstream helpers' `deadPort`. */
export const freePort = deadPort;

async function waitHealthy(endpoint: string, child: ChildProcess, log: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}:\n${log()}`);
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(500) });
      const body = (await res.json()) as { health?: string };
      if (body.health === 'true') return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`etcd at ${endpoint} not healthy after ${timeoutMs} ms:\n${log()}`);
}

export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdServer> {
  const bin = findEtcd();
  const ownDir = options.dataDir === undefined;
  const base = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'meshlet-etcd-')));
  const clientPort = options.clientPort ?? (await freePort());
  const peerPort = options.peerPort ?? (await freePort());
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  let child: ChildProcess | undefined;
  let output = '';

  const start = async (): Promise<void> => {
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
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    const keep = (d: Buffer): void => {
      output = (output + d.toString()).slice(-8000);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    await waitHealthy(client, proc, () => output, options.startTimeoutMs ?? 15_000);
  };

  const kill = async (hard = false): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill(hard ? 'SIGKILL' : 'SIGTERM');
    await exited;
  };

  await start();
  return {
    endpoints: [client],
    dataDir: base,
    clientPort,
    peerPort,
    kill,
    start,
    async stop() {
      await kill(true);
      if (ownDir) await rm(base, { recursive: true, force: true });
    },
  };
}
