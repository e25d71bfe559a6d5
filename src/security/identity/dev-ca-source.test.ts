import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { until } from '../../../test/helpers/config-dir.ts';
import { ManualClock } from '../../core/clock.ts';
import { finalizeDevCaRotation, initDevCa, rotateDevCa } from '../pki/dev-ca.ts';
import { parsePemBundle } from '../pki/pem.ts';
import { CredentialHolder } from './credentials.ts';
import { DevCaIdentitySource } from './dev-ca-source.ts';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'meshlet-devca-'));
  dirs.push(d);
  return join(d, 'ca');
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const HOUR = 3_600_000;
const quiet = { warn: (m: string) => assert.fail(`unexpected warning: ${m}`) };

describe('DevCaIdentitySource', () => {
  it('issues itself a certificate for spiffe://<td>/ns/<ns>/sa/<sa> from the CA, with its own key', async (t) => {
    const dir = tmp();
    const devCa = await initDevCa(dir);
    const holder = new CredentialHolder();
    const src = new DevCaIdentitySource({ dir, trustDomain: 'cluster.local', namespace: 'foo', serviceAccount: 'bar', holder, log: quiet });
    await src.start();
    t.after(() => src.close());
    const c = holder.current;
    assert.ok(c !== undefined);
    assert.equal(c.spiffeId, 'spiffe://cluster.local/ns/foo/sa/bar');
    const leaf = new X509Certificate(c.certChain);
    assert.equal(leaf.subjectAltName, 'URI:spiffe://cluster.local/ns/foo/sa/bar');
    assert.equal(leaf.verify(new X509Certificate(devCa.ca.rootPem).publicKey), true);
    assert.equal(leaf.checkPrivateKey(createPrivateKey(c.privateKey)), true);
    assert.equal(c.trustBundle, devCa.ca.rootPem);
    assert.equal(c.notAfter - c.notBefore, 24 * HOUR + 2 * 60_000, "Istio's 24 h, plus the 2 minutes notBefore is backdated");
  });

  it('renews at half the lifetime on the injected clock, with a new key', async (t) => {
    const dir = tmp();
    await initDevCa(dir);
    const wall = Date.parse('2026-06-01T00:00:00Z');
    let wallNow = wall;
    const clock = new ManualClock();
    const holder = new CredentialHolder();
    const src = new DevCaIdentitySource({ dir, trustDomain: 'cluster.local', namespace: 'foo', serviceAccount: 'bar', holder, log: quiet, clock, wallClock: { now: () => wallNow }, ttlMs: HOUR });
    await src.start();
    t.after(() => src.close());
    const first = holder.current!;
    assert.equal(first.notBefore, wall - 2 * 60_000);
    assert.equal(first.notAfter, wall + HOUR);
    const half = (first.notAfter - first.notBefore) / 2 - 2 * 60_000; // from issue, halfway through [notBefore, notAfter]
    clock.advance(half - 1);
    wallNow += half - 1;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(holder.current?.generation, first.generation, 'not renewed before half its lifetime');
    clock.advance(1);
    wallNow += 1;
    await until(() => holder.current?.generation === first.generation + 1, 'renewed');
    const second = holder.current!;
    assert.notEqual(second.privateKey, first.privateKey);
    assert.equal(second.notBefore, Math.floor((wallNow - 2 * 60_000) / 1000) * 1000);
    assert.ok(second.notAfter > first.notAfter);
    // And again at half of the new one.
    clock.advance((second.notAfter - second.notBefore) / 2);
    wallNow += (second.notAfter - second.notBefore) / 2;
    await until(() => holder.current?.generation === first.generation + 2, 'renewed again');
  });

  it("renews when a connection asks (holder.renewer: the process was frozen past the expiry and the renewal timer is late), once per certificate; none after close", async () => {
    const dir = tmp();
    await initDevCa(dir);
    const clock = new ManualClock();
    const holder = new CredentialHolder();
    const src = new DevCaIdentitySource({ dir, trustDomain: 'cluster.local', namespace: 'foo', serviceAccount: 'bar', holder, log: quiet, clock });
    await src.start();
    const first = holder.current!;
    holder.renewer?.();
    holder.renewer?.(); // asked already
    clock.advance(0);
    await until(() => holder.current?.generation === first.generation + 1, 'renewed without the renewal timer');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(holder.current?.generation, first.generation + 1, 'once');
    await src.close();
    assert.equal(holder.renewer, undefined, 'closed: nothing renews');
  });

  it('follows a rotation: a new certificate from the new root at once, a bundle with both roots; --finalize drops the old', async (t) => {
    const dir = tmp();
    const before = await initDevCa(dir);
    const holder = new CredentialHolder();
    const src = new DevCaIdentitySource({ dir, trustDomain: 'cluster.local', namespace: 'foo', serviceAccount: 'bar', holder, log: quiet, settleMs: 50 });
    await src.start();
    t.after(() => src.close());
    const { after: rotated } = await rotateDevCa(dir);
    await until(() => new X509Certificate(holder.current!.certChain).verify(new X509Certificate(rotated.ca.rootPem).publicKey), 're-issued from the new root');
    await until(() => parsePemBundle(holder.current!.trustBundle).length === 2, 'the bundle holds both roots');
    assert.deepEqual(parsePemBundle(holder.current!.trustBundle), [rotated.ca.rootPem, before.ca.rootPem]);
    const cert = holder.current!.certChain;
    await finalizeDevCaRotation(dir);
    await until(() => parsePemBundle(holder.current!.trustBundle).length === 1, 'the old root dropped');
    assert.equal(holder.current!.trustBundle, rotated.ca.rootPem);
    assert.equal(holder.current!.certChain, cert, 'the certificate is kept when only the bundle changes');
  });

  it('a bad update of the directory keeps the last good certificate and warns naming the file', async (t) => {
    const dir = tmp();
    await initDevCa(dir);
    const holder = new CredentialHolder();
    const w: string[] = [];
    const src = new DevCaIdentitySource({ dir, trustDomain: 'cluster.local', namespace: 'foo', serviceAccount: 'bar', holder, log: { warn: (m) => w.push(m) }, settleMs: 50 });
    await src.start();
    t.after(() => src.close());
    const before = holder.current;
    writeFileSync(join(dir, '.tmp'), 'junk');
    renameSync(join(dir, '.tmp'), join(dir, 'root-cert.pem'));
    await until(() => w.length > 0, 'a warning');
    assert.match(String(w[0]), /dev CA .* not reloaded: .*root-cert\.pem is not PEM .*; the last good certificate stays in use/);
    assert.equal(holder.current, before);
  });

  it('a renewal that fails (the CA expired) warns and is retried', async (t) => {
    const dir = tmp();
    const t0 = Date.parse('2026-06-01T00:00:00Z');
    await initDevCa(dir, { ttlMs: 2 * HOUR, clock: { now: () => t0 } });
    let wallNow = t0 + 90 * 60_000;
    const clock = new ManualClock();
    const holder = new CredentialHolder();
    const w: string[] = [];
    const src = new DevCaIdentitySource({ dir, trustDomain: 'cluster.local', namespace: 'foo', serviceAccount: 'bar', holder, log: { warn: (m) => w.push(m) }, clock, wallClock: { now: () => wallNow }, ttlMs: HOUR });
    await src.start();
    t.after(() => src.close());
    const first = holder.current!;
    assert.equal(first.notAfter, t0 + 2 * HOUR, "clamped to the CA's notAfter");
    assert.equal(w.length, 1, 'the clamp is said at issue');
    wallNow = t0 + 2 * HOUR + 1000;
    clock.advance(HOUR);
    await until(() => w.length > 1, 'the failed renewal reported');
    assert.match(String(w[1]), /renewing spiffe:\/\/cluster\.local\/ns\/foo\/sa\/bar from the dev CA .* failed: the CA certificate expired at 2026-06-01T02:00:00\.000Z; the current certificate has expired/);
    assert.equal(holder.current, first);
    assert.equal(clock.pending, 2, "a retry is scheduled (besides the next check of the directory's identity)");
  });

  it("in the CA's last minutes, issues one certificate ending with the CA, says so, and renews only at the CA's expiry (no loop)", async (t) => {
    const dir = tmp();
    const t0 = Date.parse('2026-06-01T00:00:00Z');
    await initDevCa(dir, { ttlMs: 2 * HOUR, clock: { now: () => t0 } });
    // One minute left: half of a certificate backdated two minutes for clock skew is already past.
    let wallNow = t0 + 2 * HOUR - 60_000;
    const clock = new ManualClock();
    const holder = new CredentialHolder();
    const w: string[] = [];
    const src = new DevCaIdentitySource({ dir, trustDomain: 'cluster.local', namespace: 'foo', serviceAccount: 'bar', holder, log: { warn: (m) => w.push(m) }, clock, wallClock: { now: () => wallNow } });
    await src.start();
    t.after(() => src.close());
    const first = holder.current!;
    assert.equal(first.notAfter, t0 + 2 * HOUR);
    for (let i = 0; i < 5; i++) {
      clock.advance(0);
      await new Promise((r) => setImmediate(r));
    }
    clock.advance(59_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(holder.current, first, 'not re-issued before the CA expires');
    assert.equal(w.length, 1, w.join('\n'));
    assert.match(w[0]!, /the dev CA .* expires at 2026-06-01T02:00:00\.000Z, so spiffe:\/\/cluster\.local\/ns\/foo\/sa\/bar's certificate ends then too and cannot be renewed past it: rotate the CA \(meshlet ca rotate /);
    wallNow = t0 + 2 * HOUR + 1000;
    clock.advance(2000);
    await until(() => w.length > 1, 'the renewal at expiry, failing');
    assert.match(w[1]!, /failed: the CA certificate expired at 2026-06-01T02:00:00\.000Z; the current certificate has expired/);
    assert.equal(holder.current, first);
  });

  const refusals: { name: string; setup: (dir: string) => Promise<unknown>; trustDomain?: string; error: RegExp }[] = [
    { name: 'a directory that is not a dev CA', setup: async () => undefined, error: /ca-cert\.pem is missing: .* is not a development CA \(make one with `meshlet ca init/ },
    { name: 'a CA of another trust domain', setup: (dir) => initDevCa(dir, { trustDomain: 'example.org' }), error: /is for trust domain "example\.org" but the mesh's trustDomain is "cluster\.local"/ },
    { name: 'an expired CA', setup: (dir) => initDevCa(dir, { ttlMs: HOUR, clock: { now: () => Date.now() - 2 * HOUR } }), error: /the CA certificate expired at/ },
  ];
  for (const c of refusals) {
    it(`refuses to start on ${c.name}`, async () => {
      const dir = tmp();
      await c.setup(dir);
      const holder = new CredentialHolder();
      await assert.rejects(new DevCaIdentitySource({ dir, trustDomain: c.trustDomain ?? 'cluster.local', namespace: 'foo', serviceAccount: 'bar', holder, log: quiet }).start(), c.error);
      assert.equal(holder.current, undefined);
    });
  }
});
