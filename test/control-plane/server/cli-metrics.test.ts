/**
 * `meshlet control-plane --monitoring-port`: the command prints where its metrics are, serves
 * them there and on the API port; a bad port is a usage error (exit 2).
 */
import assert from 'node:assert/strict';
import { childReady } from '../../helpers/child-ready.ts';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { request } from 'undici';
import { parseExposition, sampleValue } from '../../helpers/prometheus-text.ts';
import { SERVICES_YAML, tempDir } from './helpers.ts';

const MAIN = new URL('../../../src/cli/main.ts', import.meta.url).pathname;
const t = tempDir('meshlet-cp-cli-metrics-');
let server: ChildProcess | undefined;

after(async () => {
  if (server !== undefined && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  t.cleanup();
});

test('--monitoring-port: printed on its own line, serves /metrics (as the API port does) and /healthz only', async () => {
  const configDir = join(t.dir, 'config');
  mkdirSync(configDir);
  writeFileSync(join(configDir, 'services.yaml'), SERVICES_YAML);
  let out = '';
  let err = '';
  server = spawn(process.execPath, [MAIN, 'control-plane', '--config', configDir, '--port', '0', '--monitoring-port', '0', '--host', '127.0.0.1', '--data-dir', join(t.dir, 'data')], { stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  server.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const monitoring = await childReady(server, () => /metrics on (http:\/\/127\.0\.0\.1:\d+)\/metrics\n/.exec(out)?.[1], () => `server start: ${err}`);
  const api = /listening on (http:\/\/\S+)/.exec(out)?.[1];
  assert.ok(api !== undefined && api !== monitoring, out);
  for (const base of [monitoring, api]) {
    const res = await request(`${base}/metrics`, { reset: true });
    const families = parseExposition(await res.body.text());
    assert.equal(res.statusCode, 200);
    assert.equal(sampleValue(families, 'meshlet_control_plane_config_resources', { kind: 'ServiceEntry' }), 1, base);
  }
  const status = await request(`${monitoring}/status`, { reset: true });
  await status.body.dump();
  assert.equal(status.statusCode, 404);
});

test('--monitoring-port: a bad port is a usage error', () => {
  for (const bad of ['x', '-1', '70000', '1.5', '']) {
    const r = spawnSync(process.execPath, [MAIN, 'control-plane', '--config', t.dir, `--monitoring-port=${bad}`], { encoding: 'utf8' });
    assert.equal(r.status, 2, `${bad}: ${r.stderr}`);
    assert.match(r.stderr, /--monitoring-port: expected 0\.\.65535/);
  }
});
