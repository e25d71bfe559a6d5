/**
 * Access logs through real meshes and upstreams: client-side lines from `mesh.fetch` and
 * `mesh.dispatcher` calls (success, retries, fault abort and delay, ejection), server-side
 * lines from `meshlet:inbound:end` messages (authorization deny), the Telemetry resource
 * enabling, filtering and disabling them, JSON and custom formats, and a file as the output.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { channels, type InboundEndMessage } from '../../src/core/observe.ts';
import { createMesh, ManualClock, type Mesh, type MeshOptions } from '../../src/index.ts';
import { call, destinationRule, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const HOST = 'ratings.default.svc.cluster.local';
const T0 = Date.UTC(2026, 11, 3, 4, 5, 6);

/** Polls `cond` every 2 ms (up to 2 s of real time: a bound on a hang, not a timing assertion). */
async function until(cond: () => boolean, what: string): Promise<void> {
  const end = performance.now() + 2000;
  while (!cond()) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A logger that keeps access-log entries (the mesh's own info messages start with "meshlet:") and warnings. */
function capture() {
  const entries: unknown[] = [];
  const warnings: string[] = [];
  return {
    entries,
    warnings,
    lines: () => entries.filter((e): e is string => typeof e === 'string'),
    logger: {
      warn: (m: string) => warnings.push(m),
      info: (m: unknown) => {
        if (typeof m !== 'string' || !m.startsWith('meshlet:')) entries.push(m);
      },
    },
  };
}

function telemetry(name: string, spec: Record<string, unknown>, namespace = 'istio-system'): object {
  return { apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name, namespace }, spec };
}

const rules = [
  { name: 'abort', match: [{ uri: { prefix: '/abort' } }], route: [{ destination: { host: 'ratings' } }], fault: { abort: { httpStatus: 503, percentage: { value: 100 } } } },
  { name: 'delay', match: [{ uri: { prefix: '/delay' } }], route: [{ destination: { host: 'ratings' } }], fault: { delay: { fixedDelay: '30ms', percentage: { value: 100 } } } },
  { name: 'ok', route: [{ destination: { host: 'ratings' } }] },
];

/** A server-side message as the server adapters publish it (the trace helper wires the adapters). */
function inboundEnd(mesh: Mesh, over: Partial<InboundEndMessage> = {}): InboundEndMessage {
  return {
    workload: mesh.identity,
    request: {},
    protocol: 'http1',
    method: 'GET',
    scheme: 'http',
    authority: 'reviews:9080',
    path: '/reviews/1',
    headers: { 'user-agent': 'curl/8.5.0', 'x-request-id': 'req-7' },
    status: 200,
    grpcStatus: -1,
    flags: '',
    details: 'via_upstream',
    deniedBy: undefined,
    requestBytes: 0,
    responseBytes: 12,
    durationMs: 3,
    mtls: false,
    peer: undefined,
    requestPrincipal: undefined,
    authzPolicy: undefined,
    remoteAddress: '10.0.0.5',
    remotePort: 40000,
    localAddress: '10.0.0.7',
    localPort: 9080,
    sni: undefined,
    responseHeaders: undefined,
    error: undefined,
    ...over,
  };
}

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
    assert.deepEqual(log.lines(), [
      `[2026-12-03T04:05:06.000Z] "POST /ok?x=1 HTTP/1.1" 200 - via_upstream - "-" 5 7 0 - "10.9.9.9" "undici" "rid-1" "ratings:9080" "${ep}" outbound|9080||${HOST} - - - - ratings.ok`,
      `[2026-12-03T04:05:06.000Z] "GET /plain HTTP/1.1" 200 - via_upstream - "-" 0 7 0 - "-" "-" "-" "ratings:9080" "${ep}" outbound|9080||${HOST} - - - - ratings.ok`,
    ]);
  });

  test('a fault abort: FI, fault_filter_abort, no upstream host', async () => {
    log.entries.length = 0;
    const hits = up.hits;
    assert.equal((await call(mesh, 'http://ratings:9080/abort')).status, 503);
    assert.equal(up.hits, hits);
    assert.deepEqual(log.lines(), [`[2026-12-03T04:05:06.000Z] "GET /abort HTTP/1.1" 503 FI fault_filter_abort - "-" 0 18 0 - "-" "undici" "-" "ratings:9080" "-" outbound|9080||${HOST} - - - - ratings.abort`]);
  });

  test('a fault delay: DI, and the delay in the duration (ManualClock)', async () => {
    log.entries.length = 0;
    const start = clock.now();
    const p = call(mesh, 'http://ratings:9080/delay');
    await until(() => clock.pending === 1, 'the request to wait on the fault delay');
    clock.advance(30);
    assert.equal((await p).status, 200);
    assert.deepEqual(log.lines(), [`[2026-12-03T04:05:06.000Z] "GET /delay HTTP/1.1" 200 DI via_upstream - "-" 0 7 30 - "-" "undici" "-" "ratings:9080" "127.0.0.1:${up.port}" outbound|9080||${HOST} - - - - ratings.delay`]);
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

describe('Telemetry accessLogging: filters, modes, disabled, providers', () => {
  let up: Upstream;
  const meshes: Mesh[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-al-'));

  before(async () => {
    up = await startUpstream('ratings', (req, res) => {
      res.statusCode = req.url === '/fail' ? 500 : 200;
      res.end('x');
    });
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function meshWith(extra: object[], o: Partial<MeshOptions> = {}) {
    const log = capture();
    const mesh = await createMesh({
      service: 'reviews',
      clock: new ManualClock(T0),
      logger: log.logger,
      config: [serviceEntry('ratings', HOST, 9080, [{ port: up.port }]), ...extra],
      ...o,
    });
    meshes.push(mesh);
    return { mesh, log };
  }

  test('filter response.code >= 400 (the expression Istio documents): only failures are logged', async () => {
    const { mesh, log } = await meshWith([telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'envoy' }], filter: { expression: 'response.code >= 400' } }] })]);
    await call(mesh, 'http://ratings:9080/ok');
    await call(mesh, 'http://ratings:9080/fail');
    channels.inboundEnd.publish(inboundEnd(mesh, { status: 200 }));
    channels.inboundEnd.publish(inboundEnd(mesh, { status: 503, flags: 'UAEX', details: 'ext_authz_error' }));
    const lines = log.lines();
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0] as string, /"GET \/fail HTTP\/1\.1" 500 - via_upstream/);
    assert.match(lines[1] as string, /" 503 UAEX ext_authz_error /);
  });

  test('a filter reading an attribute the request lacks is false: nothing logged (Envoy)', async () => {
    const { mesh, log } = await meshWith([telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'envoy' }], filter: { expression: "request.headers['x-debug'] == '1'" } }] })]);
    await call(mesh, 'http://ratings:9080/ok');
    await call(mesh, 'http://ratings:9080/ok', { headers: { 'x-debug': '1' } });
    assert.equal(log.lines().length, 1);
  });

  test('disabled in the namespace turns off what the root enabled, and the MeshConfig file too', async () => {
    const { mesh, log } = await meshWith([telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'envoy' }] }] }), telemetry('off', { accessLogging: [{ disabled: true }] }, 'default')], {
      telemetry: { accessLog: { file: '/dev/stdout' } },
    });
    await call(mesh, 'http://ratings:9080/ok');
    channels.inboundEnd.publish(inboundEnd(mesh));
    assert.deepEqual(log.entries, []);
  });

  test('match.mode SERVER: requests served are logged, calls made are not', async () => {
    const { mesh, log } = await meshWith([telemetry('mesh-default', { accessLogging: [{ match: { mode: 'SERVER' }, providers: [{ name: 'envoy' }] }] })]);
    await call(mesh, 'http://ratings:9080/ok');
    channels.inboundEnd.publish(inboundEnd(mesh));
    assert.equal(log.lines().length, 1);
    assert.match(log.lines()[0] as string, /inbound\|9080\|\|/);
  });

  test('defaultProviders: a Telemetry that enables logging without naming a provider', async () => {
    const { mesh, log } = await meshWith([telemetry('mesh-default', { accessLogging: [{}] })], { telemetry: { accessLog: { defaultProviders: ['envoy'] } } });
    await call(mesh, 'http://ratings:9080/ok');
    assert.equal(log.lines().length, 1);
  });

  test("JSON encoding: Istio's JSON format as an object to logger.info", async () => {
    const { mesh, log } = await meshWith([], { telemetry: { accessLog: { file: '/dev/stdout', encoding: 'JSON' } } });
    await call(mesh, 'http://ratings:9080/ok', { headers: { 'x-request-id': 'j-1' } });
    assert.equal(log.entries.length, 1);
    const o = log.entries[0] as Record<string, unknown>;
    assert.equal(o['start_time'], '2026-12-03T04:05:06.000Z');
    assert.equal(o['response_code'], 200);
    assert.equal(o['response_flags'], '-');
    assert.equal(o['request_id'], 'j-1');
    assert.equal(o['upstream_cluster'], `outbound|9080||${HOST}`);
    assert.equal(o['upstream_host'], `127.0.0.1:${up.port}`);
    assert.equal(o['x_forwarded_for'], null);
    assert.equal(o['duration'], 0);
  });

  test('an envoyFileAccessLog provider with labels, writing to a file', async () => {
    const file = join(dir, 'access.log');
    const { mesh } = await meshWith([telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'json-file' }] }] })], {
      extensionProviders: [{ name: 'json-file', envoyFileAccessLog: { path: file, logFormat: { labels: { code: '%RESPONSE_CODE%', host: '%CEL(request.host)%', peer: '%CEL(xds.cluster_name)%' } } } }],
    });
    await call(mesh, 'http://ratings:9080/ok');
    await call(mesh, 'http://ratings:9080/fail');
    await mesh.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines, [
      { code: 200, host: 'ratings:9080', peer: `outbound|9080||${HOST}` },
      { code: 500, host: 'ratings:9080', peer: `outbound|9080||${HOST}` },
    ]);
  });

  test('a filter meshlet cannot compile: a warning, and nothing logged by that provider', async () => {
    const { mesh, log } = await meshWith([telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'envoy' }], filter: { expression: 'lower(request.host) == "x"' } }] })]);
    await call(mesh, 'http://ratings:9080/ok');
    assert.deepEqual(log.entries, []);
    assert.ok(log.warnings.some((w) => /access log "envoy": filter invalid CEL expression "lower\(request\.host\) == \\"x\\"": unknown function lower\(\) at 0; nothing is logged/.test(w)), log.warnings.join('\n'));
  });
});

describe('a file that cannot be written', () => {
  test('one warning, lines dropped, calls unaffected', async () => {
    const up = await startUpstream('ratings');
    const log = capture();
    const mesh = await createMesh({
      service: 'reviews',
      logger: log.logger,
      telemetry: { accessLog: { file: '/nonexistent-dir/meshlet/access.log' } },
      config: [serviceEntry('ratings', HOST, 9080, [{ port: up.port }])],
    });
    try {
      assert.equal((await call(mesh, 'http://ratings:9080/')).status, 200);
      await until(() => log.warnings.length > 0, 'the write error');
      assert.equal((await call(mesh, 'http://ratings:9080/')).status, 200);
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(log.warnings, ["meshlet: access log /nonexistent-dir/meshlet/access.log: ENOENT: no such file or directory, open '/nonexistent-dir/meshlet/access.log'; its lines are dropped"]);
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});
