/**
 * What RequestAuthentication costs per request: a request without a token, a token the
 * verified-token cache has seen (the common case: a client reuses its token), and a token seen
 * for the first time (parse + RS256 or ES256 signature check through jose/WebCrypto), one at a
 * time and 64 in flight. For scale, jose's own `jwtVerify` with a local JWKS on the same tokens.
 * Keys are inline (no network); interleaved rounds, medians.
 *
 * Run: node bench/inbound/jwt.ts
 */
import { cpus, loadavg } from 'node:os';
import { createLocalJWKSet, jwtVerify } from 'jose';
import type { Headers } from '../../src/core/handler.ts';
import type { JwtAuthenticator } from '../../src/security/jwt/authenticator.ts';
import type { JwtRequest } from '../../src/security/jwt/outcome.ts';
import { jwksOf, makeKey, mint, ra, validated } from '../../src/security/jwt/fixtures.test.ts';
import { JwtRuntime } from '../../src/security/jwt/runtime.ts';
import { median, writeSection } from '../lib/results.ts';

const ROUNDS = 5;
const HOT = 200_000;
const COLD = 1500;
const ISS = 'https://issuer.example';
const rsa = makeKey('RS256', 'rsa');
const ec = makeKey('ES256', 'ec');
const exp = Math.floor(Date.now() / 1000) + 3600;
const claims = (i: number) => ({ iss: ISS, sub: `user-${i}`, aud: 'api', exp, scope: 'read write', groups: ['a', 'b'] });

function authenticator(cacheSize: number): { auth: JwtAuthenticator; runtime: JwtRuntime } {
  const runtime = new JwtRuntime({ tokenCacheSize: cacheSize });
  const policies = validated([
    ra('bench', 'default', {
      jwtRules: [{ issuer: ISS, jwks: jwksOf(rsa, ec), audiences: ['api'], outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }] }],
    }),
  ]);
  return { auth: runtime.compile(policies, { namespace: 'default', labels: {} }), runtime };
}

// Header values as Node's HTTP parser gives them: flat strings (a template literal would make a
// rope that every scan flattens first).
const flat = new Map<string, string>();
const headerOf = (token: string) => {
  let v = flat.get(token);
  if (v === undefined) {
    v = Buffer.from(`Bearer ${token}`, 'latin1').toString('latin1');
    flat.set(token, v);
  }
  return v;
};
const request = (token?: string): JwtRequest => {
  const headers: Headers = { host: 'api', accept: '*/*', 'user-agent': 'bench' };
  if (token !== undefined) headers.authorization = headerOf(token);
  return { method: 'GET', scheme: 'http', authority: 'api:8080', path: '/items?page=2', headers };
};

/** CPU time (user + system) in ns: on a shared machine it moves less than wall time. */
function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

/** ns per call, [wall, CPU]. */
function hot(auth: JwtAuthenticator, token: string | undefined): [number, number] {
  const c0 = cpuNs();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < HOT; i++) {
    const r = auth.authenticate(request(token));
    if (r instanceof Promise || !r.ok) throw new Error('expected a synchronous pass');
  }
  return [Number(process.hrtime.bigint() - t0) / HOT, (cpuNs() - c0) / HOT];
}

function requestOnly(): [number, number] {
  let n = 0;
  const c0 = cpuNs();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < HOT; i++) n += Object.keys(request('x').headers).length;
  if (n === 0) throw new Error('unreachable');
  return [Number(process.hrtime.bigint() - t0) / HOT, (cpuNs() - c0) / HOT];
}

/** µs per token of wall time (CPU time of all threads is in the *Cpu rows). */
async function cold(auth: JwtAuthenticator, tokens: readonly string[], inFlight: number): Promise<number> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < tokens.length) {
        const t = tokens[next++] as string;
        const r = await auth.authenticate(request(t));
        if (!r.ok) throw new Error(`${r.body}: ${r.reason}`);
      }
    }),
  );
  return Number(process.hrtime.bigint() - t0) / tokens.length / 1000;
}

async function joseCold(tokens: readonly string[]): Promise<number> {
  const jwks = createLocalJWKSet(JSON.parse(jwksOf(rsa, ec)));
  const t0 = process.hrtime.bigint();
  for (const t of tokens) await jwtVerify(t, jwks, { issuer: ISS, audience: 'api', clockTolerance: 60 });
  return Number(process.hrtime.bigint() - t0) / tokens.length / 1000;
}

