/**
 * ControlPlaneIdentity without a server: its control plane is a function signing CSRs with a real
 * CA, or failing; time (timers and certificate validity) is one ManualClock.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.ts';
import { CredentialHolder } from '../security/identity/credentials.ts';
import { CertificateAuthority } from '../security/pki/ca.ts';
import { HttpStatusError } from './http.ts';
import { ControlPlaneIdentity } from './identity.ts';
import type { CertificateRequest, CertificateResponse } from './protocol.ts';

const T0 = Date.parse('2026-06-01T00:00:00Z');
const HOUR = 3_600_000;
const ID = 'spiffe://cluster.local/ns/default/sa/reviews';

/** Lets the promise chain that follows an answer (install, or the failure's handling) run. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

async function setup() {
  const clock = new ManualClock(T0);
  const ca = await CertificateAuthority.createRoot({ trustDomain: 'cluster.local', clock });
  let down = false;
  /** How far the control plane's clock is ahead of this host's (negative: behind). */
  let skew = 0;
  let calls = 0;
  let attempted: (() => void) | undefined;
  /** Resolves when the identity next asks the control plane (its CSR is made off the main thread first). */
  const nextAttempt = (): Promise<void> => new Promise((r) => (attempted = r));
  const call = async <T>(req: { body?: unknown }): Promise<T> => {
    calls++;
    attempted?.();
    if (down) throw new HttpStatusError(503, 'UNAVAILABLE', 'control plane unreachable');
    const issued = await ca.sign((req.body as CertificateRequest).csr, { spiffeId: ID, ttlMs: HOUR, now: clock.now() + skew });
    const res: CertificateResponse = { spiffeId: ID, certChain: issued.certChainPem, trustBundle: [ca.rootPem], trustBundleVersion: '1', notBefore: issued.notBefore, notAfter: issued.notAfter };
    return res as T;
  };
  const warnings: string[] = [];
  const holder = new CredentialHolder();
  const identity = new ControlPlaneIdentity({
    call,
    holder,
    trustDomain: 'cluster.local',
    namespace: 'default',
    serviceAccount: 'reviews',
    hasToken: true,
    startupTimeoutMs: 10_000,
    failOpen: false,
    clock,
    random: { next: () => 0.5 },
    logger: { warn: (m) => warnings.push(m) },
    wallNow: () => clock.now(),
  });
    /** Moves the clock by `ms` (which fires one issuance) and waits for that issuance to be handled. */
  const step = async (ms: number): Promise<void> => {
    const asked = nextAttempt();
    clock.advance(ms);
    await asked;
    await settle();
  };
  return { clock, holder, identity, warnings, step, setDown: (d: boolean) => (down = d), setSkew: (ms: number) => (skew = ms), calls: () => calls };
}

