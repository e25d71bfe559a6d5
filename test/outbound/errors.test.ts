/**
 * How mesh-made failures reach callers (istio-surface §6.9): `errors: 'respond'` (default)
 * answers as a sidecar would, with the Envoy flags; `errors: 'throw'` rejects with a typed
 * MeshletError carrying the code, flags and context. Bad options and bad config fail
 * `createMesh` with errors that name every problem.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { ConfigError, createMesh, InvalidArgumentError, type Mesh, type MeshOptions, MeshletError } from '../../src/index.ts';
import { MESH_OPTION_NAMES } from '../../src/mesh-options.ts';
import { call, deadPort, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const SVC = 'svc.default.svc.cluster.local';
const DOWN = 'down.default.svc.cluster.local';

/** The rejection of `p`, which must reject. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => assert.fail(`expected a rejection, got ${String(v)}`),
    (e: unknown) => e,
  );
}

describe('mesh-made failures', () => {
  let up: Upstream;
  let dead: number;
  let throwing: Mesh;
  let responding: Mesh;

  before(async () => {
    up = await startUpstream('svc');
    dead = await deadPort();
    const config = [
      serviceEntry('svc', SVC, 80, [{ port: up.port }]),
      serviceEntry('down', DOWN, 80, [{ port: dead }]),
      virtualService('svc', ['svc'], [{ name: 'only', match: [{ uri: { prefix: '/only' } }], route: [{ destination: { host: 'svc' } }] }]),
      // No `retries`: Istio's default policy (2 retries on connect-failure, …) applies.
      virtualService('down', ['down'], [{ name: 'all', route: [{ destination: { host: 'down' } }] }]),
    ];
    throwing = await createMesh({ service: 'client', errors: 'throw', config });
    responding = await createMesh({ service: 'client', config });
  });

  after(async () => {
    await Promise.all([throwing.close(), responding.close()]);
    await up.close();
  });

  test("errors: 'throw' — no route rejects with MESHLET_ERR_NO_ROUTE, from mesh.fetch and from undici.request", async () => {
    const e1 = await rejection(throwing.fetch('http://svc/elsewhere'));
    assert.ok(e1 instanceof MeshletError, `got ${String(e1)}`);
    assert.equal(e1.code, 'MESHLET_ERR_NO_ROUTE');
    assert.equal(e1.flags, 'NR');
    assert.equal(e1.httpStatus, 404);
    assert.match(e1.message, /no route matched GET svc\/elsewhere/);

    const e2 = await rejection(request('http://svc/elsewhere', { method: 'DELETE', dispatcher: throwing.dispatcher }));
    assert.ok(e2 instanceof MeshletError, `got ${String(e2)}`);
    assert.equal(e2.code, 'MESHLET_ERR_NO_ROUTE');
    assert.match(e2.message, /DELETE/);
    assert.equal(up.hits, 0);

    // A routed request still works in throw mode.
    assert.equal((await call(throwing, 'http://svc/only')).upstream, 'svc');
  });

  test("errors: 'throw' — connection refused after retries rejects with MESHLET_ERR_UPSTREAM_CONNECT, flags UF and URX, route and cluster", async () => {
    for (const attempt of [
      () => throwing.fetch('http://down/x'),
      () => request('http://down/x', { dispatcher: throwing.dispatcher }),
    ]) {
      const e = await rejection(attempt());
      assert.ok(e instanceof MeshletError, `got ${String(e)}`);
      assert.equal(e.code, 'MESHLET_ERR_UPSTREAM_CONNECT');
      assert.deepEqual(e.flags.split(',').sort(), ['UF', 'URX']);
      assert.equal(e.httpStatus, 503);
      assert.equal(e.route, 'down.all');
      assert.equal(e.cluster, `outbound|80||${DOWN}`);
      assert.equal(e.endpoint, `127.0.0.1:${dead}`);
      assert.equal(e.attempt, 3, '1 try + the 2 retries of the Istio default policy');
      assert.match(e.message, /^route "down\.all", cluster outbound\|80\|\|down\.default\.svc\.cluster\.local, endpoint 127\.0\.0\.1:\d+, attempt 3: /);
      assert.match(e.message, /upstream connect error or disconnect\/reset before headers\. retried and the latest reset reason: remote connection failure/);
      assert.ok(e.cause instanceof Error, 'the transport error is the cause');
    }
  });

  test("the default 'respond' mode answers the same failures as a sidecar: 503 URX,UF and Envoy's body; 404 NR", async () => {
    const r = await call(responding, 'http://down/x');
    assert.equal(r.status, 503);
    assert.equal(r.flags, 'URX,UF');
    assert.ok(r.body.startsWith('upstream connect error or disconnect/reset before headers'), r.body);
    assert.match(r.body, /retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused$/);
    assert.equal(r.headers.get('content-type'), 'text/plain');

    const u = await request('http://down/x', { dispatcher: responding.dispatcher });
    assert.equal(u.statusCode, 503);
    assert.equal(u.headers['x-meshlet-response-flags'], 'URX,UF');
    assert.match(await u.body.text(), /^upstream connect error or disconnect\/reset before headers/);

    const nr = await call(responding, 'http://svc/elsewhere');
    assert.equal(nr.status, 404);
    assert.equal(nr.flags, 'NR');
  });
});

describe('createMesh argument and config errors', () => {
  const good = (): object[] => [serviceEntry('svc', SVC, 80, [{ port: 8080 }])];

  test('bad options throw InvalidArgumentError naming the option', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['no options', undefined, /options are required/],
      ['missing service', { config: good() }, /`service`/],
      ['empty service', { service: '', config: good() }, /`service`/],
      ['service not a string', { service: 42, config: good() }, /`service`/],
      ['missing config', { service: 'client' }, /`config`/],
      ['bad errors value', { service: 'client', config: good(), errors: 'explode' }, /`errors` must be 'respond' or 'throw', got "explode"/],
      ['bad outboundTrafficPolicy', { service: 'client', config: good(), outboundTrafficPolicy: 'ALLOW' }, /`outboundTrafficPolicy`/],
      ['enableAutoMtls not a boolean', { service: 'client', config: good(), enableAutoMtls: 'yes' }, /`enableAutoMtls` must be true or false, got "yes"/],
      // 0 forgot each label set as its data point was added (meshlet's own series: nothing reached a reader).
      ['telemetry.metrics.idleSeriesMs 0', { service: 'client', config: good(), telemetry: { metrics: { idleSeriesMs: 0 } } }, /`telemetry\.metrics\.idleSeriesMs` must be a number of milliseconds of at least 1, got 0$/],
      ['telemetry.metrics.idleSeriesMs negative', { service: 'client', config: good(), telemetry: { metrics: { idleSeriesMs: -1 } } }, /`telemetry\.metrics\.idleSeriesMs` must be .*, got -1$/],
      ['telemetry.metrics.idleSeriesMs a string', { service: 'client', config: good(), telemetry: { metrics: { idleSeriesMs: '10m' } } }, /`telemetry\.metrics\.idleSeriesMs` must be .*, got "10m"$/],
    ];
    for (const [name, options, message] of cases) {
      const e = await rejection(createMesh(options as MeshOptions));
      assert.ok(e instanceof InvalidArgumentError, `${name}: got ${String(e)}`);
      assert.ok(e instanceof MeshletError, name);
      assert.equal(e.code, 'MESHLET_ERR_INVALID_ARG', name);
      assert.match(e.message, message, name);
    }
  });

  test('a misspelt option name is refused with the closest known name, at the top level and in nested option objects', async () => {
    const cases: [object, string][] = [
      [{ lables: { app: 'httpbin' } }, 'createMesh: unknown option "lables" (did you mean "labels"?)'],
      [{ namespce: 'prod' }, 'createMesh: unknown option "namespce" (did you mean "namespace"?)'],
      [{ idenity: 'none' }, 'createMesh: unknown option "idenity" (did you mean "identity"?)'],
      [{ frobnicate: true }, 'createMesh: unknown option "frobnicate"'],
      [{ telemetry: { tracng: {} } }, 'createMesh: unknown option "telemetry.tracng" (did you mean "telemetry.tracing"?)'],
      [{ telemetry: { tracing: { samplingPercent: 5 } } }, 'createMesh: unknown option "telemetry.tracing.samplingPercent"'],
      [{ telemetry: { metrics: { enabeld: false } } }, 'createMesh: unknown option "telemetry.metrics.enabeld" (did you mean "telemetry.metrics.enabled"?)'],
      [{ telemetry: { ownMetrics: { endpointLabel: true } } }, 'createMesh: unknown option "telemetry.ownMetrics.endpointLabel" (did you mean "telemetry.ownMetrics.endpointLabels"?)'],
      [{ jwt: { tokenCacheSiz: 10 } }, 'createMesh: unknown option "jwt.tokenCacheSiz" (did you mean "jwt.tokenCacheSize"?)'],
    ];
    for (const [extra, message] of cases) {
      const e = await rejection(createMesh({ service: 'client', config: good(), ...extra } as MeshOptions));
      assert.ok(e instanceof InvalidArgumentError, `${message}: got ${String(e)}`);
      assert.equal(e.message, message);
    }
  });

  test('an option given as undefined is as if absent (exactOptionalPropertyTypes apps pass them), nested ones too', async () => {
    const absent = Object.fromEntries(MESH_OPTION_NAMES.map((k) => [k, undefined]));
    const up = await startUpstream('svc', (_req, res) => {
      res.end('ok');
    });
    const config = [serviceEntry('svc', SVC, 80, [{ port: up.port }])];
    const mesh = await createMesh({
      ...absent,
      service: 'client',
      config,
      jwt: { tokenCacheSize: undefined, maxTokenChars: undefined, jwksCacheDurationMs: undefined, jwksKidRefreshCooldownMs: undefined, dispatcher: undefined },
      telemetry: {
        accessLog: { file: undefined, encoding: undefined, format: undefined, defaultProviders: undefined },
        ownMetrics: { meterProvider: undefined, endpointLabels: undefined },
        tracing: { enabled: undefined, samplingPercentage: undefined, propagation: undefined, providers: undefined, customTags: undefined, meshId: undefined, clusterId: undefined },
        metrics: { enabled: undefined, meterProvider: undefined, maxSeries: undefined, idleSeriesMs: undefined, clusterId: undefined },
      },
    } as MeshOptions);
    try {
      const res = await mesh.fetch(`http://${SVC}/`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'ok');
      assert.equal(mesh.configSource, 'file');
      assert.equal(mesh.diagnostics().identity, undefined, 'identity: undefined is none, as when absent');
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  test('invalid config throws ConfigError listing every error', async () => {
    const config = [
      ...good(),
      virtualService('a', ['svc'], [{ route: [{ destination: { host: 'svc' }, weight: -1 }] }]),
      virtualService('b', ['other'], [{ route: [{ destination: { host: 'svc' } }], timeout: 'soon' }]),
      { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'c', namespace: 'default' }, spec: { host: 'svc', trafficPolicy: { loadBalancer: { simple: 'FASTEST' } } } },
    ];
    const e = await rejection(createMesh({ service: 'client', config }));
    assert.ok(e instanceof ConfigError, `got ${String(e)}`);
    assert.equal(e.code, 'MESHLET_ERR_CONFIG_INVALID');
    const errors = e.issues.filter((i) => i.level === 'error').map(String);
    assert.ok(errors.length >= 3, errors.join('\n'));
    const expected = [/VirtualService default\/a: spec\.http\[0\]\.route\[0\]\.weight/, /VirtualService default\/b: spec\.http\[0\]\.timeout/, /DestinationRule default\/c: spec\.trafficPolicy\.loadBalancer\.simple/];
    for (const re of expected) {
      assert.ok(errors.some((t) => re.test(t)), `${re} in:\n${errors.join('\n')}`);
      assert.match(e.message, re, 'the message lists every error');
    }
    assert.match(e.message, new RegExp(`configuration rejected, ${errors.length} error\\(s\\)`));
  });
});