const rows: Record<string, number[]> = {};
const push = (k: string, v: number) => {
  rows[k] ??= [];
  rows[k].push(v);
};

console.log(`minting ${2 * ROUNDS * COLD} tokens…`);
const fresh = (key: typeof rsa, round: number) => Array.from({ length: COLD }, (_, i) => mint(key, claims(round * COLD + i)));
const rsTokens = Array.from({ length: ROUNDS }, (_, r) => fresh(rsa, r));
const esTokens = Array.from({ length: ROUNDS }, (_, r) => fresh(ec, r + ROUNDS));
const hotToken = mint(rsa, claims(-1));

for (let r = 0; r < ROUNDS; r++) {
  const { auth, runtime } = authenticator(1000);
  const warm = auth.authenticate(request(hotToken));
  if (warm instanceof Promise) await warm;
  for (const [k, [wall, cpu]] of [
    ['request', requestOnly()],
    ['none', hot(auth, undefined)],
    ['hit', hot(auth, hotToken)],
  ] as const) {
    push(k, wall);
    push(`${k}Cpu`, cpu);
  }
  await runtime.close();

  const noCache = authenticator(0).auth;
  const rs = rsTokens[r] as string[];
  const es = esTokens[r] as string[];
  const c0 = cpuNs();
  push('rs1', await cold(noCache, rs, 1));
  push('rs1Cpu', (cpuNs() - c0) / rs.length / 1000);
  push('es1', await cold(noCache, es, 1));
  push('rs64', await cold(noCache, rs, 64));
  push('es64', await cold(noCache, es, 64));
  push('joseRs', await joseCold(rs));
  push('joseEs', await joseCold(es));
  console.log(`round ${r + 1}/${ROUNDS}`);
}

const m = (k: string) => median(rows[k] ?? []);
const ns = (k: string) => `${(m(k) - m('request')).toFixed(0)} ns | ${(m(`${k}Cpu`) - m('requestCpu')).toFixed(0)} ns`;
const table = [
  '| per request | wall (median of 5) | CPU |',
  '|---|---|---|',
  `| building the request view (subtracted below) | ${m('request').toFixed(0)} ns | ${m('requestCpu').toFixed(0)} ns |`,
  `| no token (output headers sanitized, locations scanned) | ${ns('none')} |`,
  `| **cached token** (verified-token cache hit: issuer, time, audience checked; claim header written; token removed) | **${ns('hit')}** |`,
  `| uncached RS256 token (parse + jose/WebCrypto verify), one at a time | ${m('rs1').toFixed(1)} µs | ${m('rs1Cpu').toFixed(1)} µs (all threads) |`,
  `| uncached ES256 token, one at a time | ${m('es1').toFixed(1)} µs | |`,
  `| uncached RS256, 64 in flight (µs of wall time per token) | ${m('rs64').toFixed(1)} µs | |`,
  `| uncached ES256, 64 in flight | ${m('es64').toFixed(1)} µs | |`,
  `| for scale: jose \`jwtVerify\` + \`createLocalJWKSet\`, RS256 | ${m('joseRs').toFixed(1)} µs | |`,
  `| for scale: jose \`jwtVerify\` + \`createLocalJWKSet\`, ES256 | ${m('joseEs').toFixed(1)} µs | |`,
].join('\n');
const hitNs = m('hitCpu') - m('requestCpu');
const body = `${table}

A cached token costs ${hitNs.toFixed(0)} ns of CPU against ${m('rs1Cpu').toFixed(0)} µs for a first RS256 check (${((m('rs1Cpu') * 1000) / hitNs).toFixed(0)}× less).
The cache holds 1000 tokens by default; a token is never used past its \`exp\` (+60 s skew) nor past the removal of the key that verified it.
The machine is shared (load average ${loadavg()[0]?.toFixed(1)} on ${cpus().length} CPUs during the run): wall times are inflated, CPU times less so.`;
console.log(body);
writeSection('inbound-jwt', 'Inbound: RequestAuthentication (JWT) cost per request (issue 13)', 'node bench/inbound/jwt.ts', body);
