import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StatusDocument, WorkloadStatus } from '../../src/control-plane/protocol.ts';
import { MeshletError } from '../../src/core/errors.ts';
import type { ClientTarget } from '../../src/cli/client.ts';
import { DistributionJudge, type ReplicaView, waitForDistribution, waitOption, waitOutcome } from '../../src/cli/wait.ts';

const V = 'aaaaaaaaaaaa';
const OLD = '000000000000';
const NEWER = 'bbbbbbbbbbbb';

function workload(service: string, acked: string | undefined, extra: Partial<WorkloadStatus> = {}): WorkloadStatus {
  return {
    connection: `c-${service}`,
    service,
    namespace: 'default',
    labels: { app: service },
    peer: '127.0.0.1',
    connectedAt: '2026-12-06T00:00:00.000Z',
    sent: { config: acked },
    acked: acked === undefined ? {} : { config: { version: acked, at: '2026-12-06T00:00:01.000Z' } },
    ...extra,
  };
}

function replica(url: string, configVersion: string, workloads: WorkloadStatus[]): ReplicaView {
  return { url, status: { configVersion, workloads } as unknown as StatusDocument };
}

describe('--wait: which workloads run the applied config version', () => {
  it('is done when every connected workload ACKed the version; a disconnected one does not count', () => {
    const d = new DistributionJudge(V).judge([replica('a', V, [workload('reviews', V), workload('ratings', V), workload('gone', OLD, { disconnectedAt: '2026-12-06T00:00:02.000Z' })])]);
    assert.deepEqual({ done: d.done, total: d.total, synced: d.synced, pending: d.pending }, { done: true, total: 2, synced: 2, pending: [] });
  });

  it('waits for a workload still at an older version, and names it with that version', () => {
    const d = new DistributionJudge(V).judge([replica('a', V, [workload('reviews', V), workload('ratings', OLD), workload('fresh', undefined)])]);
    assert.equal(d.done, false);
    assert.equal(d.synced, 1);
    assert.deepEqual(d.pending, [
      { workload: 'default/ratings (connection c-ratings)', at: OLD },
      { workload: 'default/fresh (connection c-fresh)', at: '' },
    ]);
  });

  it('a NACK of the version is a refusal with its reasons; a NACK of an older version is not', () => {
    const nackV = workload('ratings', OLD, { nacked: { kind: 'config', version: V, at: 'x', reasons: ['VirtualService default/x: bad'] } });
    const nackOld = workload('details', OLD, { nacked: { kind: 'config', version: OLD, at: 'x', reasons: ['old'] } });
    const nackEndpoints = workload('web', V, { nacked: { kind: 'endpoints', version: V, at: 'x', reasons: ['eps'] } });
    const d = new DistributionJudge(V).judge([replica('a', V, [nackV, nackOld, nackEndpoints])]);
    assert.deepEqual(d.refused, [{ workload: 'default/ratings (connection c-ratings)', reasons: ['VirtualService default/x: bad'] }]);
    assert.deepEqual(
      d.pending.map((p) => p.workload),
      ['default/details (connection c-details)'],
    );
    assert.equal(d.synced, 1, 'an endpoints NACK does not hold back the config');
    assert.equal(d.done, false);
  });

  it('a replica that has not served the version yet (etcd watch behind) holds the wait, whatever its workloads ACKed', () => {
    const judge = new DistributionJudge(V);
    let d = judge.judge([replica('a', V, [workload('reviews', V)]), replica('b', OLD, [workload('ratings', OLD)])]);
    assert.equal(d.done, false);
    assert.deepEqual(d.behind, [`b serves ${OLD}`]);
    assert.equal(d.synced, 1);
    d = judge.judge([replica('a', V, [workload('reviews', V)]), replica('b', V, [workload('ratings', V)])]);
    assert.equal(d.done, true);
    assert.deepEqual(d.behind, []);
  });

  it('a newer version the replica serves after this one (a later change) counts: its workloads have moved past', () => {
    const judge = new DistributionJudge(V);
    assert.equal(judge.judge([replica('a', V, [workload('reviews', OLD)])]).done, false);
    const d = judge.judge([replica('a', NEWER, [workload('reviews', NEWER)])]);
    assert.equal(d.done, true);
    assert.deepEqual(d.newer, [NEWER]);
    // Never seen at V: another version is not known to be newer (it may be the one before).
    const fresh = new DistributionJudge(V).judge([replica('a', NEWER, [workload('reviews', NEWER)])]);
    assert.equal(fresh.done, false);
    assert.deepEqual(fresh.behind, [`a serves ${NEWER}`]);
  });

  it('no replica answering, or no workload connected, is never done', () => {
    assert.equal(new DistributionJudge(V).judge([]).done, false);
    assert.equal(new DistributionJudge(V).judge([replica('a', V, [workload('gone', V, { disconnectedAt: 'x' })])]).done, false);
  });
});

