/**
 * `createMesh({ defaultHttpRetryPolicy })` and MeshConfig's `defaultHttpRetryPolicy`, against
 * real upstreams: the retries of every route without its own `retries` (a VirtualService rule,
 * the default route of a service without one), as istiod gives them (route.go: the route's
 * `retries`, else the mesh's default, through retry.ConvertPolicy). Each attempt is counted by
 * the upstream and by the `x-envoy-attempt-count` it receives.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import { call, deadPort, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const SVC = 'svc.default.svc.cluster.local';
const always503 = (_req: unknown, res: { statusCode: number; end(b: string): void }) => {
  res.statusCode = 503;
  res.end('down');
};

/** A mesh calling `svc` (its endpoints), with a VirtualService of `http` rules when given. */
function meshWith(endpoints: number[], http: unknown[] | undefined, opts: Record<string, unknown>): Promise<Mesh> {
  const config: object[] = [serviceEntry('svc', SVC, 80, endpoints.map((port) => ({ port })))];
  if (http !== undefined) config.push(virtualService('svc', ['svc'], http));
  return createMesh({ service: 'client', random: seededRandom(7), config, ...opts });
}

const attemptCounts = (u: Upstream) => u.seen.map((s) => s.headers['x-envoy-attempt-count']);

describe('defaultHttpRetryPolicy', () => {
  const ups: Upstream[] = [];
  after(async () => {
    await Promise.all(ups.map((u) => u.close()));
  });

  async function upstream(name: string, b: Parameters<typeof startUpstream>[1]): Promise<Upstream> {
    const u = await startUpstream(name, b);
    ups.push(u);
    return u;
  }

  test('a service without a VirtualService: 503s are retried as the mesh default says (3 retries on 503), not as Istio\'s default (no 503)', async () => {
    const bad = await upstream('bad', always503);
    const mesh = await meshWith([bad.port], undefined, { defaultHttpRetryPolicy: { attempts: 3, retryOn: '503', retryIgnorePreviousHosts: false } });
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 503);
      assert.equal(r.flags, 'URX');
      assert.deepEqual(attemptCounts(bad), ['1', '2', '3', '4']);
    } finally {
      await mesh.close();
    }
  });

  test('a VirtualService rule without retries gets it; the retry succeeds', async () => {
    const flaky = await upstream('flaky', (_req, res, hit) => {
      res.statusCode = hit === 1 ? 503 : 200;
      res.end(String(hit));
    });
    const mesh = await meshWith([flaky.port], [{ route: [{ destination: { host: 'svc' } }] }], { defaultHttpRetryPolicy: { attempts: 2, retryOn: 'retriable-status-codes,503', retryIgnorePreviousHosts: false } });
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 200);
      assert.equal(r.body, '2');
      assert.deepEqual(attemptCounts(flaky), ['1', '2']);
    } finally {
      await mesh.close();
    }
  });

  test('a reset before the answer is retried under the mesh default retryOn reset (Istio\'s default does not retry it)', async () => {
    const resetter = await upstream('resetter', (req, res, hit) => {
      if (hit === 1) req.socket.destroy();
      else res.end('second');
    });
    const mesh = await meshWith([resetter.port], undefined, { defaultHttpRetryPolicy: { attempts: 1, retryOn: 'reset', retryIgnorePreviousHosts: false } });
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'second');
      assert.deepEqual(attemptCounts(resetter), ['1', '2']);
    } finally {
      await mesh.close();
    }
  });

  test('a route with its own retries ignores the default wholly: its unset retryOn is Istio\'s default conditions, which leave a 503 alone', async () => {
    const bad = await upstream('bad-own', always503);
    const mesh = await meshWith([bad.port], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 3 } }], { defaultHttpRetryPolicy: { attempts: 3, retryOn: '503', retryIgnorePreviousHosts: false } });
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 503);
      assert.equal(r.flags, null, 'no retry ran');
      assert.deepEqual(attemptCounts(bad), ['1']);
    } finally {
      await mesh.close();
    }
  });

  test('attempts: 0 turns the default retries off: a refused connection is not retried (Istio\'s default retries it twice)', async () => {
    const dead = await deadPort();
    const on = await meshWith([dead], undefined, {});
    try {
      assert.equal((await call(on, 'http://svc/')).flags, 'URX,UF', "Istio's default retries connect failures");
    } finally {
      await on.close();
    }
    for (const off of [{ attempts: 0 }, {}]) {
      const mesh = await meshWith([dead], [{ route: [{ destination: { host: 'svc' } }] }], { defaultHttpRetryPolicy: off });
      try {
        const r = await call(mesh, 'http://svc/');
        assert.equal(r.status, 503);
        assert.equal(r.flags, 'UF', `not retried with ${JSON.stringify(off)}`);
      } finally {
        await mesh.close();
      }
    }
  });

  test('from meshConfig YAML (the istio ConfigMap\'s data.mesh); an explicit option wins over it', async () => {
    const bad = await upstream('bad-yaml', always503);
    const meshConfig = 'defaultHttpRetryPolicy:\n  attempts: 2\n  retryOn: "503"\n  retryIgnorePreviousHosts: false\n';
    const infos: string[] = [];
    const logger = { warn: () => undefined, info: (m: string) => infos.push(m) };
    const mesh = await meshWith([bad.port], undefined, { meshConfig, logger });
    try {
      await call(mesh, 'http://svc/');
      assert.deepEqual(attemptCounts(bad), ['1', '2', '3']);
      assert.ok(!infos.some((m) => m.includes('defaultHttpRetryPolicy')), `not named as not applied: ${infos.join(' | ')}`);
    } finally {
      await mesh.close();
    }
    bad.seen.length = 0;
    const explicit = await meshWith([bad.port], undefined, { meshConfig, defaultHttpRetryPolicy: { attempts: 0 } });
    try {
      await call(explicit, 'http://svc/');
      assert.deepEqual(attemptCounts(bad), ['1']);
    } finally {
      await explicit.close();
    }
  });

  test('the policy of a call shows in mesh.explain()', async () => {
    const mesh = await meshWith([1], undefined, { defaultHttpRetryPolicy: { attempts: 5, retryOn: '5xx' } });
    try {
      assert.equal(mesh.explain({ url: 'http://svc/' }).retry, 'retries 5× on 5xx (mesh defaultHttpRetryPolicy)');
    } finally {
      await mesh.close();
    }
  });
  // istiod's ValidateMeshConfig checks no defaultHttpRetryPolicy, retry.go's parseRetryOn trims each item
  // (strings.TrimSpace), and Envoy's parseRetryOn splits with trimming: "5xx, reset" is taken as it is meant.
  test('retryOn items with spaces around them: applied (trimmed) without a warning that Istio refuses them, which it does not in MeshConfig', async () => {
    const u = await upstream('spaced', always503);
    const warnings: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m), info: () => undefined };
    for (const opts of [{ defaultHttpRetryPolicy: { attempts: 2, retryOn: '5xx, reset' } }, { meshConfig: 'defaultHttpRetryPolicy:\n  attempts: 2\n  retryOn: "5xx, reset"\n' }]) {
      const mesh = await meshWith([u.port], undefined, { ...opts, logger });
      try {
        u.seen.length = 0;
        assert.equal((await call(mesh, 'http://svc/')).status, 503);
        assert.equal(u.seen.length, 3, '5xx retried twice');
      } finally {
        await mesh.close();
      }
    }
    assert.deepEqual(warnings.filter((w) => /spaces/.test(w)), []);
  });
});

