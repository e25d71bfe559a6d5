/**
 * A real mesh getting its certificate from a real control plane on 127.0.0.1: the token's
 * identity, checked with Node's X509Certificate and openssl; renewal at half the lifetime on a
 * ManualClock with an mTLS server and client that never see a failed request; a renewal that
 * fails keeps the certificate; root rotation pushes the overlapping bundle and finalize drops the
 * old root; the startup errors; the status shows each workload's certificate.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ManualClock } from '../../../src/core/clock.ts';
import { createMesh, type Mesh } from '../../../src/index.ts';
import type { WorkloadCredentials } from '../../../src/security/identity/credentials.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { startTestControlPlane, type TestControlPlane, until } from '../client-helpers.ts';
import { tempDir, watch } from '../server/helpers.ts';

const opened: { close(): Promise<void> }[] = [];
const dirs: (() => void)[] = [];
after(async () => {
  for (const o of opened.reverse()) await o.close();
  for (const d of dirs) d();
});

async function controlPlane(o: { certTtlMs?: number; insecure?: boolean } = {}): Promise<TestControlPlane> {
  const t = await startTestControlPlane({}, o);
  opened.push(t);
  return t;
}

function logger(): { warn(m: string): void; info(m: string): void; lines: string[] } {
  const lines: string[] = [];
  return { warn: (m) => lines.push(`warn ${m}`), info: (m) => lines.push(`info ${m}`), lines };
}

async function mesh(t: TestControlPlane, o: Partial<Parameters<typeof createMesh>[0]> & { token?: string } = {}): Promise<Mesh> {
  const token = o.token ?? (await t.cp.mintToken({ service: 'reviews', namespace: 'default' }));
  const m = await createMesh({ service: 'reviews', controlPlane: t.cp.url, drainMs: 0, startupTimeoutMs: 5000, logger: logger(), ...o, token });
  opened.push(m);
  return m;
}

const roots = (c: WorkloadCredentials): string[] => c.trustBundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
const leafOf = (c: WorkloadCredentials): X509Certificate => new X509Certificate(c.certChain);
const signedBy = (c: WorkloadCredentials, rootPem: string): boolean => {
  const r = new X509Certificate(rootPem);
  return leafOf(c).checkIssued(r) && leafOf(c).verify(r.publicKey);
};

/**
 * About when a certificate is renewed: half of what is left of it (the mesh counts from when it
 * received it, and jitters the ratio by ±1 %: ±1.2 s of a two-minute certificate).
 */
const renewIn = (c: WorkloadCredentials): number => Math.floor((c.notAfter - Date.now()) / 2);