describe('--wait: the loop', () => {
  const target: ClientTarget = { urls: ['http://a', 'http://b'], token: 't', timeoutMs: 15_000 };

  /** A fake world: time moves only by sleeps; each URL answers from its script, one entry per round (the last repeats). */
  function io(script: Record<string, (StatusDocument | Error)[]>) {
    let now = 0;
    const rounds: Record<string, number> = {};
    return {
      now: () => now,
      sleep: async (ms: number) => {
        now += ms;
      },
      status: async (url: string) => {
        const list = script[url] ?? [];
        const i = Math.min(rounds[url] ?? 0, list.length - 1);
        rounds[url] = (rounds[url] ?? 0) + 1;
        const r = list[i]!;
        if (r instanceof Error) throw r;
        return r;
      },
      get elapsed() {
        return now;
      },
    };
  }
  const doc = (v: string, ws: WorkloadStatus[]) => ({ configVersion: v, workloads: ws }) as unknown as StatusDocument;

  it('returns once every workload ACKed, after polling', async () => {
    const w = io({ 'http://a': [doc(V, [workload('reviews', OLD)]), doc(V, [workload('reviews', OLD)]), doc(V, [workload('reviews', V)])], 'http://b': [doc(V, [])] });
    const r = await waitForDistribution(target, V, 30_000, w);
    assert.equal(r.timedOut, false);
    assert.equal(r.distribution.done, true);
    assert.equal(w.elapsed, 1000, 'two sleeps of 500 ms');
    assert.deepEqual(waitOutcome(r, 30_000), { line: `config version ${V}: 1/1 connected workloads ACKed it` });
  });

  it('times out naming the workloads not there and the replica behind; the error says the change stays applied', async () => {
    const w = io({ 'http://a': [doc(V, [workload('reviews', OLD)])], 'http://b': [doc(OLD, [])] });
    const r = await waitForDistribution(target, V, 2_000, w);
    assert.equal(r.timedOut, true);
    assert.equal(w.elapsed, 2000);
    const out = waitOutcome(r, 2_000);
    assert.ok('error' in out);
    assert.ok(out.error instanceof MeshletError);
    assert.match(out.error.message, /^timed out after 2 s \(--wait-timeout\) waiting for config version aaaaaaaaaaaa \(the change stays applied\): 0\/1 connected workloads ACKed it; not yet:/);
    assert.match(out.error.message, /replica http:\/\/b serves 000000000000, not yet aaaaaaaaaaaa/);
    assert.match(out.error.message, /default\/reviews \(connection c-reviews\) is at config version 000000000000/);
  });

  it('times out when no workload is connected, saying so', async () => {
    const w = io({ 'http://a': [doc(V, [])], 'http://b': [doc(V, [])] });
    const r = await waitForDistribution(target, V, 1_000, w);
    assert.equal(r.timedOut, true);
    const out = waitOutcome(r, 1_000);
    assert.ok('error' in out);
    assert.match(out.error.message, /0\/0 connected workloads ACKed it; not yet:\n {2}no workload is connected to the control plane\(s\) that answered/);
  });

  it('stops at the first NACK of the version, with its reasons', async () => {
    const nack = workload('ratings', OLD, { nacked: { kind: 'config', version: V, at: 'x', reasons: ['VirtualService default/x: bad\nline'] } });
    const w = io({ 'http://a': [doc(V, [nack])], 'http://b': [doc(V, [])] });
    const r = await waitForDistribution(target, V, 30_000, w);
    assert.equal(w.elapsed, 0);
    const out = waitOutcome(r, 30_000);
    assert.ok('error' in out);
    assert.match(out.error.message, /config version aaaaaaaaaaaa was refused \(NACK\) by 1 workload\(s\), which keep their previous config \(the change stays applied\):\n {2}default\/ratings \(connection c-ratings\): VirtualService default\/x: bad\\nline/);
  });

  it('a refusal (a token that may not read the status) is thrown at once', async () => {
    const refused = new MeshletError('MESHLET_ERR_CONTROL_PLANE', 'forbidden');
    const w = io({ 'http://a': [refused], 'http://b': [doc(V, [])] });
    await assert.rejects(waitForDistribution(target, V, 30_000, w), refused);
  });
});

describe('--wait options', () => {
  it('defaults to 30 s, takes a duration, refuses nonsense and --wait-timeout alone', () => {
    assert.equal(waitOption({}), undefined);
    assert.equal(waitOption({ wait: true }), 30_000);
    assert.equal(waitOption({ wait: true, 'wait-timeout': '2m' }), 120_000);
    assert.throws(() => waitOption({ wait: true, 'wait-timeout': 'soon' }), /--wait-timeout: /);
    assert.throws(() => waitOption({ wait: true, 'wait-timeout': '0s' }), /--wait-timeout: must be more than 0/);
    assert.throws(() => waitOption({ 'wait-timeout': '5s' }), /--wait-timeout: only with --wait/);
  });
});
