/**
 * Provisions what the test suites need beyond npm packages, before `npm test` runs them:
 *
 * - etcd (the control plane's etcd store and HA tests): Debian's `etcd-server` and
 *   `etcd-client`, installed with apt-get when this runs as root on Debian;
 * - Prometheus (the Istio-metrics test scrapes meshes and runs Flagger's and Kiali's queries):
 *   Debian's `prometheus`, the same way;
 * - nginx with its stream module (the multi-network tests' east-west gateway: a TLS passthrough
 *   routing by SNI that is not meshlet): Debian's `nginx-light` and `libnginx-mod-stream`, the same way;
 * - curl and openssl (independent clients in the example and TLS tests) and ss (iproute2: the
 *   kernel's view of a connection's keepalive timer): Debian's packages, the same way;
 * - Node.js 22.19 (the packed-package test runs the installed package on the oldest Node
 *   meshlet supports, next to the project's Node 24): the `node-<platform>-<arch>` package
 *   from the npm registry, unpacked into node_modules/.cache/meshlet-test.
 *
 * What cannot be provisioned here is reported in one loud line per tool, and the suites that
 * need it are skipped (test/helpers/tools.ts) — except under `CI=true`, where this script fails
 * instead, because CI must run everything.
 *
 * Usage: node scripts/provision.ts   (npm test runs it)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { IN_CI, OLD_NODE_VERSION, oldNodePath, TOOLS, type ToolName } from '../test/helpers/tools.ts';

const missing: string[] = [];

function log(line: string): void {
  process.stdout.write(`provision: ${line}\n`);
}

function loud(tool: ToolName, why: string): void {
  const line = `${tool} is missing and ${why}: the suites that need it are SKIPPED. To run them install ${TOOLS[tool].install}.`;
  process.stdout.write(`\n${'*'.repeat(100)}\n*** meshlet tests: ${line}\n${'*'.repeat(100)}\n\n`);
  missing.push(`${tool}: ${why}`);
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Debian's packages for each tool installed with apt-get. */
const DEBIAN_PACKAGES = { etcd: ['etcd-server', 'etcd-client'], prometheus: ['prometheus'], nginx: ['nginx-light', 'libnginx-mod-stream'], curl: ['curl'], openssl: ['openssl'], ss: ['iproute2'] } as const;

let aptUpdated = false;

function provisionDebian(tool: keyof typeof DEBIAN_PACKAGES): void {
  const found = TOOLS[tool].find();
  if (found !== undefined) {
    log(`${tool}: ${found}`);
    return;
  }
  if (!existsSync('/usr/bin/apt-get') || !existsSync('/etc/debian_version')) {
    loud(tool, 'this is not a Debian machine, so it cannot be installed from Debian\'s packages');
    return;
  }
  if (!isRoot()) {
    loud(tool, 'installing Debian packages needs root');
    return;
  }
  const packages = DEBIAN_PACKAGES[tool];
  log(`${tool}: installing Debian's ${packages.join(' and ')} (apt-get)…`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = aptUpdated ? { status: 0, signal: null } : spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  aptUpdated = update.status === 0;
  const install = update.status === 0 ? spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env }) : update;
  const now = TOOLS[tool].find();
  if (install.status !== 0 || now === undefined) {
    loud(tool, `apt-get failed (exit ${install.status ?? install.signal})`);
    return;
  }
  log(`${tool}: installed ${now}`);
}

function provisionOldNode(): void {
  const found = TOOLS.node22.find();
  if (found !== undefined) {
    log(`node ${OLD_NODE_VERSION}: ${found}`);
    return;
  }
  const pkg = `node-${process.platform}-${process.arch}@${OLD_NODE_VERSION}`;
  log(`node ${OLD_NODE_VERSION}: fetching ${pkg} from the npm registry…`);
  const tmp = mkdtempSync(join(tmpdir(), 'meshlet-node-'));
  try {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const name = execFileSync(npm, ['pack', pkg, '--silent', '--pack-destination', tmp], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1);
    if (name === undefined || name === '') throw new Error(`npm pack ${pkg} printed no file name`);
    execFileSync('tar', ['xzf', join(tmp, name), '-C', tmp, 'package/bin'], { stdio: 'inherit' });
    const target = dirname(dirname(oldNodePath()));
    rmSync(target, { recursive: true, force: true });
    mkdirSync(dirname(target), { recursive: true });
    renameSync(join(tmp, 'package'), target);
    const version = execFileSync(oldNodePath(), ['--version'], { encoding: 'utf8' }).trim();
    if (version !== `v${OLD_NODE_VERSION}`) throw new Error(`the unpacked binary says ${version}`);
    log(`node ${OLD_NODE_VERSION}: ${oldNodePath()}`);
  } catch (e) {
    loud('node22', `fetching ${pkg} failed (${(e as Error).message.split('\n')[0]})`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

provisionDebian('etcd');
provisionDebian('prometheus');
provisionDebian('nginx');
provisionDebian('curl');
provisionDebian('openssl');
provisionDebian('ss');
provisionOldNode();
if (missing.length > 0 && IN_CI) {
  process.stderr.write(`provision: CI=true and ${missing.join('; ')}: CI must run every suite.\n`);
  process.exit(1);
}
