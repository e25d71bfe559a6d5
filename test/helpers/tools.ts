/**
 * The outside programs some test suites need (a real etcd, a real Prometheus, nginx as an SNI-routing gateway, a second Node.js version), where
 * `npm test` provisions them (scripts/provision.ts) and how a suite asks for one: a suite is
 * skipped with its reason when a tool is missing, except under `CI=true`, where nothing may be
 * skipped and a missing tool fails the suite.
 */
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname;

/** Where provisioned tools live (inside node_modules, so a clean clone starts without them). */
export const TOOLS_DIR = join(ROOT, 'node_modules', '.cache', 'meshlet-test');

/** The oldest Node.js meshlet supports, run by the packed-package test next to the project's Node 24. */
export const OLD_NODE_VERSION = '22.19.0';

/** The path of the Node.js {@link OLD_NODE_VERSION} binary provisioned for this platform. */
export function oldNodePath(): string {
  return join(TOOLS_DIR, `node-${OLD_NODE_VERSION}`, 'bin', process.platform === 'win32' ? 'node.exe' : 'node');
}

function onPath(bin: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, bin))) return join(dir, bin);
  }
  return undefined;
}

/** nginx's stream module as Debian installs it (libnginx-mod-stream), loaded with `load_module`. */
export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/** The tools, how to find each, and what to do when it is missing. */
export const TOOLS = {
  etcd: {
    find: (): string | undefined => (existsSync('/usr/bin/etcd') ? '/usr/bin/etcd' : onPath('etcd')),
    install: "Debian's etcd-server and etcd-client (`sudo apt-get install -y etcd-server etcd-client`); `npm test` installs them itself when run as root on Debian",
  },
  prometheus: {
    find: (): string | undefined => (existsSync('/usr/bin/prometheus') ? '/usr/bin/prometheus' : onPath('prometheus')),
    install: "Debian's prometheus (`sudo apt-get install -y prometheus`); `npm test` installs it itself when run as root on Debian",
  },
  curl: {
    find: (): string | undefined => onPath('curl'),
    install: "Debian's curl (`sudo apt-get install -y curl`); `npm test` installs it itself when run as root on Debian",
  },
  openssl: {
    find: (): string | undefined => onPath('openssl'),
    install: "Debian's openssl (`sudo apt-get install -y openssl`); `npm test` installs it itself when run as root on Debian",
  },
  ss: {
    find: (): string | undefined => (existsSync('/usr/bin/ss') ? '/usr/bin/ss' : onPath('ss')),
    install: "Debian's iproute2 (`sudo apt-get install -y iproute2`); `npm test` installs it itself when run as root on Debian",
  },
  nginx: {
    // The stream module too (ssl_preread: the SNI-routing east-west gateway of the multi-network tests).
    find: (): string | undefined => {
      const bin = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : onPath('nginx');
      return bin !== undefined && existsSync(NGINX_STREAM_MODULE) ? bin : undefined;
    },
    install: "Debian's nginx-light and libnginx-mod-stream (`sudo apt-get install -y nginx-light libnginx-mod-stream`); `npm test` installs them itself when run as root on Debian",
  },
  node22: {
    find: (): string | undefined => (existsSync(oldNodePath()) ? oldNodePath() : undefined),
    install: `Node.js ${OLD_NODE_VERSION} from the npm registry (package node-${process.platform}-${process.arch}); \`npm test\` fetches it into ${TOOLS_DIR}`,
  },
} as const;

export type ToolName = keyof typeof TOOLS;

/** True under `CI=true`: every suite must run. */
export const IN_CI = process.env['CI'] === 'true' || process.env['CI'] === '1';

/**
 * For `describe(name, { skip: skipWithout('etcd') }, …)`: false when the tool is there; the
 * reason to skip when it is missing; under CI a missing tool throws (the suite fails).
 */
export function skipWithout(...tools: ToolName[]): false | string {
  return skipDecision(
    tools.filter((t) => TOOLS[t].find() === undefined).map((t) => ({ tool: t, install: TOOLS[t].install })),
    IN_CI,
  );
}

/** The rule of {@link skipWithout}, on its own so a test can hold it: skip outside CI, fail in CI. */
export function skipDecision(missing: readonly { tool: string; install: string }[], inCi: boolean): false | string {
  if (missing.length === 0) return false;
  const why = missing.map((m) => `${m.tool} is not installed (${m.install})`).join('; ');
  if (inCi) throw new Error(`CI=true and ${why}: nothing may be skipped in CI`);
  return why;
}
