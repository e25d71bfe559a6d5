/**
 * An HTTPRoute `retry` with `attempts: 0` and `timeouts.backendRequest`: istiod writes
 * `retries: {attempts: 0, perTryTimeout}` (conversion.go), and Envoy gets no retry policy for it
 * (retry.ConvertPolicy returns nil for attempts <= 0), so the call has no per-try timeout and,
 * without `timeouts.request`, no route timeout.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc } from '../helpers/config.ts';
import { compile, decide, req } from '../helpers/route-decisions.ts';

const SERVICE = doc('v1', 'Service', 'reviews', 'selector: {app: reviews}\nports: [{name: http, port: 9080}]');
const route = (rule: string) => doc('gateway.networking.k8s.io/v1', 'HTTPRoute', 'r', `parentRefs: [{group: "", kind: Service, name: reviews}]\nrules:\n- ${rule}\n  backendRefs: [{name: reviews, port: 9080}]`);

describe('HTTPRoute retry attempts 0 with timeouts.backendRequest', () => {
  it('no per-try timeout and no route timeout (no Envoy retry policy)', () => {
    const d = decide(compile([SERVICE, route('retry: {attempts: 0}\n  timeouts: {backendRequest: 200ms}')]), req('reviews:9080'));
    assert.equal(d.route.retry.attempts, 0);
    assert.equal(d.route.retry.perTryTimeoutMs, undefined);
    assert.equal(d.route.timeoutMs, undefined);
  });
  it('attempts 1 keeps backendRequest as the per-try timeout', () => {
    const d = decide(compile([SERVICE, route('retry: {attempts: 1}\n  timeouts: {request: 1s, backendRequest: 200ms}')]), req('reviews:9080'));
    assert.equal(d.route.retry.perTryTimeoutMs, 200);
    assert.equal(d.route.timeoutMs, 1000);
  });
});
