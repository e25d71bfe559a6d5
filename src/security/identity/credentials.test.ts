import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../core/clock.ts';
import { CredentialHolder, type CredentialUpdate } from './credentials.ts';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const update = (trustBundle: string): CredentialUpdate => ({ certChain: PEM, privateKey: 'key', trustBundle, spiffeId: 'spiffe://cluster.local/ns/a/sa/b', notBefore: 0, notAfter: 1 });

describe('CredentialHolder', () => {
  it('numbers generations, tells subscribers, and resolves ready()', async () => {
    const h = new CredentialHolder();
    const seen: number[] = [];
    h.subscribe((c) => seen.push(c.generation));
    const ready = h.ready();
    h.set(update(PEM));
    h.set(update(PEM));
    assert.deepEqual(seen, [1, 2]);
    assert.equal((await ready).generation, 1);
  });

  it('refuses a trust bundle without a certificate (TLS would fall back to the public roots)', () => {
    const h = new CredentialHolder();
    assert.throws(() => h.set(update('')), /empty trust bundle .* public root CAs/);
    assert.throws(() => h.set(update('not pem')), /empty trust bundle/);
    assert.equal(h.current, undefined);
  });

  it('pending: an identity is expected and no certificate issued yet; a source giving up is heard', () => {
    const h = new CredentialHolder();
    const changes: boolean[] = [];
    h.onPendingChange(() => changes.push(h.pending));
    assert.equal(h.pending, false, 'no identity configured');
    h.expect(true);
    assert.equal(h.pending, true);
    h.expect(false);
    assert.equal(h.pending, false);
    h.expect(true);
    h.set(update(PEM));
    assert.equal(h.pending, false, 'issued');
    assert.deepEqual(changes, [true, false, true]);
  });

  it("the wait for an expired certificate's renewal runs on the given clock: given up when it has moved the wait, not before", async () => {
    const h = new CredentialHolder();
    h.set(update(PEM)); // notAfter 1: expired
    let asked = 0;
    h.renewer = () => asked++;
    const clock = new ManualClock();
    const wait = h.renewalFor(h.current!, 1000, clock);
    assert.ok(wait !== undefined);
    assert.equal(asked, 1, 'the renewal is asked for');
    let outcome: string | undefined;
    void wait.then((n) => {
      outcome = n === undefined ? 'gave up' : `generation ${n.generation}`;
    });
    clock.advance(999);
    await new Promise((r) => setImmediate(r));
    assert.equal(outcome, undefined, 'not before the wait is over');
    clock.advance(1);
    await new Promise((r) => setImmediate(r));
    assert.equal(outcome, 'gave up');
  });
});
