import assert from 'node:assert/strict';
import { childReady } from '../../helpers/child-ready.ts';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { createServer as createNetServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { closedPipe, meshletAsync } from '../../cli/helpers.ts';
import { api, reviewsVs, SERVICES_YAML, tempDir, watch } from './helpers.ts';

const MAIN = new URL('../../../src/cli/main.ts', import.meta.url).pathname;
const t = tempDir('meshlet-cp-cli-');
const configDir = join(t.dir, 'config');
const dataDir = join(t.dir, 'data');
let server: ChildProcess | undefined;
let url = '';
let serverOut = '';
let serverErr = '';

/** What `meshlet control-plane <args>` printed until it listened (`check` runs with its URL then), after which it is killed. */
async function startedOutput(args: string[], check?: (url: string) => Promise<void>): Promise<{ stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [MAIN, 'control-plane', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  try {
    const url = await childReady(proc, () => /listening on (http:\/\/\S+)/.exec(stdout)?.[1], () => `server start: ${stderr}`);
    await check?.(url);
    return { stdout, stderr };
  } finally {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }
}

function meshlet(args: string[], env: Record<string, string> = {}, input = '') {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', input, env: { ...process.env, MESHLET_CONTROL_PLANE: '', MESHLET_TOKEN: '', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A VirtualService for `shadow.example.com` (no service needed) routing to ratings. */
function shadowVs(name: string, timeout = '1s'): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}}
spec:
  hosts: [shadow.example.com]
  http:
  - timeout: ${timeout}
    route:
    - destination: {host: ratings}
`;
}

before(async () => {
  mkdirSync(configDir);
  writeFileSync(join(configDir, 'services.yaml'), SERVICES_YAML);
  writeFileSync(join(configDir, 'reviews.yaml'), reviewsVs('1s'));
  // --analysis blocking: the apply tests below show a whole-config refusal with an analysis error
  // (advisory, the default, is covered by findings.test.ts).
  server = spawn(process.execPath, [MAIN, 'control-plane', '--config', configDir, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--analysis', 'blocking'], { stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.setEncoding('utf8').on('data', (d: string) => {
    serverOut += d;
  });
  server.stderr!.setEncoding('utf8').on('data', (d: string) => {
    serverErr += d;
  });
  url = await childReady(server, () => /listening on (http:\/\/\S+)/.exec(serverOut)?.[1], () => `server start: ${serverErr}`);
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
    // A new key is made where none is, and said so: the running control plane will not accept its tokens.
    assert.equal(a.stderr, '', 'the key was there: nothing on stderr');
    const fresh = join(t.dir, 'fresh');
    const created = meshlet(['token', '--admin', '--data-dir', fresh]);
    assert.equal(created.code, 0);
    assert.equal(statSync(join(fresh, 'signing-key.jwk')).mode & 0o777, 0o600);
    assert.match(created.stderr, new RegExp(`^meshlet token: no signing key in ${fresh}: created a new one, ${join(fresh, 'signing-key.jwk')}\\. A control plane started with another --data-dir will refuse this token`));
    assert.equal((await api(url, 'GET', '/v1/resources', { token: created.stdout.trim() })).status, 401);
    assert.equal(meshlet(['token', '--admin', '--data-dir', fresh]).stderr, '', 'the second time the key is there');
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

  it('apply of a manifest with kinds meshlet does not apply: one warning per kind naming the file and line, those not sent; only such kinds: nothing to apply', () => {
    const file = join(t.dir, 'with-deployment.yaml');
    writeFileSync(
      file,
      'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web-dr}\nspec: {host: web}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n',
    );
    const r = meshlet(['apply', '-f', file], env());
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.equal(r.stdout, 'DestinationRule default/web-dr created\n');
    // Said here with the file and line (the server, sent none of it, says nothing of it).
    assert.match(r.stderr, new RegExp(`^Warning: ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: skipped 1 Deployment \\(apps/v1\\): default/web; .*\\(line 6\\)$`, 'm'));
    assert.equal(r.stderr.match(/skipped 1 Deployment/g)?.length, 1);
    const only = join(t.dir, 'only-deployment.yaml');
    writeFileSync(only, 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n');
    const none = meshlet(['apply', '-f', only], env());
    assert.equal(none.code, 2);
    assert.match(none.stderr, /nothing to apply: every resource in .*only-deployment\.yaml is of a kind meshlet does not apply/);
  });

  it('apply -f - reads standard input; -o json|yaml prints what was created, changed or unchanged, field by field', () => {
    const dr = 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: details}\nspec: {host: ratings, subsets: [{name: v1, labels: {version: v1}}]}\n';
    const r = meshlet(['apply', '-f', '-', '-n', 'default', '-o', 'json'], env(), dr);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.match(doc.version, /^[0-9a-f]{12}$/);
    assert.deepEqual(doc.applied, [{ ref: 'DestinationRule default/details', kind: 'DestinationRule', namespace: 'default', name: 'details', action: 'created' }]);
    assert.deepEqual(doc.warnings, []);
    const again = parse(meshlet(['apply', '-f', '-', '-o', 'yaml'], env(), dr).stdout);
    assert.equal(again.applied[0].action, 'unchanged');
    assert.equal(again.version, doc.version);
    const changed = JSON.parse(meshlet(['apply', '-f', '-', '-o', 'json'], env(), dr.replace('version: v1', 'version: v2')).stdout);
    assert.equal(changed.applied[0].action, 'configured');
    assert.notEqual(changed.version, doc.version);
    // Mistakes found before sending name <stdin> and the line; nothing reaches the server.
    const bad = meshlet(['apply', '-f', '-'], env(), shadowVs('bad-stdin', 'soon'));
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: <stdin>: VirtualService default\/bad-stdin: spec\.http\[0\]\.timeout: invalid duration "soon".*\(line 7\)$/m);
    assert.match(bad.stderr, /nothing was sent/);
    assert.equal(meshlet(['get', 'vs', 'bad-stdin'], env()).code, 1);
    const broken = meshlet(['apply', '-f', '-'], env(), 'kind: [\n');
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /<stdin>: invalid YAML: .*\(line \d+\)/);
  });

  it('apply of a VirtualService for a host another one already routes: refused under --analysis blocking, IST0109 naming both', () => {
    const first = meshlet(['apply', '-f', '-'], env(), shadowVs('shadow-old'));
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'VirtualService default/shadow-old created\n');
    assert.equal(first.stderr, '');
    // IST0109 is an error, as in istioctl analyze: the blocking control plane refuses the change.
    const second = meshlet(['apply', '-f', '-'], env(), shadowVs('shadow-new'));
    assert.equal(second.code, 1, second.stdout);
    assert.match(second.stderr, /^meshlet: configuration rejected, 2 error\(s\):/);
    assert.match(second.stderr, /VirtualService default\/shadow-new: spec\.hosts\[0\]: host shadow\.example\.com is also claimed by VirtualService default\/shadow-old \(older: this one is ignored for that host\)/);
    // What was sent is named by where it came from (the control plane says `<apply>[0]`), with the field's line.
    assert.match(second.stderr, /^ {2}<stdin>: VirtualService default\/shadow-new: spec\.hosts\[0\]: host shadow\.example\.com is also claimed .* \(line 5\)$/m);
    assert.doesNotMatch(second.stderr, /<apply>/);
    assert.match(second.stderr, /VirtualService default\/shadow-old: spec\.hosts\[0\]: host shadow\.example\.com is also claimed by VirtualService default\/shadow-new \(newer: it is ignored for that host\)/);
    assert.equal(meshlet(['get', 'vs', 'shadow-new'], env()).code, 1);
    // The older one alone is fine again.
    const again = meshlet(['apply', '-f', '-'], env(), shadowVs('shadow-old', '2s'));
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stderr, '');
    const del = meshlet(['delete', 'vs', 'shadow-old', '-o', 'json'], env());
    assert.equal(del.code, 0, del.stderr);
    const d = JSON.parse(del.stdout);
    assert.match(d.version, /^[0-9a-f]{12}$/);
    assert.deepEqual(d.deleted, { ref: 'VirtualService default/shadow-old', kind: 'VirtualService', namespace: 'default', name: 'shadow-old' });
    assert.equal(meshlet(['delete', 'dr', 'details', '-o', 'yaml'], env()).code, 0);
  });

  it('apply: the control plane\'s warnings name the file and the line of what was sent, in text and -o json', () => {
    const file = join(t.dir, 'with-tcp.yaml');
    writeFileSync(
      file,
      `apiVersion: apps/v1
kind: Deployment
metadata: {name: skipped}
---
# a route meshlet applies, and one it does not
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-too}
spec:
  hosts: [tcp.example.com]
  http:
  - route: [{destination: {host: ratings}}]
  tcp:
  - route: [{destination: {host: ratings}}]
