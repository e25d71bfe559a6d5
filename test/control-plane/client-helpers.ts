/**
 * Helpers for the control-plane client tests: a real control plane on 127.0.0.1:0 over a temp
 * config directory, config written as JSON files, and event-driven waits.
 */
import type { EventEmitter } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ControlPlane, startControlPlane } from '../../src/control-plane-server/server.ts';
import type { ServingTlsOptions } from '../../src/control-plane-server/serving-tls.ts';
import type { RegistryStore } from '../../src/control-plane-server/store.ts';
import type { MeshNetworks } from '../../src/config/mesh-networks.ts';
import { type Random, seededRandom } from '../../src/index.ts';
import { virtualService } from '../helpers/upstreams.ts';

export interface TestControlPlane {
  cp: ControlPlane;
  readonly configDir: string;
  readonly dataDir: string;
  /** Writes `<name>.json` with these resources (a Kubernetes List) into the config dir. */
  write(name: string, resources: object[]): Promise<void>;
  /** Starts it again on the same port and directories (after `cp.close()`), with other options if given (a changed `meshConfig`). */
  restart(changed?: { meshConfig?: Record<string, unknown> | undefined }): Promise<void>;
  close(): Promise<void>;
}

export const quietLogger = { warn: () => undefined, info: () => undefined };

/**
 * A mesh's `random` for tests that restart the control plane and wait for `connected` on a
 * real-time bound: seeded draws scaled to 1/20, so a reconnect's full-jitter delay (uniform up
 * to min(15 s, 250 ms · 2^attempt)) is at most 750 ms however many attempts a long outage on a
 * loaded machine took. With the default draws a mesh could be up to 15 s from its next attempt
 * when the control plane came back.
 */
export function shortJitter(seed: number): Random {
  const r = seededRandom(seed);
  return { next: () => r.next() / 20 };
}

export async function startTestControlPlane(
  files: Record<string, object[]>,
  o: { analysis?: 'advisory' | 'blocking' | 'off'; heartbeatMs?: number; insecure?: boolean; port?: number; certTtlMs?: number; registry?: RegistryStore; tls?: ServingTlsOptions; meshConfig?: Record<string, unknown>; meshNetworks?: MeshNetworks } = {},
): Promise<TestControlPlane> {
  const configDir = await mkdtemp(join(tmpdir(), 'meshlet-cp-config-'));
  const dataDir = await mkdtemp(join(tmpdir(), 'meshlet-cp-data-'));
  const write = (name: string, resources: object[]) => writeFile(join(configDir, `${name}.json`), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: resources }));
  for (const [name, resources] of Object.entries(files)) await write(name, resources);
  const options = { configDir, dataDir, host: '127.0.0.1', port: o.port ?? 0, logger: quietLogger, heartbeatMs: o.heartbeatMs ?? 200, analysis: o.analysis, insecure: o.insecure, certTtlMs: o.certTtlMs, registry: o.registry, tls: o.tls, meshConfig: o.meshConfig, meshConfigSource: o.meshConfig === undefined ? undefined : 'test-mesh.yaml', meshNetworks: o.meshNetworks };
  const t: TestControlPlane = {
    cp: await startControlPlane(options),
    configDir,
    dataDir,
    write,
    async restart(changed = {}) {
      t.cp = await startControlPlane({ ...options, ...changed, port: t.cp.port });
    },
    async close() {
      await t.cp.close();
      await rm(configDir, { recursive: true, force: true });
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return t;
}

/** A VirtualService sending every request for `host` to `dest` (a host name). */
export function routeAll(name: string, host: string, dest: string): object {
  return virtualService(name, [host], [{ route: [{ destination: { host: dest } }] }]);
}

/** Resolves with the first `event` whose payload satisfies `pred`; rejects after `ms`. */
export function waitFor<T>(emitter: EventEmitter, event: string, pred: (payload: T) => boolean = () => true, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out after ${ms} ms waiting for "${event}"`));
    }, ms);
    const on = (payload: T) => {
      if (!pred(payload)) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(payload);
    };
    emitter.on(event, on);
  });
}

/** Polls `check` every few ms until it is true; rejects after `ms` with `what`. */
export async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Writes one server-sent event of the watch stream. */
export function sse(res: ServerResponse, event: string, data: unknown, id?: string): void {
  res.write(`event: ${event}\n${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`);
}

/**
 * A stand-in control plane the test scripts (another implementation, an older version): plain
 * HTTP on 127.0.0.1:0; each watch stream is opened with its `hello` (connection `c<n>`, server
 * `server(n)`) and handed to `stream(res, n)` to write its events (n counts streams from 1); every
 * other request (ACKs) is answered `{"ok":true}` and shown to `seen`.
 */
export async function scriptedControlPlane(
  stream: (res: ServerResponse, n: number) => void,
  o: { server?: (n: number) => string; seen?: (req: IncomingMessage) => void } = {},
): Promise<{ readonly url: string; close(): Promise<void> }> {
  let streams = 0;
  const server = createServer((req, res) => {
    if (new URL(req.url ?? '/', 'http://x').pathname !== '/v1/watch') {
      o.seen?.(req);
      return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    }
    const n = ++streams;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    sse(res, 'hello', { connection: `c${n}`, server: o.server?.(n) ?? 'other', configVersion: 'v1', endpointsVersion: 'e1', heartbeatMs: 60_000 });
    stream(res, n);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}
