import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { api, reviewsVs, SERVICES_YAML, tempDir, until, watch } from './helpers.ts';

const MAIN = new URL('../../../src/cli/main.ts', import.meta.url).pathname;
const t = tempDir('meshlet-cp-cli-');
const configDir = join(t.dir, 'config');
const dataDir = join(t.dir, 'data');
let server: ChildProcess | undefined;
let url = '';
let serverOut = '';
let serverErr = '';

function meshlet(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, MESHLET_CONTROL_PLANE: '', MESHLET_TOKEN: '', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(async () => {
  mkdirSync(configDir);
  writeFileSync(join(configDir, 'services.yaml'), SERVICES_YAML);
  writeFileSync(join(configDir, 'reviews.yaml'), reviewsVs('1s'));
  server = spawn(process.execPath, [MAIN, 'control-plane', '--config', configDir, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.setEncoding('utf8').on('data', (d: string) => {
    serverOut += d;
  });
  server.stderr!.setEncoding('utf8').on('data', (d: string) => {
    serverErr += d;
  });
  url = await until(() => /listening on (http:\/\/\S+)/.exec(serverOut)?.[1], 10_000, `server start: ${serverErr}`);
});
after(async () => {
  if (server !== undefined && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGKILL');
    await exited;
  }
  t.cleanup();
});

describe('meshlet control-plane / token / apply / get / delete / status', () => {
  let admin = '';
  const env = () => ({ MESHLET_CONTROL_PLANE: url, MESHLET_TOKEN: admin });

  it('control-plane prints one line with the URL and config version', () => {
    assert.match(serverOut, /^meshlet control-plane listening on http:\/\/127\.0\.0\.1:\d+ \(config version [0-9a-f]{12}, source file:/);
    assert.equal(serverOut.trim().split('\n').length, 1);
  });

  it('token --admin / --service mint tokens the server accepts; usage errors exit 2', async () => {
    const a = meshlet(['token', '--admin', '--data-dir', dataDir, '--ttl', '24h']);
    assert.equal(a.code, 0, a.stderr);
    admin = a.stdout.trim();
    assert.equal((await api(url, 'GET', '/v1/resources', { token: admin })).status, 200);
    const w = meshlet(['token', '--service', 'reviews', '-n', 'default', '--data-dir', dataDir]);
    const wt = w.stdout.trim();
    const stream = await watch(url, 'service=reviews&namespace=default', { token: wt });
    assert.equal(stream.status, 200);
    stream.close();
    assert.equal(meshlet(['token', '--data-dir', dataDir]).code, 2);
    assert.equal(meshlet(['token', '--admin', '--ttl', 'soon', '--data-dir', dataDir]).code, 2);
    const fresh = join(t.dir, 'fresh');
    assert.equal(meshlet(['token', '--admin', '--data-dir', fresh]).code, 0);
    assert.equal(statSync(join(fresh, 'signing-key.jwk')).mode & 0o777, 0o600);
  });

  it('apply prints kubectl-like lines; a second apply says unchanged', () => {
    const file = join(t.dir, 'ratings.yaml');
    writeFileSync(file, 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ratings}\nspec: {host: ratings}\n');
    const r = meshlet(['apply', '-f', file], env());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'DestinationRule default/ratings created\n');
    assert.equal(meshlet(['apply', '-f', file], env()).stdout, 'DestinationRule default/ratings unchanged\n');
    assert.ok(existsSync(join(configDir, 'applied', 'DestinationRule.default.ratings.yaml')));
  });

  it('apply of invalid config exits 1 with the server message and issues, no stack trace', () => {
    const file = join(t.dir, 'bad.yaml');
    writeFileSync(file, reviewsVs('soon', 'bad'));
    const r = meshlet(['apply', '-f', file], env());
    assert.equal(r.code, 1);
    assert.match(r.stderr, /configuration rejected/);
    assert.match(r.stderr, /VirtualService default\/bad: spec\.http\[0\]\.timeout: invalid duration "soon"/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const conflict = meshlet(['apply', '-f', join(configDir, 'reviews.yaml')], env());
    assert.equal(conflict.code, 1);
    assert.match(conflict.stderr, /defined in .*reviews\.yaml/);
  });

  it('get lists with short kind names and prints yaml/json', () => {
    const list = meshlet(['get', 'DR'], env());
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^NAMESPACE\s+NAME\s+KIND/);
    assert.match(list.stdout, /default\s+ratings\s+DestinationRule\s+host: ratings/);
    const yaml = meshlet(['get', 'vs', 'reviews', '-o', 'yaml'], env());
    assert.match(yaml.stdout, /kind: VirtualService\n/);
    const json = JSON.parse(meshlet(['get', 'virtualservices', 'reviews', '-n', 'default', '-o', 'json'], env()).stdout);
    assert.equal(json.spec.http[0].timeout, '1s');
    const missing = meshlet(['get', 'vs', 'nope'], env());
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /VirtualService default\/nope not found/);
    assert.equal(meshlet(['get', 'gateway'], env()).code, 2);
  });

  it('delete removes an applied resource', () => {
    const r = meshlet(['delete', 'dr', 'ratings'], env());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'DestinationRule default/ratings deleted\n');
    assert.equal(meshlet(['delete', 'dr', 'ratings'], env()).code, 1);
    assert.equal(meshlet(['delete', 'dr'], env()).code, 2);
  });

  it('status prints the summary, a workload table with ACKed versions, source health and refusals', async () => {
    const wt = meshlet(['token', '--service', 'reviews', '--data-dir', dataDir]).stdout.trim();
    const stream = await watch(url, 'service=reviews&namespace=default', { token: wt });
    const hello = await stream.next('hello');
    const cfg = await stream.next('config');
    await api(url, 'POST', '/v1/ack', { token: wt, body: { connection: hello.data.connection, kind: 'config', version: cfg.data.version, status: 'ACK' } });
    const r = meshlet(['status'], env());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`1/1 workloads at config version ${cfg.data.version}`));
    assert.match(r.stdout, new RegExp(`default\\s+reviews\\s+${hello.data.connection}`));
    assert.match(r.stdout, new RegExp(`${cfg.data.version}/${cfg.data.version}`));
    assert.match(r.stdout, /\(healthy\)/);
    assert.match(r.stdout, /Refused changes[\s\S]*invalid duration "soon"/);
    // Two URLs of the same replica merge into one view.
    const merged = meshlet(['status', '--control-plane', `${url},${url}`], env());
    assert.match(merged.stdout, /2\/2 workloads at config version/);
    stream.close();
    const noToken = meshlet(['status'], { MESHLET_CONTROL_PLANE: url });
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /no token/);
    const down = meshlet(['status', '--control-plane', 'http://127.0.0.1:1'], env());
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach the control plane/);
  });

  it('control-plane: usage errors exit 2; an invalid config directory exits 1 with every issue', () => {
    assert.equal(meshlet(['control-plane']).code, 2);
    assert.equal(meshlet(['control-plane', '--config', configDir, '--port', 'x']).code, 2);
    const bad = join(t.dir, 'bad-config');
    mkdirSync(bad);
    writeFileSync(join(bad, 'a.yaml'), `${reviewsVs('x1')}---\n${reviewsVs('x2', 'two')}`);
    const r = meshlet(['control-plane', '--config', bad, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /invalid duration "x1"/);
    assert.match(r.stderr, /invalid duration "x2"/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it('SIGTERM closes gracefully (exit 0, watch streams ended)', async () => {
    const wt = meshlet(['token', '--service', 'reviews', '--data-dir', dataDir]).stdout.trim();
    const stream = await watch(url, 'service=reviews&namespace=default', { token: wt });
    await stream.next('hello');
    const exited = new Promise<number | null>((r) => server!.once('exit', (code) => r(code)));
    server!.kill('SIGTERM');
    assert.equal(await exited, 0);
    await stream.ended;
  });
});
