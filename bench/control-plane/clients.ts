/**
 * A child process of bench/control-plane/run.ts that holds many control-plane clients and
 * reports, over IPC, when each of them has a config version:
 *
 *   node bench/control-plane/clients.ts <mode> <count> <url[,url]> <service>
 *
 * mode `mesh`:  `count` real meshes (`createMesh({ controlPlane })`); a version counts when the
 *               mesh emits `config` (validated, compiled, swapped in and ACKed).
 * mode `watch`: `count` bare SSE watch streams (`GET /v1/watch`) that ACK every version; a version
 *               counts when its `config` event has been read. Used for the 1,000-client scale run,
 *               where the control plane's cost is what is measured.
 *
 * The token comes from MESHLET_TOKEN. Times are `performance.timeOrigin + performance.now()`
 * (ms since the epoch with µs resolution), comparable across processes on one machine.
 * Messages: `{ t: 'ready' }` once every client has its first config; `{ t: 'got', version, times }`
 * once every client has `version` (times in client order); `{ t: 'error', message }`.
 */
import { Agent, request as httpRequest } from 'node:http';
import { performance } from 'node:perf_hooks';

const [mode, countArg, urlArg, service] = process.argv.slice(2);
const count = Number(countArg);
if ((mode !== 'mesh' && mode !== 'watch') || !(count > 0) || urlArg === undefined || service === undefined) {
  throw new Error('usage: clients.ts mesh|watch <count> <url[,url]> <service>');
}
const urls = urlArg.split(',');
const token = process.env.MESHLET_TOKEN ?? '';
const send = (m: unknown): void => {
  process.send?.(m);
};
const now = (): number => performance.timeOrigin + performance.now();
/** ACKs share keep-alive connections, as a mesh's do. */
const ackAgent = new Agent({ keepAlive: true, maxSockets: 4 });

/** Arrival time of each version at each client. */
const arrivals = new Map<string, number[]>();
const complete = new Set<string>();
let firstSeen = 0;
const hasFirst = new Set<number>();

function record(client: number, version: string): void {
  const at = now();
  let times = arrivals.get(version);
  if (times === undefined) {
    times = new Array<number>(count).fill(Number.NaN);
    arrivals.set(version, times);
  }
  if (Number.isNaN(times[client])) times[client] = at;
  if (!hasFirst.has(client)) {
    hasFirst.add(client);
    firstSeen++;
    if (firstSeen === count) send({ t: 'ready' });
  }
  if (!complete.has(version) && times.every((x) => !Number.isNaN(x))) {
    complete.add(version);
    send({ t: 'got', version, times });
    arrivals.delete(version);
  }
}

async function startMeshes(): Promise<void> {
  const { createMesh } = await import('../../src/index.ts');
  const meshes: { close(): Promise<void> }[] = [];
  for (let i = 0; i < count; i++) {
    const m = await createMesh({
      service,
      controlPlane: i % 2 === 0 ? urls : [...urls].reverse(),
      token,
      logger: { warn: () => undefined },
    } as never);
    const mesh = m as unknown as { configVersion: string; on(e: string, f: (ev: { version: string }) => void): void; close(): Promise<void> };
    record(i, configPart(mesh.configVersion));
    mesh.on('config', (ev) => record(i, configPart(ev.version)));
    meshes.push(mesh);
  }
  process.on('disconnect', () => {
    Promise.all(meshes.map((m) => m.close())).finally(() => process.exit(0));
  });
}

/** A snapshot version may carry the endpoints version after a slash; the config part is what changed. */
function configPart(v: string): string {
  const slash = v.indexOf('/');
  return slash < 0 ? v : v.slice(0, slash);
}

function watch(i: number, url: string): void {
  const target = new URL('/v1/watch', url);
  target.searchParams.set('service', service as string);
  target.searchParams.set('namespace', 'default');
  const req = httpRequest(target, { agent: false, headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } }, (res) => {
    if (res.statusCode !== 200) {
      send({ t: 'error', message: `watch ${i}: HTTP ${res.statusCode}` });
      return;
    }
    res.setEncoding('utf8');
    let buf = '';
    let connection = '';
    res.on('data', (chunk: string) => {
      buf += chunk;
      let end = buf.indexOf('\n\n');
      while (end >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        end = buf.indexOf('\n\n');
        let event = 'message';
        let data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trimStart();
        }
        if (event === 'hello') connection = (JSON.parse(data) as { connection: string }).connection;
        else if (event === 'config' || event === 'endpoints') {
          const version = (JSON.parse(data) as { version: string }).version;
          if (event === 'config') record(i, version);
          ack(url, connection, event, version);
        }
      }
    });
    res.on('error', () => undefined);
  });
  req.on('error', (e) => send({ t: 'error', message: `watch ${i}: ${e.message}` }));
  req.end();
}

function ack(url: string, connection: string, kind: string, version: string): void {
  const body = JSON.stringify({ connection, kind, version, status: 'ACK' });
  const req = httpRequest(new URL('/v1/ack', url), {
    method: 'POST',
    agent: ackAgent,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
  req.on('response', (res) => res.resume());
  req.on('error', () => undefined);
  req.end(body);
}

if (mode === 'mesh') {
  startMeshes().catch((e: unknown) => {
    send({ t: 'error', message: String(e instanceof Error ? e.message : e) });
    process.exit(1);
  });
} else {
  for (let i = 0; i < count; i++) watch(i, urls[i % urls.length] as string);
  process.on('disconnect', () => process.exit(0));
}