describe('defaultHttpRetryPolicy: refused when invalid, naming the option', () => {
  const base = { service: 'client', config: [] as object[] };
  const cases: [name: string, opts: Record<string, unknown>, message: RegExp][] = [
    ['a retryOn that is no policy', { defaultHttpRetryPolicy: { attempts: 2, retryOn: '5xx,bogus' } }, /createMesh: `defaultHttpRetryPolicy` is invalid: defaultHttpRetryPolicy\.retryOn: .*"bogus" is not a retry policy/],
    ['retryOn without attempts', { defaultHttpRetryPolicy: { retryOn: '5xx' } }, /`defaultHttpRetryPolicy` is invalid: defaultHttpRetryPolicy: attempts is required when retryOn is set/],
    ['an unknown field', { defaultHttpRetryPolicy: { attempts: 2, retries: 3 } }, /`defaultHttpRetryPolicy` is invalid: defaultHttpRetryPolicy\.retries: /],
    ['a bad duration', { defaultHttpRetryPolicy: { attempts: 2, perTryTimeout: 'soon' } }, /defaultHttpRetryPolicy\.perTryTimeout: /],
    ['not an object', { defaultHttpRetryPolicy: 3 }, /createMesh: `defaultHttpRetryPolicy` must be an HTTPRetry object/],
    ['from meshConfig: a wrong type (istiod cannot read it)', { meshConfig: 'defaultHttpRetryPolicy: {attempts: 1.5}' }, /createMesh: `meshConfig\.defaultHttpRetryPolicy` is invalid: meshConfig\.defaultHttpRetryPolicy\.attempts: /],
    ['from meshConfig: a bad duration', { meshConfig: 'defaultHttpRetryPolicy: {attempts: 2, perTryTimeout: soon}' }, /`meshConfig\.defaultHttpRetryPolicy` is invalid: meshConfig\.defaultHttpRetryPolicy\.perTryTimeout: /],
  ];
  for (const [name, opts, message] of cases) {
    test(name, async () => {
      await assert.rejects(createMesh({ ...base, ...opts }), message);
    });
  }

  // istiod reads MeshConfig without validating defaultHttpRetryPolicy (ValidateMeshConfig) and converts
  // it as it stands (retry.ConvertPolicy: attempts <= 0 is no policy; parseRetryOn passes unknown items
  // to Envoy, whose parseRetryOn ignores them): an istio ConfigMap istiod runs with must not stop createMesh.
  test('from meshConfig, what only a VirtualService\'s validation refuses: a warning, run as Envoy runs it', async () => {
    const dead = await deadPort();
    const runs: [yaml: string, flags: string, warning: RegExp][] = [
      ['{attempts: 2, retryOn: "connect-failure,bogus,,599"}', 'URX,UF', /meshConfig\.defaultHttpRetryPolicy\.retryOn: .*"bogus" is not a retry policy.*Envoy ignores such items/],
      ['{retryOn: connect-failure}', 'UF', /meshConfig\.defaultHttpRetryPolicy: attempts is required .*turns retries off/],
      ['{attempts: -1}', 'UF', /meshConfig\.defaultHttpRetryPolicy\.attempts: .*turns retries off/],
      ['{attempts: 0, perTryTimeout: 1s}', 'UF', /attempts: 0 disables retries.*turns retries off/],
    ];
    for (const [yaml, flags, warning] of runs) {
      const warnings: string[] = [];
      const mesh = await createMesh({ ...base, config: [serviceEntry('svc', SVC, 80, [{ port: dead }])], meshConfig: `defaultHttpRetryPolicy: ${yaml}\n`, logger: { warn: (m) => warnings.push(m) } });
      try {
        const r = await call(mesh, 'http://svc/');
        assert.equal(r.status, 503, yaml);
        assert.equal(r.flags, flags, `${yaml}: ${flags === 'UF' ? 'retries off' : 'connect failures retried'}`);
      } finally {
        await mesh.close();
      }
      assert.ok(warnings.some((w) => warning.test(w)), `${yaml}: ${warnings.join(' | ')}`);
    }
  });

  test('a number HTTP does not know in retryOn is no status code (istiod\'s parseRetryOn: http.StatusText), so a 599 is not retried', async () => {
    const u599 = await startUpstream('599', (_req, res) => {
      res.statusCode = 599;
      res.end('odd');
    });
    try {
      const mesh = await createMesh({ ...base, config: [serviceEntry('svc', SVC, 80, [{ port: u599.port }])], meshConfig: 'defaultHttpRetryPolicy: {attempts: 2, retryOn: "599"}\n', logger: { warn: () => undefined } });
      try {
        assert.equal((await call(mesh, 'http://svc/')).status, 599);
        assert.equal(u599.seen.length, 1);
      } finally {
        await mesh.close();
      }
    } finally {
      await u599.close();
    }
  });

  test('retryRemoteLocalities (not applied by meshlet) is a warning through the logger', async () => {
    const warnings: string[] = [];
    const mesh = await createMesh({ ...base, defaultHttpRetryPolicy: { attempts: 2, retryRemoteLocalities: true }, logger: { warn: (m) => warnings.push(m) } });
    await mesh.close();
    assert.ok(warnings.some((w) => /defaultHttpRetryPolicy\.retryRemoteLocalities: not supported by meshlet/.test(w)), warnings.join(' | '));
  });

});
