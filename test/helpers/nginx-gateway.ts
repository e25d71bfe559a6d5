/**
 * An east-west gateway that is not meshlet: Debian's nginx with its stream module, routing TLS
 * connections by their SNI (`ssl_preread on;` + `map $ssl_preread_server_name $upstream`) without
 * terminating them — what Istio's AUTO_PASSTHROUGH gateway on port 15443 does. Each session is
 * logged (`<sni> <upstream>`) when it ends.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { NGINX_STREAM_MODULE, TOOLS } from './tools.ts';
import { freePort } from './upstreams.ts';

export interface SniGateway {
  readonly address: string;
  readonly port: number;
  /** The sessions that ended so far: `<sni> <upstream address>` each. */
  sessions(): string[];
  /** Waits (up to 5 s) until a session with this SNI has ended and been logged. */
  sessionEnded(sni: string): Promise<string>;
  stop(): Promise<void>;
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts nginx on `address` (on `at`, else a free port): SNI → `host:port` for each of `routes`; anything else goes nowhere. */
export async function startSniGateway(address: string, routes: Readonly<Record<string, string>>, at?: number): Promise<SniGateway> {
  const bin = TOOLS.nginx.find();
  if (bin === undefined) throw new Error('nginx is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-nginx-'));
  const port = at ?? (await freePort());
  const map = Object.entries(routes)
    .map(([sni, to]) => `    ${sni} ${to};`)
    .join('\n');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `load_module ${NGINX_STREAM_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
stream {
  log_format sni '$ssl_preread_server_name $upstream_addr';
  access_log ${dir}/access.log sni;
  map_hash_bucket_size 256;
  map $ssl_preread_server_name $upstream {
${map}
    default 127.0.0.1:1;
  }
  server {
    listen ${address}:${port};
    ssl_preread on;
    proxy_pass $upstream;
  }
}
`,
  );
  const proc: ChildProcess = spawn(bin, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const errorLog = () => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  // Ready once it accepts connections (or failed once it exited); a failed start leaves nothing behind.
  const fail = async (why: string): Promise<never> => {
    const text = `${why}: ${stderr}${errorLog()}`;
    if (proc.exitCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
    throw new Error(text);
  };
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) await fail(`nginx exited (${proc.exitCode})`);
    if (await canConnect(address, port)) break;
    if (i > 200) await fail(`nginx did not listen on ${address}:${port} within 10 s`);
    await delay(50);
  }
  const sessions = () => {
    try {
      return readFileSync(join(dir, 'access.log'), 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith(' '));
    } catch {
      return [];
    }
  };
  return {
    address,
    port,
    sessions,
    async sessionEnded(sni) {
      for (let i = 0; i < 100; i++) {
        const hit = sessions().find((l) => l.startsWith(`${sni} `));
        if (hit !== undefined) return hit;
        await delay(50);
      }
      throw new Error(`no session with SNI ${sni} ended at the gateway; sessions: ${JSON.stringify(sessions())}`);
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