describe('ControlPlaneIdentity', () => {
  it('says when the certificate expires while renewing it keeps failing, once, and again that it recovered', async () => {
    const { clock, holder, identity, warnings, step, setDown } = await setup();
    await identity.start();
    await settle(); // the renewal is scheduled once start() has resolved
    const first = holder.current!;
    assert.equal(first.notAfter, T0 + HOUR);
    setDown(true);
    // Past the renewal (half the lifetime): the first failure is reported, the certificate still valid.
    await step(HOUR / 2 + 60_000);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /renewing the workload certificate failed, retrying; the current certificate is valid until 2026-06-01T01:00:00\.000Z: 503/);
    // Retries (at most 15 s apart: one per step) keep failing until the certificate expires: that is said once, at the first retry after expiry.
    while (clock.now() < T0 + HOUR + 5 * 60_000) await step(15_000);
    const expired = warnings.filter((w) => w.includes('expired at'));
    assert.equal(expired.length, 1, warnings.join('\n'));
    assert.match(expired[0]!, /the workload certificate \(spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews\) expired at 2026-06-01T01:00:00\.000Z and renewing it still fails: peers refuse it until the control plane's CA issues a new one; retrying: 503/);
    assert.equal(holder.current, first, 'nothing newer to install');
    setDown(false);
    await step(15_000);
    assert.ok(holder.current!.notAfter > first.notAfter, 'renewed once the control plane answers');
    assert.match(warnings.at(-1)!, /workload certificate renewed again/);
    await identity.close();
  });

  it('renews at once when the watch stream comes back, not when the backoff ends (an expired certificate refuses every new mTLS connection meanwhile)', async () => {
    const { clock, holder, identity, step, setDown } = await setup();
    await identity.start();
    await settle();
    const first = holder.current!;
    setDown(true);
    await step(HOUR / 2 + 60_000);
    while (clock.now() < T0 + HOUR + 60_000) await step(15_000);
    assert.equal(holder.current, first, 'expired, nothing newer');
    setDown(false);
    // The control plane answers again (the watch stream reconnected): no clock time passes.
    identity.reconnected();
    clock.advance(0);
    await settle();
    await settle();
    assert.ok(holder.current!.notAfter > first.notAfter, 'renewed on the reconnect, without waiting for the backoff');
    // Nothing to do when renewals are not failing.
    const renewed = holder.current;
    identity.reconnected();
    clock.advance(0);
    await settle();
    assert.equal(holder.current, renewed);
    await identity.close();
  });

  it("refuses a certificate that has expired by this host's clock (the control plane's clock is far behind): kept the current one, retried with the backoff, not in a loop", async () => {
    const { clock, holder, identity, warnings, step, setSkew, calls } = await setup();
    await identity.start();
    await settle();
    const first = holder.current!;
    setSkew(-2 * HOUR);
    await step(HOUR / 2 + 60_000);
    assert.equal(holder.current, first, 'the expired certificate is not installed');
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /renewing the workload certificate failed, retrying; the current certificate is valid until 2026-06-01T01:00:00\.000Z: control plane CA: refusing the certificate it issued: it expired at 2026-05-31T23:3\d:00\.000Z by this host's clock \(2026-06-01T00:31:00\.000Z\); is the control plane's clock or this host's wrong\?/);
    const asked = calls();
    clock.advance(0);
    await settle();
    assert.equal(calls(), asked, 'no new request before the backoff');
    setSkew(0);
    await step(15_000);
    assert.ok(holder.current!.notAfter > first.notAfter, 'renewed once the answer is valid');
    await identity.close();
  });

  it("installs a certificate not valid yet by this host's clock (the control plane's clock is ahead), saying so", async () => {
    const { holder, identity, warnings, setSkew } = await setup();
    setSkew(10 * 60_000);
    await identity.start();
    await settle();
    assert.ok(holder.current !== undefined);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /the certificate the control plane issued \(spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews\) is not valid before 2026-06-01T00:08:00\.000Z by this host's clock \(2026-06-01T00:00:00\.000Z\): peers whose clocks agree with this host's refuse it until then/);
    await identity.close();
  });

  it("keeps the current certificate until a renewal that is not valid yet by this host's clock becomes valid (a replica's clock is ahead)", async () => {
    const { clock, holder, identity, warnings, step, setSkew } = await setup();
    await identity.start();
    await settle();
    const first = holder.current!;
    setSkew(10 * 60_000);
    await step(HOUR / 2 + 60_000);
    assert.equal(holder.current, first, 'peers would refuse the new one for 8 minutes: the current one keeps serving');
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /the certificate the control plane issued \(spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews\) is not valid before 2026-06-01T00:39:00\.000Z by this host's clock \(2026-06-01T00:31:00\.000Z\): the current one \(valid until 2026-06-01T01:00:00\.000Z\) keeps serving until then/);
    clock.advance(8 * 60_000 - 1);
    await settle();
    assert.equal(holder.current, first);
    clock.advance(1);
    await settle();
    assert.notEqual(holder.current, first, 'installed at its notBefore');
    assert.equal(holder.current!.notBefore, Date.parse('2026-06-01T00:39:00.000Z'));
    await identity.close();
  });
  it("renews when a connection asks (holder.renewer: the certificate expired while the process was frozen and the renewal timer is late), once per certificate; none after close", async () => {
    const { clock, holder, identity, calls } = await setup();
    await identity.start();
    await settle();
    const first = holder.current!;
    const before = calls();
    // Timers never ran: the mesh clock stood still while the wall clock went past the expiry.
    holder.renewer?.();
    holder.renewer?.(); // a second connection: the renewal is already asked for
    clock.advance(0);
    await settle();
    await settle();
    assert.equal(calls(), before + 1, 'one CSR');
    assert.notEqual(holder.current, first, 'a new certificate, without the renewal timer');
    holder.renewer?.(); // the new certificate may be renewed early once too
    clock.advance(0);
    await settle();
    await settle();
    assert.equal(calls(), before + 2);
    await identity.close();
    assert.equal(holder.renewer, undefined, 'closed: nothing renews');
  });
});
