/**
 * Helpers for the control-plane server tests: a config directory, a running server with an
 * admin token, JSON requests, and an SSE reader over undici.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { type ControlPlane, type ControlPlaneOptions, startControlPlane } from '../../../src/control-plane-server/server.ts';

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON in tests is read field by field and checked with assert.
export type Json = any;

/** A ServiceEntry declaring the hosts the fixtures route to (the analyzer needs them). */
export const SERVICES_YAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: services, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local, ratings.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
`;

/** A VirtualService for reviews with the given timeout. */
export function reviewsVs(timeout = '1s', name = 'reviews'): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [reviews]
  http:
  - timeout: ${timeout}
    route:
    - destination: {host: reviews}
`;
}

/** A temp dir, removed by `cleanup()`. */
export function tempDir(prefix = 'meshlet-cp-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A silent logger that keeps what was logged. */
export function memoryLogger(): { warn(m: string): void; info(m: string): void; lines: string[] } {
  const lines: string[] = [];
  return { warn: (m) => lines.push(`warn ${m}`), info: (m) => lines.push(`info ${m}`), lines };
}

/** A running server over a fresh config dir (with `files`), plus an admin token. */
export interface TestServer {
  readonly cp: ControlPlane;
  readonly url: string;
  readonly configDir: string;
  readonly dataDir: string;
  readonly admin: string;
  readonly logs: string[];
  close(): Promise<void>;
}

export async function startTestServer(files: Record<string, string> = { 'services.yaml': SERVICES_YAML }, options: Partial<ControlPlaneOptions> = {}): Promise<TestServer> {
  const { dir, cleanup } = tempDir();
  const configDir = join(dir, 'config');
  const dataDir = join(dir, 'data');
  mkdirSync(configDir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(configDir, name), text);
  const logger = memoryLogger();
  let cp: ControlPlane;
  try {
    cp = await startControlPlane({ configDir, dataDir, host: '127.0.0.1', port: 0, logger, ...options });
  } catch (err) {
    cleanup();
    throw err;
  }
  const admin = await cp.mintToken({ admin: true });
  return {
    cp,
    url: cp.url,
    configDir,
    dataDir,
    admin,
    logs: logger.lines,
    close: async () => {
      await cp.close();
      cleanup();
    },
  };
}

/** A JSON (or text) request; resolves status, headers and parsed body. */
export async function api(
  url: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; text?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: Json }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined = options.text;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  // reset: no keep-alive reuse (a test that blocks on spawnSync can outlive the server's keep-alive timeout).
  const res = await request(`${url}${path}`, { method: method as 'GET', headers, body, reset: true });
  const text = await res.body.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.statusCode, headers: res.headers, body: parsed };
}

/** One SSE event as read off the wire. */
export interface SseEvent {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: Json;
}

/** An open watch stream: events are queued as they arrive. */
export interface WatchStream {
  readonly status: number;
  /** Every event so far (`: ping` comments are counted in `pings`). */
  readonly events: SseEvent[];
  pings: number;
  /** Resolves the next event not yet taken (optionally of one name), or rejects after `timeoutMs`. */
  next(name?: string, timeoutMs?: number): Promise<SseEvent>;
  /** Resolves when the server ends the stream. */
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens `GET /v1/watch` with undici and parses the SSE stream. */
export async function watch(url: string, query: string, options: { token?: string; lastEventId?: string } = {}): Promise<WatchStream> {
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
  const ac = new AbortController();
  const res = await request(`${url}/v1/watch?${query}`, { headers, signal: ac.signal, bodyTimeout: 0 });
  const events: SseEvent[] = [];
  let taken = 0;
  let waiters: (() => void)[] = [];
  let buf = '';
  let endResolve: () => void = () => {};
  const ended = new Promise<void>((r) => {
    endResolve = r;
  });
  const stream: WatchStream = {
    status: res.statusCode,
    events,
    pings: 0,
    ended,
    close: () => ac.abort(),
    next: async (name, timeoutMs = 3000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        while (taken < events.length) {
          const e = events[taken++]!;
          if (name === undefined || e.event === name) return e;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no ${name ?? ''} event within ${timeoutMs} ms; got ${events.map((e) => e.event).join(',')}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
  };
  res.body.setEncoding('utf8');
  res.body.on('data', (chunk: string) => {
    buf += chunk;
    for (let at = buf.indexOf('\n\n'); at >= 0; at = buf.indexOf('\n\n')) {
      const block = buf.slice(0, at);
      buf = buf.slice(at + 2);
      let event = 'message';
      let id: string | undefined;
      const data: string[] = [];
      let comment = false;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) comment = true;
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (comment && data.length === 0) {
        stream.pings++;
        continue;
      }
      const text = data.join('\n');
      let value: unknown = text;
      try {
        value = JSON.parse(text);
      } catch {}
      events.push({ event, id, data: value });
    }
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  });
  res.body.on('end', () => endResolve());
  res.body.on('error', () => endResolve());
  res.body.on('close', () => endResolve());
  return stream;
}

/** Waits until `check()` is truthy (polling every 10 ms) or fails after `timeoutMs`. */
export async function until<T>(check: () => T | Promise<T>, timeoutMs = 3000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