`,
    );
    const r = meshlet(['apply', '-f', file], env());
    assert.equal(r.code, 0, r.stderr);
    const line = (l: string) => l.replace(file, 'FILE');
    const warning = 'FILE: VirtualService default/tcp-too: spec.tcp: not supported by meshlet: spec.tcp; meshlet routes HTTP and gRPC; TCP routes are ignored (line 14)';
    assert.ok(r.stderr.split('\n').map(line).includes(`Warning: ${warning}`), r.stderr);
    assert.doesNotMatch(r.stderr, /<apply>/);
    const json = JSON.parse(meshlet(['apply', '-f', file, '-o', 'json'], env()).stdout);
    assert.deepEqual(json.warnings.map(line), [warning]);
    assert.equal(meshlet(['delete', 'vs', 'tcp-too'], env()).code, 0);
  });

  it('apply: usage mistakes exit 2, an unreachable control plane 1', () => {
    assert.equal(meshlet(['apply'], env()).code, 2);
    assert.equal(meshlet(['apply', '-f', '-', '-o', 'wide'], env(), shadowVs('x')).code, 2);
    assert.equal(meshlet(['apply', '-f', '-'], env(), '').code, 2);
    const down = meshlet(['apply', '-f', '-', '--control-plane', 'http://127.0.0.1:1'], env(), shadowVs('x'));
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach the control plane/);
  });

  it('apply of invalid config exits 1 with the server message and issues, no stack trace', () => {
    // A resource that is wrong on its own is refused before sending, naming the file and line.
    const file = join(t.dir, 'bad.yaml');
    writeFileSync(file, reviewsVs('soon', 'bad'));
    const r = meshlet(['apply', '-f', file], env());
    assert.equal(r.code, 1);
    assert.match(r.stderr, /configuration rejected before sending/);
    assert.match(r.stderr, /bad\.yaml: VirtualService default\/bad: spec\.http\[0\]\.timeout: invalid duration "soon".*\(line 7\)/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    // One that is wrong in the whole config (a subset no DestinationRule defines) is the server's refusal.
    writeFileSync(file, reviewsVs('1s', 'bad').replace('{host: reviews}', '{host: reviews, subset: v9}'));
    const server = meshlet(['apply', '-f', file], env());
    assert.equal(server.code, 1);
    // It also routes reviews, which reviews.yaml routes already: IST0109 on both (also an error).
    assert.match(server.stderr, /^meshlet: configuration rejected, 3 error\(s\):/);
    assert.match(server.stderr, /VirtualService default\/bad: spec\.http\[0\]\.route\[0\]\.destination\.subset: referenced subset "v9" of host reviews\.default\.svc\.cluster\.local is not defined by any DestinationRule/);
    assert.match(server.stderr, /VirtualService default\/bad: spec\.hosts\[0\]: host reviews\.default\.svc\.cluster\.local is also claimed by VirtualService default\/reviews/);
    assert.match(server.stderr, /reviews\.yaml: VirtualService default\/reviews: spec\.hosts\[0\]: host reviews\.default\.svc\.cluster\.local is also claimed by VirtualService default\/bad/);
    assert.doesNotMatch(server.stderr, /\n\s+at /);
    // A config file's resource applied as the file has it is unchanged (whatever its keys' order); changed, a conflict.
    const same = meshlet(['apply', '-f', join(configDir, 'reviews.yaml')], env());
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /VirtualService default\/reviews unchanged/);
    writeFileSync(file, readFileSync(join(configDir, 'reviews.yaml'), 'utf8').replace('timeout: 1s', 'timeout: 2s'));
    const conflict = meshlet(['apply', '-f', file], env());
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
    // A listing is a List in both formats (kubectl's shape; it can be applied again).
    const vsList = parse(meshlet(['get', 'vs', '-o', 'yaml'], env()).stdout);
    assert.equal(vsList.kind, 'List');
    assert.deepEqual(
      vsList.items.map((r: { kind: string; metadata: { name: string } }) => `${r.kind} ${r.metadata.name}`),
      ['VirtualService reviews'],
    );
    assert.deepEqual(JSON.parse(meshlet(['get', 'vs', '-o', 'json'], env()).stdout), vsList);
    // kubectl's -A (a list shows every namespace anyway).
    assert.deepEqual(parse(meshlet(['get', 'vs', '-A', '-o', 'yaml'], env()).stdout), vsList);
    assert.equal(meshlet(['get', 'vs', 'reviews', '-A'], env()).code, 2);
    const missing = meshlet(['get', 'vs', 'nope'], env());
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /VirtualService default\/nope not found/);
    assert.equal(meshlet(['get', 'gateway'], env()).code, 2);
  });

  it('get -o yaml | head: the reader closing early ends the CLI quietly with 141', async () => {
    const r = await closedPipe(['get', 'vs', '-o', 'yaml'], { env: { MESHLET_CONTROL_PLANE: url, MESHLET_TOKEN: admin } });
    assert.equal(r.code, 141, r.stderr);
    assert.equal(r.stderr, '');
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
    assert.match(r.stdout, new RegExp(`default\\s+reviews\\s+-\\s+${hello.data.connection}`), 'LABELS: none besides app');
    assert.match(r.stdout, new RegExp(`${cfg.data.version}/${cfg.data.version}`));
    assert.match(r.stdout, /\(healthy\)/);
    assert.match(r.stdout, /Refused changes[\s\S]*referenced subset "v9"/);
    // Two URLs of the same replica merge into one view.
    const merged = meshlet(['status', '--control-plane', `${url},${url}`], env());
    assert.match(merged.stdout, /2\/2 workloads at config version/);
    stream.close();
    // -o json: every answering server with its status document, and the ones that did not answer.
    const json = meshlet(['status', '-o', 'json', '--control-plane', `${url},http://127.0.0.1:1`], env());
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout);
    assert.equal(doc.servers.length, 1);
    assert.equal(doc.servers[0].url, url);
    assert.equal(doc.servers[0].status.configVersion, cfg.data.version);
    assert.equal(doc.servers[0].status.source.healthy, true);
    assert.ok(doc.servers[0].status.workloads.some((w: { connection: string }) => w.connection === hello.data.connection));
    assert.equal(doc.unreachable.length, 1);
    assert.equal(doc.unreachable[0].url, 'http://127.0.0.1:1');
    assert.match(doc.unreachable[0].error, /cannot reach the control plane/);
    // --json (deprecated) keeps its old shape: the status document itself.
    const legacy = meshlet(['status', '--json'], env());
    assert.equal(JSON.parse(legacy.stdout).configVersion, cfg.data.version);
    assert.match(legacy.stderr, /--json is deprecated/);
    assert.equal(meshlet(['status', '--json', '-o', 'json'], env()).code, 2);
    const noToken = meshlet(['status'], { MESHLET_CONTROL_PLANE: url });
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /no token/);
    const down = meshlet(['status', '--control-plane', 'http://127.0.0.1:1'], env());
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach the control plane/);
  });

  it('token --viewer: get, status, analyze --control-plane and ca show read with it; apply, delete and ca rotate are refused naming what it may do', () => {
    const minted = meshlet(['token', '--viewer', '--ttl', '1h', '--data-dir', dataDir, '-o', 'json']);
    assert.equal(minted.code, 0, minted.stderr);
    const doc = JSON.parse(minted.stdout);
    assert.deepEqual(doc.subject, { role: 'viewer', admin: false, service: null, namespace: null, serviceAccount: null, labels: null });
    assert.equal(doc.claims.role, 'viewer');
    assert.equal(doc.claims.sub, 'viewer');
    assert.equal(doc.claims.exp - doc.claims.iat, 3600);
    const viewer = { MESHLET_CONTROL_PLANE: url, MESHLET_TOKEN: doc.token };
    // Reads answer as they do for an admin.
    for (const args of [['get', 'vs', '-o', 'yaml'], ['get', 'vs', 'reviews', '-o', 'json'], ['status', '-o', 'json']]) {
      const v = meshlet(args, viewer);
      assert.equal(v.code, 0, `${args.join(' ')}: ${v.stderr}`);
      if (args[0] === 'get') assert.equal(v.stdout, meshlet(args, env()).stdout, args.join(' '));
      else assert.equal(JSON.parse(v.stdout).servers[0].url, url);
    }
    assert.match(meshlet(['status'], viewer).stdout, /workloads at config version/);
    const shadow = join(t.dir, 'viewer-shadow.yaml');
    writeFileSync(shadow, shadowVs('viewer-shadow'));
    const analyzed = meshlet(['analyze', '--control-plane', url, shadow], viewer);
    const asAdmin = meshlet(['analyze', '--control-plane', url, shadow], env());
    assert.equal(analyzed.code, asAdmin.code, analyzed.stderr);
    assert.equal(analyzed.stdout, asAdmin.stdout);
    assert.doesNotMatch(analyzed.stderr, /403|admin token/);
    assert.equal(meshlet(['ca', 'show', '--control-plane', url], viewer).code, 0);
    // Changes are refused (403, exit 1) with what the token may do.
    const may = /a viewer token \(viewer\), which may only read: GET \/v1\/resources\[\/<Kind>\/<namespace>\/<name>\], GET \/status, GET \/v1\/workloads, GET \/v1\/ca/;
    for (const args of [['apply', '-f', shadow], ['delete', 'vs', 'reviews'], ['ca', 'rotate', '--control-plane', url]]) {
      const r = meshlet(args, viewer);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, may, args.join(' '));
    }
    assert.equal(meshlet(['get', 'vs', 'reviews'], env()).code, 0, 'the refused delete left it');
    assert.equal(meshlet(['get', 'vs', 'viewer-shadow'], env()).code, 1, 'the refused apply applied nothing');
    // --viewer is a role of its own: not with --admin or --service, nor with the workload's options.
    for (const args of [['--viewer', '--admin'], ['--viewer', '--service', 'reviews'], ['--viewer', '-n', 'prod'], ['--viewer', '--label', 'a=b'], ['--viewer', '--service-account', 'x']]) {
      const r = meshlet(['token', ...args, '--data-dir', dataDir]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /^meshlet token: (give one of --service <name>, --admin or --viewer, not --\w+ and --\w+|--[\w-]+ goes with --service, not --viewer)\n/, r.stderr);
    }
    assert.match(meshlet(['token', '--viewer', '--data-dir', dataDir]).stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    assert.match(meshlet(['token', '--help']).stdout, /--viewer {13}a read-only token/);
  });

  it('a refused token: get, apply, delete, status and ca say which control plane refused which token, and how to mint one it accepts', () => {
    const mint = /mint an admin token with 'meshlet token --admin --data-dir <the control plane's --data-dir>'/;
    const fromEnv = meshlet(['get', 'vs'], { MESHLET_CONTROL_PLANE: url, MESHLET_TOKEN: 'garbage' });
    assert.equal(fromEnv.code, 1);
    assert.match(fromEnv.stderr, /malformed token/);
    assert.ok(fromEnv.stderr.includes(`(${url} refused the token from $MESHLET_TOKEN; `), fromEnv.stderr);
    assert.match(fromEnv.stderr, mint);
    const fromFlag = meshlet(['delete', 'vs', 'nothing', '--token', 'garbage'], { MESHLET_CONTROL_PLANE: url });
    assert.equal(fromFlag.code, 1);
    assert.ok(fromFlag.stderr.includes(`(${url} refused the token from --token; `), fromFlag.stderr);
    const none = meshlet(['apply', '-f', '-'], { MESHLET_CONTROL_PLANE: url }, shadowVs('refused'));
    assert.equal(none.code, 1);
    assert.ok(none.stderr.includes(`(${url} needs a token: give it with --token or $MESHLET_TOKEN; `), none.stderr);
    assert.match(none.stderr, mint);
    const status = meshlet(['status'], { MESHLET_CONTROL_PLANE: url, MESHLET_TOKEN: 'garbage' });
    assert.equal(status.code, 1);
    assert.ok(status.stderr.includes(`refused the token from $MESHLET_TOKEN`), status.stderr);
    const ca = meshlet(['ca', 'show', '--control-plane', url], { MESHLET_TOKEN: 'garbage' });
    assert.equal(ca.code, 1);
    assert.ok(ca.stderr.includes(`(${url} refused the token from $MESHLET_TOKEN; `), ca.stderr);
    // A workload token is refused with 403: that message already names the token's workload.
    assert.doesNotMatch(meshlet(['get', 'vs'], { MESHLET_CONTROL_PLANE: url, MESHLET_TOKEN: meshlet(['token', '--service', 'reviews', '--data-dir', dataDir]).stdout.trim() }).stderr, mint);
  });

  it('status, get and apply against a server that accepts the connection but never answers: said so, after --timeout', async (tc) => {
    const sockets: Socket[] = [];
    const silent = createNetServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    tc.after(() => {
      for (const s of sockets) s.destroy();
      silent.close();
    });
    const at = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const file = join(t.dir, 'timeout.yaml');
    writeFileSync(file, shadowVs('timeout'));
    for (const args of [['status'], ['get', 'vs'], ['apply', '-f', file]]) {
      const r = await meshletAsync([...args, '--control-plane', at, '--token', 'x', '--timeout', '300ms'], { env: { MESHLET_CONTROL_PLANE: '', MESHLET_TOKEN: '' } });
      assert.equal(r.code, 1, args[0]);
      assert.match(r.stderr, new RegExp(`the control plane at ${at} accepted the connection but did not answer within 0\\.3 s \\(--timeout\\)`), `${args[0]}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /Headers Timeout Error|cannot reach/);
    }
    const bad = meshlet(['status', '--timeout', 'soon'], env());
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--timeout: /);
    assert.match(meshlet(['status', '--help']).stdout, /--timeout <duration> .*\(default 15s\)/);
  });

  it('status, get and apply against something else that answers 200 with a web page: said so (exit 1, no stack trace), and the next URL is tried', async (tc) => {
    const page = createHttpServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end('<html><body>a web app</body></html>');
    });
    await new Promise<void>((r) => page.listen(0, '127.0.0.1', r));
    tc.after(() => page.close());
    const at = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
    const file = join(t.dir, 'not-json.yaml');
    writeFileSync(file, shadowVs('not-json'));
    for (const args of [['status'], ['get', 'vs'], ['apply', '-f', file]]) {
      const r = await meshletAsync([...args, '--control-plane', at, '--token', 'x'], { env: { MESHLET_CONTROL_PLANE: '', MESHLET_TOKEN: '' } });
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${at}/\\S+ answered 200 with something that is not JSON \\(text/html\\): is a meshlet control plane listening at ${at}\\?`), `${args[0]}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /internal error|SyntaxError/);
    }
    const next = await meshletAsync(['get', 'vs', '--control-plane', `${at},${url}`, '-o', 'json'], { env: { MESHLET_CONTROL_PLANE: '', MESHLET_TOKEN: admin } });
    assert.equal(next.code, 0, next.stderr);
    assert.ok(Array.isArray(JSON.parse(next.stdout).items), next.stdout);
  });

  it('status, get, apply, delete and ca against something else that answers 200 with JSON of another shape: said so, naming the URL and what was expected (exit 1, no stack trace), and the next URL is tried', async (tc) => {
    const other = createHttpServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end('{"status":"ok","uptime":12}');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    tc.after(() => other.close());
    const at = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    const shapeFile = join(t.dir, 'other-shape.yaml');
    writeFileSync(shapeFile, shadowVs('other-shape'));
    const rows: [string[], RegExp][] = [
      [['status'], /a meshlet status document/],
      [['get', 'vs'], /a list of resources/],
      [['get', 'vs', 'reviews'], /a resource \(/],
      [['apply', '-f', shapeFile], /an apply result/],
      [['delete', 'vs', 'reviews'], /a delete result/],
      [['ca', 'show'], /the control plane CA/],
    ];
    for (const [args, what] of rows) {
      const r = await meshletAsync([...args, '--control-plane', at, '--token', 'x'], { env: { MESHLET_CONTROL_PLANE: '', MESHLET_TOKEN: '' } });
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${at}/\\S+ answered 200 with JSON that is not `), `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, what, r.stderr);
      assert.match(r.stderr, new RegExp(`but an object with keys status, uptime: is a meshlet control plane listening at ${at}\\?`), r.stderr);
      assert.doesNotMatch(r.stderr, /internal error|TypeError/);
    }
    const next = await meshletAsync(['get', 'vs', '--control-plane', `${at},${url}`, '-o', 'json'], { env: { MESHLET_CONTROL_PLANE: '', MESHLET_TOKEN: admin } });
    assert.equal(next.code, 0, next.stderr);
    assert.ok(Array.isArray(JSON.parse(next.stdout).items), next.stdout);
    const status = await meshletAsync(['status', '--control-plane', `${at},${url}`], { env: { MESHLET_CONTROL_PLANE: '', MESHLET_TOKEN: admin } });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stderr, /JSON that is not a meshlet status document/);
    assert.match(status.stdout, new RegExp(url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  });

  it('status, get and apply print what came from workloads or the server with control characters escaped', async () => {
    // A workload NACKs with terminal escapes (clear screen, red, bell, a window title) and a bidi override.
    const evil = ['\u001b[2J\u001b[31mPWNED\u0007', 'title \u001b]0;owned\u0007 bidi \u202eevil\u202c done', 'c1 \u009b31m and\nnewline'];
    const wt = meshlet(['token', '--service', 'ratings', '--data-dir', dataDir]).stdout.trim();
    const stream = await watch(url, 'service=ratings&namespace=default', { token: wt });
    const hello = await stream.next('hello');
    const nack = await api(url, 'POST', '/v1/ack', { token: wt, body: { connection: hello.data.connection, kind: 'config', version: 'x', status: 'NACK', reasons: evil } });
    assert.equal(nack.status, 200);
    // Anything a terminal would act on: C0 but the newlines that end lines, DEL, C1, bidi and invisible formatting.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for raw control characters in the output.
    const raw = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/;
    const r = meshlet(['status'], env());
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, raw);
    assert.ok(r.stdout.includes('  \\x1b[2J\\x1b[31mPWNED\\x07\n'), r.stdout);
    assert.ok(r.stdout.includes('  title \\x1b]0;owned\\x07 bidi \\u202eevil\\u202c done\n'));
    assert.ok(r.stdout.includes('  c1 \\x9b31m and\\nnewline\n'), 'a reason is one line: its newline cannot fake another');
    for (const format of ['json', 'yaml']) {
      const m = meshlet(['status', '-o', format], env());
      assert.equal(m.code, 0, m.stderr);
      assert.doesNotMatch(m.stdout, raw, format);
      const doc = format === 'json' ? JSON.parse(m.stdout) : parse(m.stdout);
      const mine = doc.servers[0].status.workloads.find((w: { connection: string }) => w.connection === hello.data.connection);
      assert.deepEqual(mine.nacked.reasons, evil, `${format}: the same text, escaped only for the terminal`);
    }
    stream.close();
    // get: an annotation with escapes comes back escaped in YAML, and the value is intact.
    const vs = `${shadowVs('annotated')}`.replace('metadata: {name: annotated}', 'metadata: {name: annotated, annotations: {note: "\\e[31mred\\u202e"}}');
    const applied = meshlet(['apply', '-f', '-'], env(), vs);
    assert.equal(applied.code, 0, applied.stderr);
    const got = meshlet(['get', 'vs', 'annotated', '-o', 'yaml'], env());
    assert.doesNotMatch(got.stdout, raw);
    assert.match(got.stdout, /note: "\\e\[31mred\\u202e"/);
    assert.equal(parse(got.stdout).metadata.annotations.note, '\u001b[31mred\u202e');
    assert.equal(meshlet(['delete', 'vs', 'annotated'], env()).code, 0);
    // A refusal of the server quotes the request; it is printed escaped.
    const refused = meshlet(['delete', 'vs', 'x\u001b[31m'], env());
    assert.equal(refused.code, 1);
    assert.doesNotMatch(refused.stderr, raw);
    assert.match(refused.stderr, /VirtualService default\/x\\x1b\[31m not found/);
    // What apply finds wrong in its own input is printed escaped too.
    const local = meshlet(['apply', '-f', '-'], env(), shadowVs('bad').replace('{host: ratings}', '{host: "ratings\\e[5m"}'));
    assert.equal(local.code, 1);
    assert.doesNotMatch(local.stderr, raw);
    assert.match(local.stderr, /invalid host "ratings\\x1b\[5m"/);
  });

  it('control-plane: usage errors exit 2; an invalid config directory exits 1 with every issue', () => {
    assert.equal(meshlet(['control-plane']).code, 2);
    assert.equal(meshlet(['control-plane', '--config', configDir, '--port', 'x']).code, 2);
    const badCidr = meshlet(['control-plane', '--config', configDir, '--registration-cidrs', '10.0.0.0/8,10.0.0.0/99']);
    assert.equal(badCidr.code, 2);
    assert.match(badCidr.stderr, /--registration-cidrs: "10\.0\.0\.0\/99" is not an IP address or CIDR/);
    for (const flag of ['--max-watches-per-workload', '--max-registrations-per-workload', '--max-nack-reasons', '--max-nack-bytes']) {
      const r = meshlet(['control-plane', '--config', configDir, flag, '0']);
      assert.equal(r.code, 2, flag);
      assert.match(r.stderr, new RegExp(`${flag}: expected a positive integer, got "0"`));
    }
    const bad = join(t.dir, 'bad-config');
    mkdirSync(bad);
    writeFileSync(join(bad, 'a.yaml'), `${reviewsVs('x1')}---\n${reviewsVs('x2', 'two')}`);
    const r = meshlet(['control-plane', '--config', bad, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /invalid duration "x1"/);
    assert.match(r.stderr, /invalid duration "x2"/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    // Nothing is written (no signing key, no CA) before the config directory checks out.
    const untouched = join(t.dir, 'untouched-data');
    const missing = meshlet(['control-plane', '--config', join(t.dir, 'nosuch'), '--port', '0', '--host', '127.0.0.1', '--data-dir', untouched]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nosuch: no such file or directory/);
    assert.doesNotMatch(missing.stderr, /CA: generated/);
    assert.equal(existsSync(untouched), false, 'the data dir was not made');
    assert.equal(meshlet(['control-plane', '--config', bad, '--port', '0', '--host', '127.0.0.1', '--data-dir', untouched]).code, 1);
    assert.equal(existsSync(untouched), false, 'not for an invalid config either');
  });

  it('control-plane: a port already in use is named with its flag (--port or --monitoring-port), exit 1', async () => {
    const taken = createNetServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    try {
      const port = String((taken.address() as AddressInfo).port);
      const api = meshlet(['control-plane', '--config', configDir, '--host', '127.0.0.1', '--port', port, '--data-dir', dataDir]);
      assert.equal(api.code, 1);
      assert.match(api.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} for the API \\(--port\\): the address is already in use \\(EADDRINUSE\\)`));
      const monitoring = meshlet(['control-plane', '--config', configDir, '--host', '127.0.0.1', '--port', '0', '--monitoring-port', port, '--data-dir', dataDir]);
      assert.equal(monitoring.code, 1);
      assert.match(monitoring.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} for the monitoring port \\(--monitoring-port\\): the address is already in use`));
      assert.doesNotMatch(monitoring.stderr, /\n\s+at /);
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });

  it('control-plane: the registration and limit flags take effect', async () => {
    const proc = spawn(
      process.execPath,
      [MAIN, 'control-plane', '--config', configDir, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--registration-cidrs', '10.0.0.0/8', '--max-watches-per-workload', '1', '--max-registrations-per-workload', '1', '--max-nack-reasons', '1'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    try {
      const other = await childReady(proc, () => /listening on (http:\/\/\S+)/.exec(out)?.[1], () => 'the second server');
      const wt = meshlet(['token', '--service', 'details', '--data-dir', dataDir]).stdout.trim();
      const reg = (address: string, port: number) => api(other, 'POST', '/v1/workloads', { token: wt, body: { address, ports: { http: port } } });
      assert.equal((await reg('192.168.1.1', 80)).status, 403, '--registration-cidrs');
      assert.equal((await reg('10.1.1.1', 80)).status, 200);
      assert.equal((await reg('10.1.1.2', 80)).status, 429, '--max-registrations-per-workload');
      const stream = await watch(other, 'service=details&namespace=default', { token: wt });
      const hello = await stream.next('hello');
      assert.equal((await api(other, 'GET', '/v1/watch?service=details&namespace=default', { token: wt })).status, 429, '--max-watches-per-workload');
      const nack = await api(other, 'POST', '/v1/ack', { token: wt, body: { connection: hello.data.connection, kind: 'config', version: 'x', status: 'NACK', reasons: ['a', 'b'] } });
      assert.equal(nack.status, 413, '--max-nack-reasons');
      stream.close();
    } finally {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    }
  });

  it('control-plane prints the address it binds: every interface by default, loopback with --insecure (and warns)', async () => {
    const start = (extra: string[]) =>
      startedOutput(['--config', configDir, '--port', '0', '--data-dir', dataDir, ...extra], async (url) => {
        // What scripts parse from the line still answers.
        assert.equal((await fetch(`${url}/healthz`)).status, 200);
      });
    const all = await start([]);
    assert.match(all.stdout, /^meshlet control-plane listening on http:\/\/0\.0\.0\.0:(\d+) \(all interfaces; this host: http:\/\/127\.0\.0\.1:\1\) \(config version [0-9a-f]{12}, source file:/);
    const insecure = await start(['--insecure']);
    assert.match(insecure.stdout, /^meshlet control-plane listening on http:\/\/127\.0\.0\.1:\d+ \(config version /);
    assert.match(insecure.stderr, /INSECURE MODE/);
    assert.doesNotMatch(insecure.stderr, /every interface/);
    const exposed = await start(['--insecure', '--host', '0.0.0.0']);
    assert.match(exposed.stdout, /listening on http:\/\/0\.0\.0\.0:\d+ \(all interfaces;/);
    assert.match(exposed.stderr, /INSECURE MODE.*It listens on every interface \(0\.0\.0\.0\): other machines can reach it/);
    assert.match(meshlet(['control-plane', '--help']).stdout, /with --insecure 127\.0\.0\.1/);
  });

  it('control-plane --mesh-config takes rootNamespace and trustDomain from the istio ConfigMap; flags win; a bad file is a usage error', async () => {
    const tmp = tempDir();
    const dir = tmp.dir;
    const dataDirs: { dir: string; cleanup: () => void }[] = [];
    const fresh = (): string => {
      const t = tempDir();
      dataDirs.push(t);
      return t.dir;
    };
    const cm = join(dir, 'istio-configmap.yaml');
    writeFileSync(cm, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio\n  namespace: istio-system\ndata:\n  mesh: |-\n    trustDomain: example.org\n    defaultConfig:\n      discoveryAddress: istiod.istio-system.svc:15012\n');
    const start = async (extra: string[]) => (await startedOutput(['--config', configDir, '--port', '0', '--insecure', '--data-dir', fresh(), '--mesh-config', cm, ...extra])).stderr;
    assert.match(await start([]), /for trust domain example\.org /);
    assert.match(await start(['--trust-domain', 'flag.org']), /for trust domain flag\.org /);
    writeFileSync(cm, 'trustDomain: [a, b]\n');
    const bad = meshlet(['control-plane', '--config', configDir, '--port', '0', '--insecure', '--data-dir', fresh(), '--mesh-config', cm]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--mesh-config .*istio-configmap\.yaml: `meshConfig\.trustDomain` must be a string/);
    const missing = meshlet(['control-plane', '--config', configDir, '--port', '0', '--insecure', '--data-dir', fresh(), '--mesh-config', join(dir, 'nope.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--mesh-config .*nope\.yaml: no such file/);
    for (const t of [tmp, ...dataDirs]) t.cleanup();
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
