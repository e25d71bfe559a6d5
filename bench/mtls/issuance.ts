/**
 * Certificate issuance by the control plane's CA: how many CSRs per second one `meshlet
 * control-plane` process signs over real HTTP, and what 1,000 workloads renewing at once cost it.
 *
 *   node_modules/.bin/node bench/mtls/issuance.ts [--csrs N] [--concurrency N] [--workloads N] [--no-write]
 *
 * The control plane runs as its own process (the CLI from src/, on 127.0.0.1, a generated root);
 * its CPU time (utime + stime from /proc/<pid>/stat) and RSS (/proc/<pid>/status) are read around
 * each phase, so the figures are the control plane's, not the load generator's. Keys and CSRs are
 * made before the clock starts (ECDSA P-256, as meshes make them).
 *
 * Phases:
 *   throughput  --csrs (2000) CSRs from one workload token, --concurrency (16) in flight on
 *               keep-alive connections: CSRs/s, control-plane CPU ms per CSR.
 *   renewal     --workloads (1000) workloads, each with its own token, renew once, all at once
 *               (--concurrency in flight): wall time until the last has its certificate, the
 *               control plane's CPU ms for all of them, RSS before and after.
 * Each phase is preceded by 200 unmeasured CSRs (cold code, token cache).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { TokenAuthority } from '../../src/control-plane-server/auth.ts';
import { createCsr, generateKeyPair } from '../../src/security/pki/index.ts';
import { writeSection } from '../lib/results.ts';
import { freePort } from '../outbound/nginx.ts';

const { values: args } = parseArgs({
  options: {
    csrs: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    workloads: { type: 'string', default: '1000' },
    'no-write': { type: 'boolean', default: false },
  },
});
const CSRS = Number(args.csrs);
const CONCURRENCY = Number(args.concurrency);
const WORKLOADS = Number(args.workloads);
const WARMUP = 200;
const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const TICK_MS = 1000 / 100; // USER_HZ

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

async function start(dataDir: string, configDir: string): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const proc = spawn(process.execPath, [CLI, 'control-plane', '--config', configDir, '--data-dir', dataDir, '--host', '127.0.0.1', '--port', String(port)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 400; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { url, proc };
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the control plane did not start');
}

async function csrs(n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await createCsr(generateKeyPair(), { spiffeId: 'spiffe://cluster.local/ns/default/sa/default' }));
  return out;
}

/** Sends every (token, csr) with `concurrency` in flight; resolves the wall time in ms. */
async function send(pool: Pool, jobs: readonly { token: string; csr: string }[], concurrency: number): Promise<number> {
  let next = 0;
  let failed = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < jobs.length) {
        const job = jobs[next++]!;
        const res = await pool.request({ path: '/v1/certificates', method: 'POST', headers: { authorization: `Bearer ${job.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ csr: job.csr }) });
        const text = await res.body.text();
        if (res.statusCode !== 200) {
          failed++;
          if (failed === 1) console.error(`refused: ${res.statusCode} ${text}`);
        }
      }
    }),
  );
  if (failed > 0) throw new Error(`${failed} CSRs failed`);
  return performance.now() - t0;
}

const dir = mkdtempSync(join(tmpdir(), 'meshlet-bench-issuance-'));
const configDir = join(dir, 'config');
const dataDir = join(dir, 'data');
(await import('node:fs')).mkdirSync(configDir);
const cp = await start(dataDir, configDir);
const pool = new Pool(cp.url, { connections: CONCURRENCY, pipelining: 1 });
try {
  const auth = await TokenAuthority.open(dataDir);
  const one = await auth.mintToken({ service: 'bench', namespace: 'default' });
  process.stderr.write(`making ${WARMUP * 2 + CSRS + WORKLOADS} keys and CSRs…\n`);
  const pool1 = await csrs(WARMUP + CSRS);
  const tokens: string[] = [];
  for (let i = 0; i < WORKLOADS; i++) tokens.push(await auth.mintToken({ service: `svc-${i}`, namespace: `ns-${i % 20}`, serviceAccount: `sa-${i}` }));
  const pool2 = await csrs(WARMUP + WORKLOADS);
  const pid = cp.proc.pid!;

  // Throughput.
  await send(
    pool,
    pool1.slice(0, WARMUP).map((csr) => ({ token: one, csr })),
    CONCURRENCY,
  );
  const cpu0 = cpuMs(pid);
  const wall = await send(
    pool,
    pool1.slice(WARMUP).map((csr) => ({ token: one, csr })),
    CONCURRENCY,
  );
  const cpu1 = cpuMs(pid);
  const rate = CSRS / (wall / 1000);

  // 1,000 workloads renewing at once (each token seen for the first time: its verification is part of the cost).
  await send(
    pool,
    pool2.slice(0, WARMUP).map((csr) => ({ token: one, csr })),
    CONCURRENCY,
  );
  const rssBefore = rssMb(pid);
  const cpu2 = cpuMs(pid);
  const renewWall = await send(
    pool,
    pool2.slice(WARMUP).map((csr, i) => ({ token: tokens[i]!, csr })),
    CONCURRENCY,
  );
  const cpu3 = cpuMs(pid);
  const rssAfter = rssMb(pid);

  const rows = [
    `| CSRs signed, one workload token | ${CSRS} | ${CONCURRENCY} | ${wall.toFixed(0)} ms | **${rate.toFixed(0)} CSRs/s** | ${((cpu1 - cpu0) / CSRS).toFixed(2)} ms |`,
    `| ${WORKLOADS} workloads renewing at once (own tokens) | ${WORKLOADS} | ${CONCURRENCY} | **${renewWall.toFixed(0)} ms** | ${(WORKLOADS / (renewWall / 1000)).toFixed(0)} CSRs/s | ${((cpu3 - cpu2) / WORKLOADS).toFixed(2)} ms |`,
  ];
  const body = `One \`meshlet control-plane\` process (src/ CLI, generated ECDSA P-256 root) on 127.0.0.1; CSRs (ECDSA P-256, made beforehand) sent over ${CONCURRENCY} keep-alive HTTP/1.1 connections. CPU is the control plane's own (utime + stime of its process, 10 ms ticks).

| what | CSRs | in flight | wall | rate | control-plane CPU per CSR |
|---|---|---|---|---|---|
${rows.join('\n')}

- ${WORKLOADS} workloads renewing cost the control plane **${(cpu3 - cpu2).toFixed(0)} ms of CPU** in all; RSS ${rssBefore.toFixed(0)} MB before → ${rssAfter.toFixed(0)} MB after.
- With the default 24 h certificates renewed at half their lifetime, 1,000 workloads make one CSR each every 12 h: about 0.02 CSRs/s on average; a rotation or a restart of every workload at once is the burst above.
- Each CSR: token check (Ed25519, cached per token), CSR parse and signature check, one ECDSA P-256 signature for the certificate, JSON answer with the chain and the trust bundle. The load generator shares the machine's 2 vCPUs.`;
  console.log(body);
  if (args['no-write'] !== true) writeSection('mtls-issuance', 'mTLS: certificate issuance by the control plane (issue 14)', 'npm run bench:mtls:issuance', body);
} finally {
  await pool.close();
  cp.proc.kill('SIGTERM');
  await new Promise((r) => cp.proc.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
