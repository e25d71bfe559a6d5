/**
 * The CLI against a control plane process: `meshlet control-plane --cert-ttl/--trust-domain`
 * (and their refusals), `meshlet token --service-account`, `meshlet ca show|issue|rotate
 * --control-plane`, and `meshlet status` showing each workload's certificate.
 */
import assert from 'node:assert/strict';
import { childReady } from '../../helpers/child-ready.ts';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../../src/index.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { until } from '../client-helpers.ts';
import { tempDir } from '../server/helpers.ts';

const MAIN = new URL('../../../src/cli/main.ts', import.meta.url).pathname;
const t = tempDir('meshlet-ca-cli-');
const configDir = join(t.dir, 'config');
const dataDir = join(t.dir, 'data');
let server: ChildProcess | undefined;
let url = '';
let serverOut = '';
let serverErr = '';
let admin = '';
let mesh: Mesh | undefined;

function meshlet(args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', cwd: t.dir, env: { ...process.env, MESHLET_CONTROL_PLANE: '', MESHLET_TOKEN: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(async () => {
  mkdirSync(configDir);
  server = spawn(process.execPath, [MAIN, 'control-plane', '--config', configDir, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--trust-domain', 'corp.example', '--cert-ttl', '10m'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout!.setEncoding('utf8').on('data', (d: string) => {
    serverOut += d;
  });
  server.stderr!.setEncoding('utf8').on('data', (d: string) => {
    serverErr += d;
  });
  url = await childReady(server, () => /listening on (http:\/\/\S+)/.exec(serverOut)?.[1], () => `server start: ${serverErr}`);
  admin = meshlet(['token', '--admin', '--data-dir', dataDir]).stdout.trim();
});
after(async () => {
  await mesh?.close();
  if (server !== undefined && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGKILL');
    await exited;
  }
  t.cleanup();
});

