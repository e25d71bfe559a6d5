/**
 * Access-log lines through real meshes and upstreams: client-side lines from `mesh.fetch` and
 * `mesh.dispatcher` calls (success, retries, fault abort and delay, ejection), server-side lines
 * from `meshlet:inbound:end` messages (authorization deny, admitted), and what a mesh without
 * access logs costs (no subscription).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { channels } from '../../src/core/observe.ts';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { capture, HOST, inboundEnd, rules, T0, telemetry, until } from '../helpers/access-log.ts';
import { call, destinationRule, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

/**
 * Lines with a generated `x-request-id` (a call that had none gets one, as from Envoy's outbound
 * listener) written as `<rid>`, and the upstream connection's local end (`%UPSTREAM_LOCAL_ADDRESS%`,
 * an ephemeral port: test/telemetry/access-log-default-local.test.ts checks its value) as `<local>`.
 */
const RID = /"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"/g;
const withRid = (lines: string[]) => lines.map((l) => l.replace(RID, '"<rid>"').replace(/( outbound\|\S+) 127\.0\.0\.1:\d+ /, '$1 <local> '));

describe('cost', () => {
  test('a mesh without access logs subscribes to nothing; one with them unsubscribes on close', async () => {
    const subscribed = () => [channels.callStart, channels.callEnd, channels.inboundEnd].map((c) => c.hasSubscribers);
    const quiet = await createMesh({ service: 'reviews', logger: { warn: () => undefined }, config: [] });
    assert.deepEqual(subscribed(), [false, false, false]);
    const logging = await createMesh({ service: 'reviews', logger: { warn: () => undefined, info: () => undefined }, telemetry: { accessLog: { file: '/dev/stdout' } }, config: [] });
    assert.deepEqual(subscribed(), [true, true, true]);
    await logging.close();
    await quiet.close();
    assert.deepEqual(subscribed(), [false, false, false]);
  });
});

describe('client-side access log lines (MeshConfig accessLogFile, default text format)', () => {
  let up: Upstream;
  let mesh: Mesh;
  const log = capture();
  const clock = new ManualClock(T0);

  before(async () => {
    up = await startUpstream('ratings');
    mesh = await createMesh({
      service: 'reviews',
      clock,
      logger: log.logger,
      telemetry: { accessLog: { file: '/dev/stdout' } },
      config: [serviceEntry('ratings', HOST, 9080, [{ port: up.port }]), virtualService('ratings', ['ratings'], rules)],
    });
  });
  after(async () => {
    await mesh.close();
    await up.close();
  });

  test('a success, through mesh.fetch and through mesh.dispatcher', async () => {
    log.entries.length = 0;
    await call(mesh, 'http://ratings:9080/ok?x=1', { method: 'POST', body: 'hello', headers: { 'x-request-id': 'rid-1', 'x-forwarded-for': '10.9.9.9' } });
    const r = await request('http://ratings:9080/plain', { dispatcher: mesh.dispatcher });
    await r.body.text();
    const ep = `127.0.0.1:${up.port}`;
    assert.deepEqual(withRid(log.lines()), [
      `[2026-12-03T04:05:06.000Z] "POST /ok?x=1 HTTP/1.1" 200 - via_upstream - "-" 5 7 0 0 "10.9.9.9" "undici" "rid-1" "ratings:9080" "${ep}" outbound|9080||${HOST} <local> - - - ratings.ok`,
      `[2026-12-03T04:05:06.000Z] "GET /plain HTTP/1.1" 200 - via_upstream - "-" 0 7 0 0 "-" "-" "<rid>" "ratings:9080" "${ep}" outbound|9080||${HOST} <local> - - - ratings.ok`,
    ]);
  });

  test('a fault abort: FI, fault_filter_abort, no upstream host', async () => {
    log.entries.length = 0;
    const hits = up.hits;
    assert.equal((await call(mesh, 'http://ratings:9080/abort')).status, 503);
    assert.equal(up.hits, hits);
    assert.deepEqual(withRid(log.lines()), [`[2026-12-03T04:05:06.000Z] "GET /abort HTTP/1.1" 503 FI fault_filter_abort - "-" 0 18 0 - "-" "undici" "<rid>" "ratings:9080" "-" outbound|9080||${HOST} - - - - ratings.abort`]);
  });

  test('a fault delay: DI, and the delay in the duration (ManualClock)', async () => {
    log.entries.length = 0;
    const start = clock.now();
    const p = call(mesh, 'http://ratings:9080/delay');
    await until(() => clock.pending === 1, 'the request to wait on the fault delay');
    clock.advance(30);
    assert.equal((await p).status, 200);
    assert.deepEqual(withRid(log.lines()), [`[2026-12-03T04:05:06.000Z] "GET /delay HTTP/1.1" 200 DI via_upstream - "-" 0 7 30 0 "-" "undici" "<rid>" "ratings:9080" "127.0.0.1:${up.port}" outbound|9080||${HOST} <local> - - - ratings.delay`]);
    // The start time is the clock when the call began (T0), not when it ended (T0 + 30 ms).
    assert.equal(clock.now() - start, 30);
  });
});

