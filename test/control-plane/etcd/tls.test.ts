/**
 * TLS to etcd (found by the HA review): the replicas keep the CA's private key and the token
 * signing key in etcd, and the docs say to protect etcd access, but `--etcd` took no CA and no
 * client certificate, so an etcd that authenticates its clients (`--client-cert-auth`, as every
 * production etcd does) could not be used at all: only an open, plaintext etcd. Now
 * `--etcd-cacert`, `--etcd-cert` and `--etcd-key` (etcdctl's `--cacert`, `--cert`, `--key`).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { WireResource } from '../../../src/control-plane/protocol.ts';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import { isMeshletError } from '../../../src/core/errors.ts';
import { MAIN, meshlet } from '../../cli/helpers.ts';
import { childReady } from '../../helpers/child-ready.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { cleanupPki, issueLeaf, makeCa, type TestCa, type TestLeaf } from '../../helpers/pki.ts';
import { skipWithout } from '../../helpers/tools.ts';

const serviceEntry: WireResource = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'tls', namespace: 'default' },
  spec: { hosts: ['tls.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' },
};

describe('etcd over TLS with client certificates', { skip: skipWithout('etcd', 'openssl'), timeout: 120_000 }, () => {
  let ca: TestCa;
  let client: TestLeaf;
  let etcd: EtcdServer;
  let dir: string;
  let stores: EtcdStores | undefined;
  let child: ChildProcess | undefined;

  before(async () => {
    ca = makeCa({ name: 'etcd-ca' });
    const server = issueLeaf(ca, { ips: ['127.0.0.1'], dns: ['localhost'] });
    client = issueLeaf(ca, { subject: '/CN=meshlet' });
    etcd = await startEtcd({ tls: { certFile: server.certFile, keyFile: server.keyFile, caFile: ca.certFile, client: { cert: client.certPem, key: client.keyPem } } });
    dir = await mkdtemp(join(tmpdir(), 'meshlet-etcd-tls-'));
  });
  after(async () => {
    child?.kill('SIGKILL');
    await stores?.close();
    await etcd?.stop();
    await rm(dir, { recursive: true, force: true });
    cleanupPki();
  });

  it('the stores work over https with etcd’s CA and a client certificate', async () => {
    assert.match(etcd.endpoints[0]!, /^https:\/\//);
    stores = await openEtcd(etcd.endpoints, { tls: { ca: ca.certPem, cert: client.certPem, key: client.keyPem } });
    const res = await stores.store.apply([serviceEntry], 'apply by admin');
    assert.deepEqual(res.applied, [{ ref: 'ServiceEntry default/tls', action: 'created' }]);
  });

  it('without the client certificate etcd refuses the connection, and the error names the endpoint', async () => {
    const err = await openEtcd(etcd.endpoints, { tls: { ca: ca.certPem }, timeoutMs: 2000 }).then(
      (s) => s.close(),
      (e: unknown) => e,
    );
    assert.ok(isMeshletError(err), String(err));
    assert.match((err as Error).message, new RegExp(`failed on every endpoint: ${etcd.endpoints[0]}`));
  });

  it('meshlet control-plane --etcd https://… --etcd-cacert --etcd-cert --etcd-key serves what etcd holds', async () => {
    const args = ['control-plane', '--etcd', etcd.endpoints[0]!, '--etcd-cacert', ca.certFile, '--etcd-cert', client.certFile, '--etcd-key', client.keyFile];
    const proc = spawn(process.execPath, [MAIN, ...args, '--port', '0', '--host', '127.0.0.1', '--data-dir', join(dir, 'data')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const line = await childReady(
      proc,
      () => /listening on .*\(config version (\w+), source etcd:https:/.exec(stdout),
      () => stderr,
    );
    assert.equal(line[1], stores!.store.current().version);
  });

  it('usage mistakes: the TLS flags without --etcd, a certificate without its key, an http:// URL; an unreadable file names it', () => {
    const cases: [string[], number, RegExp][] = [
      [['--config', dir, '--etcd-cacert', ca.certFile], 2, /--etcd-cacert goes with --etcd/],
      [['--etcd', etcd.endpoints[0]!, '--etcd-cert', client.certFile], 2, /give --etcd-cert and --etcd-key together/],
      [['--etcd', 'http://127.0.0.1:1', '--etcd-cacert', ca.certFile], 2, /--etcd-cacert: TLS needs https:\/\/ etcd URLs, got "http:\/\/127\.0\.0\.1:1"/],
      [['--etcd', etcd.endpoints[0]!, '--etcd-cacert', join(dir, 'missing.pem')], 1, /--etcd-cacert .*missing\.pem: cannot read it \(ENOENT\)/],
    ];
    for (const [args, code, message] of cases) {
      const r = meshlet(['control-plane', ...args, '--port', '0', '--data-dir', join(dir, 'data2')]);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});