describe('meshlet ca --control-plane and meshlet status', () => {
  it('meshlet control-plane refuses a --cert-ttl under a minute and a lone --ca-cert, naming the flag', () => {
    const short = meshlet(['control-plane', '--config', configDir, '--port', '0', '--data-dir', dataDir, '--cert-ttl', '30s']);
    assert.equal(short.code, 2);
    assert.match(short.stderr, /--cert-ttl: must be at least 1m/);
    const lone = meshlet(['control-plane', '--config', configDir, '--port', '0', '--data-dir', dataDir, '--ca-cert', 'x.pem']);
    assert.equal(lone.code, 2);
    assert.match(lone.stderr, /give --ca-cert and --ca-key together/);
    const missing = meshlet(['control-plane', '--config', configDir, '--port', '0', '--host', '127.0.0.1', '--data-dir', join(t.dir, 'other'), '--ca-cert', join(t.dir, 'nope.pem'), '--ca-key', join(t.dir, 'nope.key')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /--ca-cert .*nope\.pem: cannot read it \(ENOENT\)/);
  });

  it('show prints the trust domain, the signer, the lifetime and the bundle', () => {
    const r = meshlet(['ca', 'show', '--control-plane', url, '--token', admin]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Trust domain: +corp\.example/);
    assert.match(r.stdout, /Signs with: +O=corp\.example/);
    assert.match(r.stdout, /Certificates: +10m \(--cert-ttl\)/);
    assert.match(r.stdout, /Bundle: +1 root,/);
    const json = JSON.parse(meshlet(['ca', 'show', '--control-plane', url, '--token', admin, '-o', 'json']).stdout);
    assert.equal(json.trustDomain, 'corp.example');
    assert.equal(json.certTtlMs, 600_000);
  });

  it('issue writes a certificate for any identity (admin), its key (0600) and the bundle; openssl verifies it', { skip: skipWithout('openssl') }, () => {
    const r = meshlet(['ca', 'issue', '--control-plane', url, '--token', admin, '-n', 'prod', '--service-account', 'payments', '--ttl', '5m', '--out', 'certs/payments']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Issued spiffe:\/\/corp\.example\/ns\/prod\/sa\/payments/);
    // The commands a mesh server answers (test/cli/ca.test.ts runs them against one): curl -k, openssl with the bundle.
    assert.match(r.stdout, /^ {2}curl -k --cert \S+payments\.crt --key \S+payments\.key https:\/\/<host>:<port>\/$/m);
    assert.match(r.stdout, /^ {2}openssl s_client -connect <host>:<port> -cert \S+payments\.crt -key \S+payments\.key -CAfile \S+payments\.ca\.crt -verify_return_error$/m);
    const crt = join(t.dir, 'certs/payments.crt');
    assert.equal(statSync(join(t.dir, 'certs/payments.key')).mode & 0o777, 0o600);
    assert.equal(new X509Certificate(readFileSync(crt)).subjectAltName, 'URI:spiffe://corp.example/ns/prod/sa/payments');
    assert.match(execFileSync('openssl', ['verify', '-CAfile', join(t.dir, 'certs/payments.ca.crt'), crt], { encoding: 'utf8' }), /OK/);
    const workload = meshlet(['token', '--service', 'x', '--data-dir', dataDir]).stdout.trim();
    const refused = meshlet(['ca', 'issue', '--control-plane', url, '--token', workload, '-n', 'prod', '--service-account', 'payments']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /the token is for namespace default, not prod/);
    const usage = meshlet(['ca', 'init', '--control-plane', url]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /the control plane makes its CA at first start/);
  });

  it('a mesh with a --service-account token; status shows its SPIFFE ID and certificate expiry', async () => {
    const token = meshlet(['token', '--service', 'reviews', '--service-account', 'bookinfo-reviews', '--data-dir', dataDir]).stdout.trim();
    mesh = await createMesh({ service: 'reviews', controlPlane: url, token, drainMs: 0, logger: { warn: () => undefined } });
    assert.equal(mesh.credentials.current?.spiffeId, 'spiffe://corp.example/ns/default/sa/bookinfo-reviews');
    let out = '';
    await until(() => {
      out = meshlet(['status', '--control-plane', url, '--token', admin]).stdout;
      return out.includes('spiffe://corp.example/ns/default/sa/bookinfo-reviews');
    }, 'status to show the certificate', 15_000);
    assert.match(out, /CA: trust domain corp\.example, 1 root trusted/);
    assert.match(out, /SPIFFE ID +CERT EXPIRES/);
    assert.match(out, new RegExp(`${new Date(mesh.credentials.current!.notAfter).toISOString().replace(/[.]/g, '\\.')} \\(\\d+m left\\)`));
  });

  it('rotate pushes the overlapping bundle to the mesh; rotate --finalize drops the old root', async () => {
    const short = meshlet(['ca', 'rotate', '--overlap', '5m', '--control-plane', url, '--token', admin]);
    assert.equal(short.code, 1);
    assert.match(short.stderr, /the overlap must be at least the certificate lifetime \(--cert-ttl, 600000 ms\)/);
    assert.equal(meshlet(['ca', 'rotate', './dir', '--overlap', '1h']).code, 2, '--overlap goes with --control-plane');
    const r = meshlet(['ca', 'rotate', '--control-plane', url, '--token', admin]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Bundle: +2 roots, .*a rotation is in progress/);
    // One root is marked as signing, the new one: every generated root is O=<trust domain>, so only the fingerprint tells them apart.
    const starred = r.stdout.split('\n').filter((l) => /^ {2}\* /.test(l));
    assert.equal(starred.length, 1, r.stdout);
    assert.ok(starred[0]!.includes(/Signs with: .*SHA256 (\S+)/.exec(r.stdout)![1]!), r.stdout);
    await until(() => (mesh!.credentials.current!.trustBundle.match(/BEGIN CERTIFICATE/g) ?? []).length === 2, 'the mesh to get both roots', 10_000);
    assert.match(meshlet(['status', '--control-plane', url, '--token', admin]).stdout, /2 roots trusted .*ROTATING/);
    const f = meshlet(['ca', 'rotate', '--finalize', '--control-plane', url, '--token', admin]);
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stdout, /Rotation finalized/);
    await until(() => (mesh!.credentials.current!.trustBundle.match(/BEGIN CERTIFICATE/g) ?? []).length === 1, 'the mesh to drop the old root', 10_000);
    const again = meshlet(['ca', 'rotate', '--finalize', '--control-plane', url, '--token', admin]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no rotation in progress/);
  });
});
