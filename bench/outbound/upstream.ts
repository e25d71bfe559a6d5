/**
 * Upstream for the outbound benchmark: bare node:http, GET anything → 200 with a 100-byte text
 * body, keep-alive. One process listening on two loopback addresses with the same port
 * (127.0.0.1 = endpoint v1, 127.0.0.2 = endpoint v2) so the mesh's subset split is visible.
 * Run by bench/outbound/run.ts over an IPC channel; exits when the parent goes away.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { V1_ADDRESS, V2_ADDRESS } from './mesh-config.ts';

const BODY = Buffer.alloc(100, 'x');
const HEADERS = { 'content-type': 'text/plain', 'content-length': String(BODY.length) };
const counts = { v1: 0, v2: 0, connections: 0 };

function server(key: 'v1' | 'v2'): Server {
  const s = createServer((req: IncomingMessage, res: ServerResponse) => {
    counts[key]++;
    req.resume();
    res.writeHead(200, HEADERS);
    res.end(BODY);
  });
  s.on('connection', () => {
    counts.connections++;
  });
  s.keepAliveTimeout = 60_000;
  s.headersTimeout = 65_000;
  s.requestTimeout = 0;
  s.maxRequestsPerSocket = 0;
  return s;
}

function listen(s: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    s.once('error', onError);
    s.listen({ host, port, backlog: 1024 }, () => {
      s.off('error', onError);
      const addr = s.address();
      resolve(typeof addr === 'object' && addr !== null ? addr.port : port);
    });
  });
}

function close(s: Server): Promise<void> {
  return new Promise((resolve) => (s.listening ? s.close(() => resolve()) : resolve()));
}

async function start(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const a = server('v1');
    const b = server('v2');
    const port = await listen(a, V1_ADDRESS, 0);
    try {
      await listen(b, V2_ADDRESS, port);
      return port;
    } catch (err) {
      await close(a);
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
  throw new Error('no port free on both 127.0.0.1 and 127.0.0.2');
}

if (process.send === undefined) throw new Error('upstream.ts is started by bench/outbound/run.ts (needs an IPC channel)');
process.on('disconnect', () => process.exit(0));
process.on('message', (msg: { type?: string }) => {
  if (msg.type === 'counts') {
    const cpu = process.cpuUsage();
    process.send?.({ type: 'counts', ...counts, cpuUs: cpu.user + cpu.system });
  }
});
const port = await start();
process.send({ type: 'ready', port });