describe('retries and ejection', () => {
  let flaky: Upstream;
  let bad: Upstream;
  let mesh: Mesh;
  const log = capture();
  const clock = new ManualClock(T0);

  before(async () => {
    flaky = await startUpstream('flaky', (_q, res) => {
      res.statusCode = 503;
      res.end('busy');
    });
    bad = await startUpstream('bad', (_q, res) => {
      res.statusCode = 502;
      res.end();
    });
    mesh = await createMesh({
      service: 'reviews',
      clock,
      logger: log.logger,
      extensionProviders: [{ name: 'attempts', envoyFileAccessLog: { logFormat: { text: '%REQ(:AUTHORITY)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %UPSTREAM_HOST%' } } }],
      config: [
        serviceEntry('flaky', 'flaky.default.svc.cluster.local', 80, [{ port: flaky.port }]),
        virtualService('flaky', ['flaky'], [{ name: 'r', route: [{ destination: { host: 'flaky' } }], retries: { attempts: 2, retryOn: '5xx' } }]),
        serviceEntry('bad', 'bad.default.svc.cluster.local', 80, [{ port: bad.port }]),
        virtualService('bad', ['bad'], [{ name: 'r', route: [{ destination: { host: 'bad' } }], retries: { attempts: 0 } }]),
        destinationRule('bad', 'bad', { trafficPolicy: { outlierDetection: { consecutiveGatewayErrors: 2, baseEjectionTime: '30s' } } }),
        telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'attempts' }] }] }),
      ],
    });
  });
  after(async () => {
    await mesh.close();
    await flaky.close();
    await bad.close();
  });

  test('retries exhausted: URX, the upstream answer, 3 attempts', async () => {
    log.entries.length = 0;
    let done = false;
    const p = call(mesh, 'http://flaky/').finally(() => {
      done = true;
    });
    // The retry backoffs wait on the mesh clock: move it on while the call is in flight.
    while (!done) {
      if (clock.pending > 0) clock.advance(1000);
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.equal((await p).status, 503);
    assert.equal(flaky.hits, 3);
    assert.deepEqual(log.lines(), [`flaky 503 URX via_upstream 3 127.0.0.1:${flaky.port}`]);
  });

  test('every endpoint ejected: UH, no_healthy_upstream, no upstream host', async () => {
    log.entries.length = 0;
    await call(mesh, 'http://bad/');
    await call(mesh, 'http://bad/');
    assert.equal((await call(mesh, 'http://bad/')).status, 503);
    assert.deepEqual(log.lines(), [`bad 502 - via_upstream 1 127.0.0.1:${bad.port}`, `bad 502 - via_upstream 1 127.0.0.1:${bad.port}`, 'bad 503 UH no_healthy_upstream 1 -']);
  });
});

describe('server-side lines (meshlet:inbound:end)', () => {
  let mesh: Mesh;
  let other: Mesh;
  const log = capture();

  before(async () => {
    mesh = await createMesh({ service: 'reviews', clock: new ManualClock(T0), logger: log.logger, telemetry: { accessLog: { file: '/dev/stdout' } }, config: [] });
    other = await createMesh({ service: 'other', logger: { warn: () => undefined }, config: [] });
  });
  after(async () => {
    await mesh.close();
    await other.close();
  });

  test('an authorization deny: 403 with the matched policy, no upstream', () => {
    log.entries.length = 0;
    channels.inboundEnd.publish(
      inboundEnd(mesh, {
        status: 403,
        details: 'rbac_access_denied_matched_policy[ns[default]-policy[deny-get]-rule[0]]',
        deniedBy: 'authorization',
        authzPolicy: 'default/deny-get',
        responseBytes: 19,
        mtls: true,
        sni: 'outbound_.9080_._.reviews.default.svc.cluster.local',
        peer: { principal: 'spiffe://cluster.local/ns/default/sa/productpage', trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'productpage', address: '10.0.0.5' },
      }),
    );
    assert.deepEqual(log.lines(), [
      '[2026-12-03T04:05:05.997Z] "GET /reviews/1 HTTP/1.1" 403 - rbac_access_denied_matched_policy[ns[default]-policy[deny-get]-rule[0]] - "-" 0 19 3 - "-" "curl/8.5.0" "req-7" "reviews:9080" "-" inbound|9080|| - 10.0.0.7:9080 10.0.0.5:40000 outbound_.9080_._.reviews.default.svc.cluster.local default',
    ]);
  });

  test("an admitted request; another mesh's messages are not this mesh's", () => {
    log.entries.length = 0;
    channels.inboundEnd.publish(inboundEnd(other));
    channels.inboundEnd.publish(inboundEnd(mesh));
    assert.deepEqual(log.lines(), [
      '[2026-12-03T04:05:05.997Z] "GET /reviews/1 HTTP/1.1" 200 - via_upstream - "-" 0 12 3 - "-" "curl/8.5.0" "req-7" "reviews:9080" "10.0.0.7:9080" inbound|9080|| - 10.0.0.7:9080 10.0.0.5:40000 - default',
    ]);
  });
});

describe('a caller that goes away', () => {
  test('0 DC downstream_remote_disconnect, with the endpoint it was waiting on', async () => {
    let release: () => void = () => undefined;
    const slow = await startUpstream('slow', (_q, res) => {
      release = () => res.end('late');
    });
    const log = capture();
    const mesh = await createMesh({
      service: 'reviews',
      clock: new ManualClock(T0),
      logger: log.logger,
      telemetry: { accessLog: { file: '/dev/stdout' } },
      config: [serviceEntry('slow', 'slow.default.svc.cluster.local', 80, [{ port: slow.port }])],
    });
    try {
      const ac = new AbortController();
      const p = mesh.fetch('http://slow/wait', { signal: ac.signal });
      await until(() => slow.hits === 1, 'the upstream to get the request');
      ac.abort();
      await assert.rejects(p);
      await until(() => log.lines().length === 1, 'the line');
      assert.deepEqual(withRid(log.lines()), [`[2026-12-03T04:05:06.000Z] "GET /wait HTTP/1.1" 0 DC downstream_remote_disconnect - "-" 0 0 0 - "-" "undici" "<rid>" "slow" "127.0.0.1:${slow.port}" outbound|80||slow.default.svc.cluster.local <local> - - - default`]);
    } finally {
      release();
      await mesh.close();
      await slow.close();
    }
  });
});
