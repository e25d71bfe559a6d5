/**
 * mTLS benchmark: what mutual TLS costs a call through meshlet, next to the same call in plaintext.
 *
 *   node_modules/.bin/node bench/mtls/run.ts [--rounds N] [--slice MS] [--slices N] [--warmup S] [--quick] [--write]
 *
 * One mesh server (mesh.createServer, PERMISSIVE: plaintext and mTLS on one port, its certificate
 * from files issued by meshlet's CA) in its own process on CPU 0; client processes on CPU 1:
 *   plain      undici.request through mesh.dispatcher, DestinationRule tls DISABLE
 *   mtls       the same call with ISTIO_MUTUAL (client certificate, the server's SPIFFE ID checked)
 *   handshake  new TLS connections with the client certificate: full handshakes vs resumed ones
 *              (TLS 1.3 session tickets)
 * Keep-alive phases: requests/s at concurrency 64 and p50 latency at concurrency 1. In each round,
 * the variants of a phase take `--slices` slices of `--slice` ms in turns (A B … B A …), so both meet
 * the same state of this noisy VM; ratios are medians over rounds of each round's mtls/plain pair.
 * The server's CPU is read from /proc around its slices.
 */
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CertificateAuthority, createCsr, generateKeyPair } from '../../src/security/pki/index.ts';
import { median, writeSection } from '../lib/results.ts';

const { values: a } = parseArgs({
  options: {
    rounds: { type: 'string' },
    slice: { type: 'string' },
    slices: { type: 'string' },
    warmup: { type: 'string' },
    quick: { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
  },
});
const quick = a.quick === true;
const ROUNDS = Number(a.rounds ?? (quick ? 3 : 5));
const SLICE_MS = Number(a.slice ?? 250);
const SLICES = Number(a.slices ?? (quick ? 4 : 8));
const WARMUP_S = Number(a.warmup ?? (quick ? 1 : 3));
const C = 64;

// ---------------------------------------------------------------- certificates and config

const dir = mkdtempSync(join(tmpdir(), 'meshlet-bench-mtls-'));
const ca = await CertificateAuthority.createRoot({ trustDomain: 'cluster.local' });
writeFileSync(join(dir, 'root.crt'), ca.rootPem);
for (const [name, sa] of [['server', 'server'], ['client', 'client']] as const) {
  const keys = generateKeyPair();
  const spiffeId = `spiffe://cluster.local/ns/bench/sa/${sa}`;
  const issued = await ca.sign(await createCsr(keys, { spiffeId }), { spiffeId, ttlMs: 24 * 3600_000 });
  writeFileSync(join(dir, `${name}.crt`), issued.certChainPem);
  writeFileSync(join(dir, `${name}.key`), keys.privateKeyPem, { mode: 0o600 });
}
const doc = (o: unknown) => JSON.stringify(o);
mkdirSync(join(dir, 'server-config'));
writeFileSync(join(dir, 'server-config', 'pa.yaml'), doc({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'bench' }, spec: { mtls: { mode: 'PERMISSIVE' } } }));

function clientConfig(variant: 'plain' | 'mtls', port: number): void {
  const d = join(dir, `client-${variant}`);
  mkdirSync(d, { recursive: true });
  const se = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'server', namespace: 'bench' },
    spec: {
      hosts: ['server.bench.svc.cluster.local'],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: port, name: 'http', protocol: 'HTTP' }],
      endpoints: [{ address: '127.0.0.1', labels: { 'security.istio.io/tlsMode': 'istio' }, serviceAccount: 'server' }],
    },
  };
  const dr = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name: 'server', namespace: 'bench' },
    spec: { host: 'server.bench.svc.cluster.local', trafficPolicy: { tls: { mode: variant === 'mtls' ? 'ISTIO_MUTUAL' : 'DISABLE' } } },
  };
  writeFileSync(join(d, 'mesh.yaml'), `${doc(se)}\n---\n${doc(dr)}\n`);
}

// ---------------------------------------------------------------- processes

function cpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) / 100) * 1e6;
}
function taskset(pid: number, cpu: number): void {
  spawnSync('taskset', ['-pc', String(cpu), String(pid)], { stdio: 'ignore' });
}
function forkReady<T>(file: string, args: string[]): Promise<{ proc: ChildProcess; msg: T }> {
  const proc = fork(new URL(file, import.meta.url).pathname, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    proc.once('message', (msg) => resolve({ proc, msg: msg as T }));
    proc.once('exit', (code) => reject(new Error(`${file} ${args[0] ?? ''} exited with ${code}`)));
  });
}

const server = await forkReady<{ port: number }>('./server.ts', [dir]);
const serverPid = server.proc.pid as number;
taskset(serverPid, 0);
const port = server.msg.port;
clientConfig('plain', port);
clientConfig('mtls', port);
taskset(process.pid, 1);

type Variant = 'plain' | 'mtls' | 'handshake';
interface SliceResult {
  count: number;
  failures: number;
  latenciesUs: number[];
  resumed: number;
}
const clients = new Map<Variant, ChildProcess>();
for (const v of ['plain', 'mtls', 'handshake'] as const) {
  const c = await forkReady('./client.ts', [v, dir, String(port)]);
  taskset(c.proc.pid as number, 1);
  clients.set(v, c.proc);
}

function slice(v: Variant, ms: number, concurrency: number, mode?: 'full' | 'resumed'): Promise<SliceResult & { serverCpuUs: number }> {
  const proc = clients.get(v) as ChildProcess;
  const cpu0 = cpuUs(serverPid);
  return new Promise((resolve) => {
    proc.once('message', (r) => resolve({ ...(r as SliceResult), serverCpuUs: cpuUs(serverPid) - cpu0 }));
    proc.send({ ms, concurrency, mode });
  });
}

// ---------------------------------------------------------------- load

interface Tally {
  count: number;
  failures: number;
  serverCpuUs: number;
  ms: number;
  lat: number[];
  resumed: number;
}
const fresh = (): Tally => ({ count: 0, failures: 0, serverCpuUs: 0, ms: 0, lat: [], resumed: 0 });
type Key = 'plain-64' | 'mtls-64' | 'plain-1' | 'mtls-1' | 'full' | 'resumed';
const KEYS: Record<Key, { v: Variant; c: number; mode?: 'full' | 'resumed' }> = {
  'plain-64': { v: 'plain', c: C },
  'mtls-64': { v: 'mtls', c: C },
  'plain-1': { v: 'plain', c: 1 },
  'mtls-1': { v: 'mtls', c: 1 },
  full: { v: 'handshake', c: 1, mode: 'full' },
  resumed: { v: 'handshake', c: 1, mode: 'resumed' },
};
const PAIRS: [Key, Key][] = [
  ['plain-64', 'mtls-64'],
  ['plain-1', 'mtls-1'],
  ['full', 'resumed'],
];

console.log(`warm-up ${WARMUP_S} s each…`);
for (const k of Object.keys(KEYS) as Key[]) await slice(KEYS[k].v, WARMUP_S * 1000, KEYS[k].c, KEYS[k].mode);

const rounds: Map<Key, Tally>[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const t = new Map<Key, Tally>((Object.keys(KEYS) as Key[]).map((k) => [k, fresh()]));
  for (const pair of PAIRS) {
    for (let i = 0; i < SLICES; i++) {
      for (const k of i % 2 === 0 ? pair : [...pair].reverse()) {
        const x = await slice(KEYS[k].v, SLICE_MS, KEYS[k].c, KEYS[k].mode);
        const y = t.get(k) as Tally;
        y.count += x.count;
        y.failures += x.failures;
        y.serverCpuUs += x.serverCpuUs;
        y.ms += SLICE_MS;
        y.resumed += x.resumed;
        for (const l of x.latenciesUs) y.lat.push(l);
      }
    }
  }
  rounds.push(t);
  const rate = (k: Key) => ((t.get(k) as Tally).count / ((t.get(k) as Tally).ms / 1000)).toFixed(0);
  console.log(`round ${r + 1}: plain ${rate('plain-64')} rps, mtls ${rate('mtls-64')} rps; full handshakes ${rate('full')}/s, resumed ${rate('resumed')}/s`);
}

