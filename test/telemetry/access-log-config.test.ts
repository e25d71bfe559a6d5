/**
 * Access logs as configuration decides them, through real meshes: the Telemetry resource
 * enabling, filtering and disabling them (and a change to it applying), MeshConfig options and
 * their validation, JSON and custom formats, a file as the output, and what happens when it
 * cannot be written.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { channels } from '../../src/core/observe.ts';
import { createMesh, ManualClock, type Mesh, type MeshOptions } from '../../src/index.ts';
import { capture, HOST, inboundEnd, T0, telemetry, until } from '../helpers/access-log.ts';
import { call, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';

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
      assert.deepEqual(log.warnings, ["meshlet: access log /nonexistent-dir/meshlet/access.log: ENOENT: no such file or directory, open '/nonexistent-dir/meshlet/access.log'; its lines are dropped until it takes them again (tried again every 1 s)"]);
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});

describe('a filter reading a name no request has', () => {
  test('a warning naming it; the filter is false for every request', async () => {
    const up = await startUpstream('ratings');
    const log = capture();
    const mesh = await createMesh({
      service: 'reviews',
      logger: log.logger,
      config: [serviceEntry('ratings', HOST, 9080, [{ port: up.port }]), telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'envoy' }], filter: { expression: 'istio_responseClass == "2xx" || respons.code > 0' } }] })],
    });
    try {
      await call(mesh, 'http://ratings:9080/');
      assert.deepEqual(log.entries, []);
      assert.ok(log.warnings.some((w) => /reads istio_responseClass, respons, which no request has/.test(w)), log.warnings.join('\n'));
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});

describe('a Telemetry change applies to new requests', () => {
  test('enabled, filtered, then disabled by editing the watched config', async () => {
    const up = await startUpstream('ratings', (req, res) => {
      res.statusCode = req.url === '/fail' ? 500 : 200;
      res.end('x');
    });
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-al-reload-'));
    const put = (name: string, value: object) => {
      writeFileSync(join(dir, `.${name}.tmp`), JSON.stringify(value));
      renameSync(join(dir, `.${name}.tmp`), join(dir, name));
    };
    put('se.json', serviceEntry('ratings', HOST, 9080, [{ port: up.port }]));
    const log = capture();
    const mesh = await createMesh({ service: 'reviews', logger: log.logger, config: dir });
    const both = async () => {
      await call(mesh, 'http://ratings:9080/ok');
      await call(mesh, 'http://ratings:9080/fail');
      const n = log.lines().length;
      log.entries.length = 0;
      return n;
    };
    try {
      assert.equal(await both(), 0, 'no access-log config: nothing');
      let applied = once(mesh, 'config');
      put('tel.json', telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'envoy' }] }] }));
      await applied;
      assert.equal(await both(), 2);
      applied = once(mesh, 'config');
      put('tel.json', telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'envoy' }], filter: { expression: 'response.code >= 500' } }] }));
      await applied;
      assert.equal(await both(), 1);
      applied = once(mesh, 'config');
      put('tel.json', telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'envoy' }], disabled: true }] }));
      await applied;
      assert.equal(await both(), 0);
      assert.equal(channels.callEnd.hasSubscribers, false, 'disabled: unsubscribed');
    } finally {
      await mesh.close();
      await up.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('createMesh refuses bad telemetry.accessLog options, naming the field', () => {
  const bad: [string, unknown, RegExp][] = [
    ['encoding', { encoding: 'XML' }, /telemetry\.accessLog\.encoding must be 'TEXT' or 'JSON', got "XML"/],
    ['file', { file: 1 }, /telemetry\.accessLog\.file must be a path/],
    ['an unknown field', { path: '/dev/stdout' }, /createMesh: unknown option "telemetry\.accessLog\.path"/],
    ['a misspelt field', { fil: '/dev/stdout' }, /createMesh: unknown option "telemetry\.accessLog\.fil" \(did you mean "telemetry\.accessLog\.file"\?\)/],
    ['defaultProviders', { defaultProviders: 'envoy' }, /telemetry\.accessLog\.defaultProviders must be a list of provider names/],
    ['a text format Envoy refuses', { file: '/dev/stdout', format: '%RESPONSE_COD%' }, /telemetry\.accessLog\.format: unknown command operator %RESPONSE_COD% \(at position 0\)/],
    ['not an object', 'yes', /telemetry\.accessLog must be an object/],
  ];
  for (const [name, accessLog, why] of bad) {
    test(name, async () => {
      await assert.rejects(createMesh({ service: 'reviews', config: [], telemetry: { accessLog: accessLog as never } }), why);
    });
  }
});
