/**
 * The data plane under a hostile or careless caller and upstream (issue 11): failures of the
 * caller's own making never count against an endpoint, the Host header cannot send a call to an
 * address the URL did not name, streamed bodies are closed when the mesh answers itself, keys
 * named like Object.prototype members are plain names, upstreams cannot forge mesh signals, and
 * close() is bounded.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, isMeshletError, ManualClock, type Mesh } from '../../src/index.ts';
import { call, destinationRule, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const OUTLIER = { trafficPolicy: { outlierDetection: { consecutive5xxErrors: 3, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 100 } } };

describe('failures of the caller\'s own making are not the upstream\'s', () => {
  let a: Upstream;
  let b: Upstream;
  let mesh: Mesh;
  before(async () => {
    a = await startUpstream('a');
    b = await startUpstream('b');
    mesh = await createMesh({
      service: 'client',
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: a.port }, { port: b.port }]),
        destinationRule('svc', 'svc', OUTLIER),
        virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 3, retryOn: 'reset,connect-failure,5xx' } }]),
      ],
    });
  });
  after(async () => {
    await mesh.close();
    await a.close();
    await b.close();
  });

  const ejected = () => mesh.diagnostics().clusters.flatMap((c) => c.endpoints).filter((e) => e.ejected).length;

  it('a header value with a newline fails locally as undici would (InvalidArgumentError), never retried, never ejects', async () => {
    const hits = a.hits + b.hits;
    for (let i = 0; i < 4; i++) {
      await assert.rejects(request('http://svc/', { dispatcher: mesh.dispatcher, headers: { 'x-a': 'a\nb' } }), (e: Error) => (e as { code?: string }).code === 'UND_ERR_INVALID_ARG');
    }
    assert.equal(a.hits + b.hits, hits, 'nothing reached an upstream');
    assert.equal(ejected(), 0);
    assert.equal((await call(mesh, 'http://svc/')).status, 200);
  });

  it('a body that does not match its own content-length fails as undici reports it (RequestContentLengthMismatchError), never retried, never ejects', async () => {
    for (let i = 0; i < 4; i++) {
      for (const body of ['abcdef', 'ab', () => Readable.from([Buffer.from('ab')])]) {
        await assert.rejects(
          request('http://svc/cl', { dispatcher: mesh.dispatcher, method: 'POST', headers: { 'content-length': '4' }, body: typeof body === 'function' ? body() : body }),
          (e: Error) => (e as { code?: string }).code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
        );
      }
    }
    assert.equal(ejected(), 0);
    assert.equal((await call(mesh, 'http://svc/')).status, 200);
  });

  it("the caller's request body failing mid-upload reaches the caller as its own error; never retried, never ejects", async () => {
    for (let i = 0; i < 4; i++) {
      async function* body() {
        yield 'abc';
        await new Promise((r) => setTimeout(r, 5));
        throw new Error(`source broke ${i}`);
      }
      await assert.rejects(request('http://svc/up', { dispatcher: mesh.dispatcher, method: 'POST', body: Readable.from(body()) }), new RegExp(`^Error: source broke ${i}$`));
    }
    assert.equal(ejected(), 0);
    const r = await call(mesh, 'http://svc/');
    assert.equal(r.status, 200);
  });
});

describe('the Host header chooses among mesh services only', () => {
  let inMesh: Upstream;
  let other: Upstream;
  let mesh: Mesh;
  before(async () => {
    inMesh = await startUpstream('ratings');
    other = await startUpstream('secret');
    mesh = await createMesh({ service: 'client', config: [serviceEntry('ratings', 'ratings.default.svc.cluster.local', 9080, [{ port: inMesh.port }])] });
  });
  after(async () => {
    await mesh.close();
    await inMesh.close();
    await other.close();
  });

  it('a Host naming an address outside the mesh does not redirect a call to a mesh service (no SSRF)', async () => {
    const r = await request('http://ratings:9080/x', { dispatcher: mesh.dispatcher, headers: { host: `127.0.0.1:${other.port}` } });
    assert.equal(await r.body.text(), 'ratings');
    assert.equal(other.hits, 0, 'the other address was never contacted');
  });

  it('a passthrough call goes where the URL says, whatever the Host header says', async () => {
    const r = await request(`http://127.0.0.1:${inMesh.port}/p`, { dispatcher: mesh.dispatcher, headers: { host: `127.0.0.1:${other.port}` } });
    assert.equal(await r.body.text(), 'ratings');
    assert.equal(other.hits, 0);
    assert.equal(inMesh.seen.at(-1)?.headers.host, `127.0.0.1:${other.port}`, 'the Host header itself is sent as given');
  });

  it('a Host naming a mesh service routes to that service, as at a sidecar', async () => {
    const r = await request(`http://127.0.0.1:${other.port}/h`, { dispatcher: mesh.dispatcher, headers: { host: 'ratings:9080' } });
    assert.equal(await r.body.text(), 'ratings');
    assert.equal(other.hits, 0);
  });
});

describe('streamed request bodies are closed when the mesh answers itself', () => {
  let up: Upstream;
  let mesh: Mesh;
  before(async () => {
    up = await startUpstream('up');
    mesh = await createMesh({
      service: 'client',
      outboundTrafficPolicy: 'REGISTRY_ONLY',
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]),
        serviceEntry('empty', 'empty.default.svc.cluster.local', 80, []),
        virtualService('svc', ['svc'], [
          { match: [{ uri: { prefix: '/fault' } }], route: [{ destination: { host: 'svc' } }], fault: { abort: { httpStatus: 418, percentage: { value: 100 } } } },
          { match: [{ uri: { prefix: '/nc' } }], route: [{ destination: { host: 'svc', subset: 'none' } }] },
          { match: [{ uri: { prefix: '/ok' } }], route: [{ destination: { host: 'svc' } }] },
        ]),
      ],
    });
  });
  after(async () => {
    await mesh.close();
    await up.close();
  });

  for (const [what, url, status, flag] of [
    ['404 NR', 'http://svc/other', 404, 'NR'],
    ['503 NC', 'http://svc/nc', 503, 'NC'],
    ['503 UH', 'http://empty/', 503, 'UH'],
    ['a fault abort', 'http://svc/fault', 418, 'FI'],
    ['502 REGISTRY_ONLY', 'http://elsewhere.example/', 502, null],
  ] as const) {
    it(`${what}: the body stream is destroyed, and its later error does not crash the process`, async () => {
      let uncaught: unknown;
      const onUncaught = (e: unknown) => {
        uncaught = e;
      };
      process.on('uncaughtException', onUncaught);
      try {
        const body = new Readable({ read() {} }); // never ends on its own, like a slow upload
        body.push('partial');
        const r = await request(url, { dispatcher: mesh.dispatcher, method: 'POST', body });
        assert.equal(r.statusCode, status);
        assert.equal(r.headers['x-meshlet-response-flags'] ?? null, flag);
        await r.body.dump();
        if (!body.destroyed) await once(body, 'close');
        assert.ok(body.destroyed, 'the body stream is closed');
        body.emit('error', new Error('late source error'));
        await new Promise((res) => setImmediate(res));
        assert.equal(uncaught, undefined);
      } finally {
        process.off('uncaughtException', onUncaught);
      }
    });
  }
});

describe('names from outside are plain names, even Object.prototype ones', () => {
  it('caller headers named constructor, __proto__, toString reach the upstream; a VirtualService header match on constructor works', async () => {
    let raw: string[] = [];
    const up = await startUpstream('up', (req, res) => {
      raw = req.rawHeaders;
      res.end('up');
    });
    const mesh = await createMesh({
      service: 'client',
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]),
        virtualService('svc', ['svc'], [
          { match: [{ headers: { constructor: { exact: 'yes' } } }], route: [{ destination: { host: 'svc' } }], headers: { response: { add: { constructor: 'c', 'x-m': 'matched' } } } },
          { route: [{ destination: { host: 'svc' } }] },
        ]),
      ],
    });
    try {
      const plain = await call(mesh, 'http://svc/');
      assert.equal(plain.status, 200);
      assert.equal(plain.headers.get('x-m'), null);
      const m = await call(mesh, 'http://svc/', { headers: [['constructor', 'yes'], ['__proto__', 'p'], ['toString', 't']] });
      assert.equal(m.status, 200);
      assert.equal(m.headers.get('x-m'), 'matched');
      assert.equal(m.headers.get('constructor'), 'c');
      // As sent on the wire (Node's own parsed headers object drops a header named __proto__).
      const sent = new Map<string, string>();
      for (let i = 0; i < raw.length; i += 2) sent.set((raw[i] as string).toLowerCase(), raw[i + 1] as string);
      assert.equal(sent.get('constructor'), 'yes');
      assert.equal(sent.get('tostring'), 't');
      assert.equal(sent.get('__proto__'), 'p');
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});

describe('upstreams cannot forge mesh signals', () => {
  it('an upstream\'s own x-meshlet-response-flags and x-envoy-overloaded are removed; real flags are the mesh\'s alone', async () => {
    const up = await startUpstream('up', (_req, res, hit) => {
      res.setHeader('x-meshlet-response-flags', 'UH,UO');
      res.setHeader('x-envoy-overloaded', 'true');
      res.statusCode = hit === 1 ? 503 : 200;
      res.end('x');
    });
    const mesh = await createMesh({
      service: 'client',
      config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]), virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], fault: { delay: { fixedDelay: '1ms', percentage: { value: 100 } } } }])],
    });
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.flags, 'DI', 'only the mesh\'s own flag');
      assert.equal(r.headers.get('x-envoy-overloaded'), null);
      const plain = await createMesh({ service: 'client', config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }])] });
      try {
        const p = await call(plain, 'http://svc/');
        assert.equal(p.flags, null);
        assert.equal(p.headers.get('x-envoy-overloaded'), null);
      } finally {
        await plain.close();
      }
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});

describe('mesh.close() is bounded', () => {
  it('a call to a hung upstream on a route without a timeout does not hold close() past closeTimeoutMs; the call fails', async () => {
    const hung = await startUpstream('hung', () => new Promise(() => {}));
    const clock = new ManualClock();
    const mesh = await createMesh({ service: 'client', clock, closeTimeoutMs: 5000, config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: hung.port }])] });
    try {
      const pending = request('http://svc/', { dispatcher: mesh.dispatcher }).then(
        () => 'answered',
        (e: unknown) => (isMeshletError(e) ? `meshlet ${(e as { code: string }).code}` : `error ${(e as Error).name}`),
      );
      while (hung.seen.length === 0) await new Promise((r) => setTimeout(r, 5));
      let state = 'closing';
      const closed = mesh.close().then(() => (state = 'closed'));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(state, 'closing', 'close() waits for the call while closeTimeoutMs has not passed');
      clock.advance(5000);
      await closed;
      assert.equal(state, 'closed');
      assert.equal(await pending, 'meshlet MESHLET_ERR_CLOSED');
    } finally {
      await hung.close();
    }
  });
});

describe('mesh.close(): the servers drain with the outbound side up, then new calls are refused', () => {
  it('a request in flight on a server the mesh made calls out through the mesh while close() drains it; after close() every HTTP entry point refuses, nothing is sent', async () => {
    const up = await startUpstream('up');
    const mesh = await createMesh({ service: 'client', config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }])] });
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    let entered: () => void = () => {};
    const inHandler = new Promise<void>((r) => (entered = r));
    const server = mesh.createServer(async (_req, res) => {
      entered();
      await gate;
      const r = await mesh.fetch('http://svc/during-drain');
      res.end(`upstream said ${r.status} ${await r.text()}`);
    });
    try {
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const port = (server.address() as { port: number }).port;
      const answer = request(`http://127.0.0.1:${port}/`).then(async (r) => `${r.statusCode} ${await r.body.text()}`);
      await inHandler;
      let state = 'closing';
      const closed = mesh.close().then(() => (state = 'closed'));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(state, 'closing', 'close() waits for the request in flight');
      release();
      assert.match(await answer, /^200 upstream said 200 /);
      await closed;
      assert.deepEqual(
        up.seen.map((s) => s.url),
        ['/during-drain'],
      );
      const refused = (p: Promise<unknown>) =>
        p.then(
          () => 'sent',
          (e: unknown) => {
            const err = isMeshletError(e) ? e : (e as { cause?: unknown }).cause;
            return isMeshletError(err) ? `${(err as { code: string }).code}: ${(err as Error).message}` : `other: ${String(e)}`;
          },
        );
      const closedText = 'MESHLET_ERR_INVALID_ARG: mesh.dispatcher: the mesh is closed';
      assert.equal(await refused(mesh.fetch('http://svc/after')), closedText);
      assert.equal(await refused(request('http://svc/after', { dispatcher: mesh.dispatcher })), closedText);
      assert.equal(await refused(fetch('http://svc/after', { dispatcher: mesh.dispatcher } as RequestInit)), closedText, "Node's built-in fetch");
      assert.equal(up.seen.length, 1, 'nothing sent after close()');
    } finally {
      release();
      await mesh.close();
      await up.close();
    }
  });
});