const per = (k: Key) => rounds.map((t) => t.get(k) as Tally);
const rps = (x: Tally) => x.count / (x.ms / 1000);
const p50 = (x: Tally) => median(x.lat);
const scpu = (x: Tally) => x.serverCpuUs / Math.max(1, x.count);
const fails = (ks: Key[]) => ks.reduce((n, k) => n + per(k).reduce((m, x) => m + x.failures, 0), 0);
const ratio = (a: Key, b: Key, f: (x: Tally) => number) => median(per(a).map((x, i) => f(per(b)[i] as Tally) / f(x)));
const diff = (a: Key, b: Key, f: (x: Tally) => number) => median(per(a).map((x, i) => f(per(b)[i] as Tally) - f(x)));

const lines: string[] = [];
lines.push(`${ROUNDS} rounds; in each, the two variants of a row take ${SLICES} slices × ${SLICE_MS} ms in turns. Server (mesh.createServer, PERMISSIVE, certificate from files issued by meshlet's CA, ECDSA P-256) on CPU 0; clients on CPU 1. Calls: undici.request through mesh.dispatcher, 100-byte answers, keep-alive.`);
lines.push('');
lines.push('| keep-alive calls | plaintext | mTLS | mTLS / plaintext (median of rounds) | server CPU/request plaintext | mTLS | failures |');
lines.push('|---|---:|---:|---:|---:|---:|---:|');
lines.push(`| requests/s, concurrency ${C} | ${median(per('plain-64').map(rps)).toFixed(0)} | ${median(per('mtls-64').map(rps)).toFixed(0)} | ×${ratio('plain-64', 'mtls-64', rps).toFixed(2)} | ${median(per('plain-64').map(scpu)).toFixed(1)} µs | ${median(per('mtls-64').map(scpu)).toFixed(1)} µs | ${fails(['plain-64', 'mtls-64'])} |`);
lines.push(`| p50 latency, concurrency 1 | ${(median(per('plain-1').map(p50)) / 1000).toFixed(3)} ms | ${(median(per('mtls-1').map(p50)) / 1000).toFixed(3)} ms | +${diff('plain-1', 'mtls-1', p50).toFixed(0)} µs | ${median(per('plain-1').map(scpu)).toFixed(1)} µs | ${median(per('mtls-1').map(scpu)).toFixed(1)} µs | ${fails(['plain-1', 'mtls-1'])} |`);
lines.push('');
lines.push('| new mTLS connection to the mesh server (client certificate; TCP connect + TLS handshake, one at a time) | full handshake | resumed (TLS 1.3 ticket) | resumed / full (median of rounds) |');
lines.push('|---|---:|---:|---:|');
const resumedShare = per('resumed').reduce((n, x) => n + x.resumed, 0) / Math.max(1, per('resumed').reduce((n, x) => n + x.count, 0));
lines.push(`| connections/s (connect, handshake, close) | ${median(per('full').map(rps)).toFixed(0)} | ${median(per('resumed').map(rps)).toFixed(0)} | ×${ratio('full', 'resumed', rps).toFixed(2)} |`);
lines.push(`| p50 connect + handshake | ${(median(per('full').map(p50)) / 1000).toFixed(2)} ms | ${(median(per('resumed').map(p50)) / 1000).toFixed(2)} ms | ×${ratio('full', 'resumed', p50).toFixed(2)} |`);
lines.push(`| server CPU per connection | ${median(per('full').map(scpu)).toFixed(0)} µs | ${median(per('resumed').map(scpu)).toFixed(0)} µs | ×${ratio('full', 'resumed', scpu).toFixed(2)} |`);
lines.push('');
lines.push(`Resumed connections that really resumed: ${(resumedShare * 100).toFixed(0)} %. Failures: ${fails(['full', 'resumed'])}.`);
const body = lines.join('\n');
console.log(`\n${body}`);
if (a.write === true) writeSection('mtls', 'mTLS: keep-alive calls and handshakes through meshlet', `node_modules/.bin/node bench/mtls/run.ts${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`, body);

const exited = (p: ChildProcess) => new Promise<void>((r) => (p.exitCode !== null ? r() : p.once('exit', () => r())));
for (const c of clients.values()) c.disconnect();
await Promise.all([...clients.values()].map(exited));
server.proc.disconnect();
await exited(server.proc);
rmSync(dir, { recursive: true, force: true });