describe('a mesh with identity from the control plane', () => {
  it("gets a certificate for its token's identity at startup; openssl verifies it against the bundle; diagnostics and the status show it", { skip: skipWithout('openssl') }, async () => {
    const t = await controlPlane();
    const token = await t.cp.mintToken({ service: 'reviews', namespace: 'default', serviceAccount: 'bookinfo-reviews' });
    const m = await mesh(t, { token });
    const c = m.credentials.current;
    assert.ok(c !== undefined, 'the certificate is there when createMesh resolves');
    assert.equal(c.spiffeId, 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews');
    assert.equal(leafOf(c).subjectAltName, `URI:${c.spiffeId}`);
    assert.ok(leafOf(c).checkPrivateKey((await import('node:crypto')).createPrivateKey(c.privateKey)));
    assert.equal(roots(c).length, 1);
    const dir = tempDir('meshlet-ca-wl-');
    dirs.push(dir.cleanup);
    writeFileSync(join(dir.dir, 'leaf.pem'), c.certChain);
    writeFileSync(join(dir.dir, 'bundle.pem'), c.trustBundle);
    assert.match(execFileSync('openssl', ['verify', '-CAfile', join(dir.dir, 'bundle.pem'), join(dir.dir, 'leaf.pem')], { encoding: 'utf8' }), /OK/);
    assert.deepEqual(m.diagnostics().identity, { spiffeId: c.spiffeId, notAfter: c.notAfter, source: 'control-plane' });
    await until(() => t.cp.status().workloads.some((w) => w.identity !== undefined), 'the status to show the certificate');
    const w = t.cp.status().workloads.find((x) => x.identity !== undefined)!;
    assert.deepEqual(w.identity, { spiffeId: c.spiffeId, notAfter: c.notAfter, source: 'control-plane' });
    assert.equal(w.service, 'reviews');
  });

  it("the token's identity wins over the mesh's options, with a warning naming both", async () => {
    const t = await controlPlane();
    const log = logger();
    const m = await mesh(t, { token: await t.cp.mintToken({ service: 'reviews', namespace: 'default', serviceAccount: 'real' }), serviceAccount: 'claimed', logger: log });
    assert.equal(m.credentials.current?.spiffeId, 'spiffe://cluster.local/ns/default/sa/real');
    assert.ok(log.lines.some((l) => l.includes('issued spiffe://cluster.local/ns/default/sa/real') && l.includes('not spiffe://cluster.local/ns/default/sa/claimed')), log.lines.join('\n'));
  });

  it('without a token (an --insecure control plane) the mesh names its identity from its options', async () => {
    const t = await controlPlane({ insecure: true });
    const m = await createMesh({ service: 'reviews', namespace: 'shop', serviceAccount: 'reviewer', controlPlane: t.cp.url, drainMs: 0, logger: logger() });
    opened.push(m);
    assert.equal(m.credentials.current?.spiffeId, 'spiffe://cluster.local/ns/shop/sa/reviewer');
  });

  it("identity: 'none' asks for no certificate", async () => {
    const t = await controlPlane();
    const m = await mesh(t, { identity: 'none' });
    assert.equal(m.credentials.current, undefined);
    assert.equal(m.diagnostics().identity, undefined);
  });

  it('renews at half the lifetime on the injected clock, with a new key; an mTLS server and client using the credentials see no failed request', async () => {
    const t = await controlPlane({ certTtlMs: 120_000 });
    const clock = new ManualClock();
    const m = await mesh(t, { clock });
    const first = m.credentials.current!;
    assert.ok(first.notAfter - Date.now() <= 120_000, 'a two-minute certificate (--cert-ttl 2m)');
    const holder = m.credentials;
    // An mTLS server that takes every new certificate (setSecureContext) and a client that dials with the current one.
    const tlsOptions = (c: WorkloadCredentials) => ({ cert: c.certChain, key: c.privateKey, ca: c.trustBundle });
    const server = createServer({ ...tlsOptions(first), requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
      res.end(peer.subjectaltname ?? 'none');
    });
    const unsubscribe = holder.subscribe((c) => server.setSecureContext(tlsOptions(c)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    opened.push({ close: () => new Promise<void>((r) => { unsubscribe(); server.closeAllConnections(); server.close(() => r()); }) });
    const port = (server.address() as AddressInfo).port;
    let ok = 0;
    const failures: string[] = [];
    let stop = false;
    const one = () =>
      new Promise<void>((resolve) => {
        const c = holder.current!;
        const req = request({ host: '127.0.0.1', port, path: '/', agent: false, ...tlsOptions(c), checkServerIdentity: () => undefined }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => {
            if (body === `URI:${first.spiffeId}`) ok++;
            else failures.push(`answered ${body}`);
            resolve();
          });
        });
        req.on('error', (e) => {
          failures.push(e.message);
          resolve();
        });
        req.end();
      });
    const load = (async () => {
      while (!stop) await one();
    })();
    opened.push({
      close: () => {
        stop = true;
        return load;
      },
    });
    for (let round = 1; round <= 2; round++) {
      const before = holder.current!;
      clock.advance(renewIn(before) - 3000);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(holder.current!.generation, before.generation, 'not renewed before half the lifetime');
      clock.advance(6000);
      await until(() => holder.current!.generation > before.generation, `renewal ${round}`);
      const after = holder.current!;
      assert.equal(after.spiffeId, before.spiffeId);
      assert.notEqual(after.privateKey, before.privateKey, 'a new key');
      assert.ok(after.notAfter >= before.notAfter);
      assert.notEqual(after.certChain, before.certChain);
      const okBefore = ok;
      await until(() => ok > okBefore + 3, 'requests with the new certificate');
    }
    stop = true;
    await load;
    assert.deepEqual(failures, []);
    assert.ok(ok > 0);
  });

  it('a renewal that fails keeps the current certificate, says so once, and succeeds when the control plane is back', async () => {
    const t = await controlPlane({ certTtlMs: 120_000 });
    const clock = new ManualClock();
    const log = logger();
    const m = await mesh(t, { clock, logger: log, random: { next: () => 0.5 } });
    const first = m.credentials.current!;
    await t.cp.close();
    clock.advance(renewIn(first) + 3000);
    await until(() => log.lines.some((l) => l.includes('renewing the workload certificate failed, retrying; the current certificate is valid until')), 'the warning');
    assert.equal(m.credentials.current, first, 'the current certificate keeps serving');
    for (let i = 0; i < 5; i++) clock.advance(20_000);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(log.lines.filter((l) => l.includes('renewing the workload certificate failed')).length, 1, 'said once');
    await t.restart();
    await until(
      () => {
        clock.advance(1000);
        return m.credentials.current!.generation > first.generation;
      },
      'a renewal once the control plane is back',
      15_000,
    );
    assert.ok(log.lines.some((l) => l.includes('workload certificate renewed again')));
    assert.ok(m.credentials.current!.notAfter > first.notAfter);
  });

  it('root rotation: the overlapping bundle is pushed at once, new certificates come from the new root, finalize drops the old root', async () => {
    const t = await controlPlane({ certTtlMs: 120_000 });
    const clock = new ManualClock();
    const m = await mesh(t, { clock });
    const raw = await watch(t.cp.url, 'service=ratings&namespace=default', { token: await t.cp.mintToken({ service: 'ratings', namespace: 'default' }) });
    opened.push({ close: async () => raw.close() });
    await raw.next('hello');
    const initial = await raw.next('trust-bundle');
    assert.equal(initial.data.roots.length, 1);
    const oldRoot = initial.data.roots[0] as string;
    const first = m.credentials.current!;
    assert.ok(signedBy(first, oldRoot));

    const rotated = await t.cp.ca.rotate({});
    assert.equal(rotated.roots.length, 2);
    assert.equal(rotated.rotating, true);
    const pushed = await raw.next('trust-bundle');
    assert.equal(pushed.data.roots.length, 2);
    const newRoot = (pushed.data.roots as string[]).find((r) => r !== oldRoot)!;
    await until(() => roots(m.credentials.current!).length === 2, 'the mesh to install the new bundle');
    const overlap = m.credentials.current!;
    assert.equal(overlap.certChain, first.certChain, 'the same certificate, a new bundle');
    assert.ok(overlap.generation > first.generation);
    assert.ok(signedBy(overlap, oldRoot), 'still from the old root until renewal');

    clock.advance(renewIn(first) + 3000);
    await until(() => m.credentials.current!.certChain !== first.certChain, 'a renewal');
    const renewed = m.credentials.current!;
    assert.ok(signedBy(renewed, newRoot), 'the new root signs');
    assert.equal(roots(renewed).length, 2, 'both roots trusted during the overlap');

    const finalized = await t.cp.ca.rotate({ finalize: true });
    assert.equal(finalized.roots.length, 1);
    const last = await raw.next('trust-bundle');
    assert.deepEqual(last.data.roots, [newRoot]);
    // The manual clock that was moved past the renewal also timed out the mesh's watch stream (missed
    // heartbeats on that clock): moving it on lets the mesh reconnect, and a new stream gets the bundle.
    await until(() => {
      clock.advance(200);
      return roots(m.credentials.current!).length === 1;
    }, 'the mesh to drop the old root');
    assert.equal(m.credentials.current!.trustBundle, newRoot);
    assert.ok(!signedBy(first, newRoot), 'a certificate of the old root is no longer trusted');
    await assert.rejects(t.cp.ca.rotate({ finalize: true }), /no rotation in progress/);
  });

  it('a finalize before the workload renewed: the bundle without its root makes the mesh renew at once, not at half its lifetime', async () => {
    const t = await controlPlane();
    const log = logger();
    const m = await mesh(t, { logger: log });
    const first = m.credentials.current!;
    await t.cp.ca.rotate({});
    await until(() => roots(m.credentials.current!).length === 2, 'the mesh to install the overlapping bundle');
    assert.equal(m.credentials.current!.certChain, first.certChain, 'a 24-hour certificate is not renewed by the rotation');
    const finalized = await t.cp.ca.rotate({ finalize: true });
    const newRoot = finalized.roots[0]!.pem;
    await until(() => signedBy(m.credentials.current!, newRoot), 'a certificate from the new root');
    assert.equal(m.credentials.current!.trustBundle, newRoot);
    assert.ok(log.lines.some((l) => l.startsWith('warn') && l.includes("no longer holds the root of this workload's certificate") && l.includes('renewing it now')));
  });

  it('a CA answering 404 is taken for "no CA" only until the control plane pushes a trust bundle: then the mesh asks again, and calls that need mTLS wait for the certificate', async () => {
    const t = await controlPlane();
    // A proxy in front of the control plane that does not route the CA's path at first, and holds
    // the watch until that 404 was answered (so the order is certain).
    let caRouted = false;
    let refused!: () => void;
    const caRefused = new Promise<void>((r) => (refused = r));
    const upstream = new URL(t.cp.url);
    const proxy = createHttpServer((req, res) => {
      if (req.url?.startsWith('/v1/certificates') && !caRouted) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no route' } }));
        refused();
        return;
      }
      void (req.url?.startsWith('/v1/watch') ? caRefused : Promise.resolve()).then(() => {
        const out = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        });
        out.on('error', () => res.destroy());
        req.pipe(out);
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    opened.push({ close: () => new Promise<void>((r) => { proxy.closeAllConnections(); proxy.close(() => r()); }) });
    const log = logger();
    const token = await t.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const starting = createMesh({ service: 'reviews', controlPlane: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, token, drainMs: 0, startupTimeoutMs: 5000, logger: log });
    await caRefused;
    caRouted = true;
    const m = await starting;
    opened.push(m);
    assert.ok(log.lines.some((l) => l.includes('the control plane has no CA')));
    await until(() => m.credentials.current !== undefined, 'a certificate once the trust bundle showed the control plane has a CA');
    assert.equal(m.credentials.current!.spiffeId, 'spiffe://cluster.local/ns/default/sa/default');
    assert.ok(log.lines.some((l) => l.includes('the control plane pushed a trust bundle, so it has a CA: asking it for a workload certificate again')));
  });

  it('startup: a certificate that cannot be had rejects createMesh after startupTimeoutMs saying why; failOpen starts without one', async () => {
    const t = await controlPlane();
    // An admin token reads config, but the CA needs a namespace it does not name.
    const admin = await t.cp.mintToken({ admin: true });
    await assert.rejects(mesh(t, { token: admin, startupTimeoutMs: 800 }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'MESHLET_ERR_CONTROL_PLANE');
      assert.match(e.message, /control plane CA: no workload certificate within 800 ms \(startupTimeoutMs\); last error: .*namespace is required with an admin token/);
      return true;
    });
    const log = logger();
    const m = await mesh(t, { token: admin, startupTimeoutMs: 800, failOpen: true, logger: log });
    assert.equal(m.credentials.current, undefined);
    assert.ok(log.lines.some((l) => l.includes('starting without a workload certificate (failOpen)')), log.lines.join('\n'));
    await assert.rejects(createMesh({ service: 'x', config: [], identity: 'control-plane' }), /identity: 'control-plane'` needs `controlPlane`/);
  });
});
