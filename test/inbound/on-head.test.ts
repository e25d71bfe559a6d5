/**
 * The head hook of the server adapters (src/adapters/server/on-head.ts) on every form of
 * `writeHead` an app or a framework uses, over a real socket with node:http as the caller: the
 * app's hop-by-hop headers leave, the mesh's `server` replaces the app's, headers to add come
 * after the app's — through the hooks shared by every response (strip, server, both) and through
 * a plan of the response's own (headers to add, a `writeHead` someone wrapped before the mesh).
 */
import assert from 'node:assert/strict';
import { Agent, createServer, type IncomingHttpHeaders, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { addOnHead, overwriteOnHead, stripHopByHopOnHead } from '../../src/adapters/server/on-head.ts';

type Steps = (res: ServerResponse) => void;
let wrapperRan = false;
type Answer = (res: ServerResponse) => void;

async function answer(steps: Steps, app: Answer): Promise<{ status: number; message: string; headers: IncomingHttpHeaders; rawHeaders: string[] }> {
  const server = createServer((_req, res) => {
    steps(res);
    app(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  // Keep-alive: node:http's own answer then says keep-alive, and an app's close would show.
  const agent = new Agent({ keepAlive: true });
  try {
    return await new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, message: res.statusMessage ?? '', headers: res.headers, rawHeaders: res.rawHeaders }));
      });
      req.on('error', reject);
      req.end();
    });
  } finally {
    agent.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

const plans: [string, Steps][] = [
  ['shared hook: server and strip', (res) => {
      overwriteOnHead(res, 'server', 'istio-envoy');
      stripHopByHopOnHead(res);
    }],
  ['shared hook: strip, then server', (res) => {
      stripHopByHopOnHead(res);
      overwriteOnHead(res, 'server', 'istio-envoy');
    }],
  ['own plan: headers added too', (res) => {
      overwriteOnHead(res, 'server', 'istio-envoy');
      stripHopByHopOnHead(res);
      addOnHead(res, { 'x-added': 'a' });
    }],
  [
    'own plan: writeHead wrapped before the mesh',
    (res) => {
      const inner = res.writeHead;
      res.writeHead = function (this: ServerResponse, ...a: unknown[]) {
        wrapperRan = true;
        return (inner as (...x: unknown[]) => ServerResponse).apply(this, a);
      } as ServerResponse['writeHead'];
      overwriteOnHead(res, 'server', 'istio-envoy');
      stripHopByHopOnHead(res);
    },
  ],
];

const forms: [string, Answer, (r: Awaited<ReturnType<typeof answer>>) => void][] = [
  [
    'setHeader, then end()',
    (res) => {
      res.setHeader('Server', 'app');
      res.setHeader('Keep-Alive', 'timeout=9');
      res.setHeader('x-app', '1');
      res.end('x');
    },
    (r) => assert.equal(r.status, 200),
  ],
  [
    'writeHead(status)',
    (res) => {
      res.setHeader('connection', 'close');
      res.setHeader('x-app', '1');
      res.writeHead(201).end();
    },
    (r) => assert.equal(r.status, 201),
  ],
  ['writeHead(status, object)', (res) => res.writeHead(202, { Server: 'app', 'Proxy-Connection': 'x', 'x-app': '1' }).end(), (r) => assert.equal(r.status, 202)],
  [
    'writeHead(status, message)',
    (res) => {
      res.setHeader('upgrade', 'h2c');
      res.setHeader('x-app', '1');
      res.writeHead(203, 'Fine').end();
    },
    (r) => assert.deepEqual([r.status, r.message], [203, 'Fine']),
  ],
  ['writeHead(status, message, object)', (res) => res.writeHead(200, 'Good', { server: 'app', connection: 'close', 'x-app': '1' }).end(), (r) => assert.deepEqual([r.status, r.message], [200, 'Good'])],
  // Node reads the headers from the third argument whenever it is given (writeHead's `obj ??= reason`).
  [
    'writeHead(status, undefined, object)',
    (res) => (res.writeHead as (s: number, m: unknown, h: unknown) => ServerResponse)(200, undefined, { server: 'app', 'keep-alive': 'timeout=9', 'x-app': '1' }).end(),
    (r) => assert.equal(r.status, 200),
  ],
  ['writeHead(status, raw list)', (res) => res.writeHead(200, ['Server', 'app', 'Keep-Alive', 'timeout=9', 'x-app', '1']).end(), (r) => assert.equal(r.status, 200)],
  [
    'writeHead(status, list of pairs)',
    (res) =>
      (res.writeHead as (s: number, h: unknown) => ServerResponse)(200, [
        ['server', 'app'],
        ['proxy-connection', 'x'],
        ['x-app', '1'],
      ]).end(),
    (r) => assert.equal(r.status, 200),
  ],
];

describe('the head hook of the server adapters', () => {
  for (const [plan, steps] of plans) {
    for (const [form, app, check] of forms) {
      it(`${plan}; ${form}`, async () => {
        wrapperRan = false;
        const r = await answer(steps, app);
        check(r);
        assert.equal(r.headers.server, 'istio-envoy', 'the mesh server header replaces the app one');
        assert.equal(r.rawHeaders.filter((n, i) => i % 2 === 0 && n.toLowerCase() === 'server').length, 1);
        assert.equal(r.headers['x-app'], '1');
        assert.notEqual(r.headers['keep-alive'], 'timeout=9', "the app's keep-alive reached the caller");
        assert.equal(r.headers['proxy-connection'], undefined);
        assert.equal(r.headers.upgrade, undefined);
        assert.notEqual(r.headers.connection, 'close', "the app's connection: close reached the caller");
        if (plan.includes('added')) assert.equal(r.headers['x-added'], 'a');
        if (plan.includes('wrapped')) assert.equal(wrapperRan, true);
      });
    }
  }
});
