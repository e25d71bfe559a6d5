/**
 * An app whose @grpc/grpc-js is another copy than the one meshlet loads (bundled into the app, or
 * a second install): a separate copy of the same package, loaded from a temporary directory, so
 * its classes are not meshlet's. Its clients and Metadata go through mesh.grpc, and a server of
 * it takes mesh.grpc.serverInterceptors(). Metadata the mesh hands the app is of the app's copy:
 * grpc-js tells a call's Metadata argument from its options with `instanceof Metadata`, so
 * metadata of meshlet's copy forwarded to a client of the app's copy (a server call's metadata
 * passed on, a response's trailers) was taken for options and silently not sent.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type * as grpcJs from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createMesh, type Mesh } from '../../src/index.ts';
import { type GrpcUpstream, grpcServiceEntry, startGrpcUpstream } from '../helpers/grpc.ts';

type G = typeof grpcJs;
const require = createRequire(import.meta.url);
const PROTO = fileURLToPath(new URL('../fixtures/grpc/echo.proto', import.meta.url));

/** A copy of the installed grpc-js in `dir`'s node_modules, its dependencies linked to the installed ones. */
function secondCopy(dir: string): G {
  const pkg = dirname(require.resolve('@grpc/grpc-js/package.json'));
  const own = createRequire(join(pkg, 'package.json'));
  const modules = join(dir, 'node_modules');
  cpSync(pkg, join(modules, '@grpc/grpc-js'), { recursive: true, dereference: true });
  for (const dep of ['@grpc/proto-loader', '@js-sdsl/ordered-map']) {
    mkdirSync(dirname(join(modules, dep)), { recursive: true });
    symlinkSync(dirname(own.resolve(`${dep}/package.json`)), join(modules, dep));
  }
  return createRequire(join(dir, 'app.js'))('@grpc/grpc-js') as G;
}

type Unary = (req: object, md: grpcJs.Metadata, cb: (err: grpcJs.ServiceError | null, res?: { text: string }) => void) => grpcJs.ClientUnaryCall;
interface EchoB extends grpcJs.Client {
  Unary: Unary;
}

describe('an app with its own copy of @grpc/grpc-js', () => {
  let dir: string;
  let B: G;
  let EchoB: grpcJs.ServiceClientConstructor;
  let up: GrpcUpstream;
  let mesh: Mesh;
  const clients: grpcJs.Client[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshlet-grpcjs-'));
    B = secondCopy(dir);
    assert.notEqual(B.Metadata, require('@grpc/grpc-js').Metadata, 'a second copy');
    EchoB = (B.loadPackageDefinition(protoLoader.loadSync(PROTO, { keepCase: true, defaults: true })) as unknown as { meshlet: { test: { Echo: grpcJs.ServiceClientConstructor } } }).meshlet.test.Echo;
    up = await startGrpcUpstream('up', {
      Unary: (call, cb) => {
        const trailers = new (call.metadata.constructor as typeof grpcJs.Metadata)();
        trailers.set('x-trailer', 't');
        cb(null, { text: call.request.text, server: 'up', seen: [] }, trailers);
      },
    });
    mesh = await createMesh({ service: 'app', namespace: 'default', config: [grpcServiceEntry('up', 'up.default.svc.cluster.local', 9090, [{ port: up.port }])] });
  });
  after(async () => {
    for (const c of clients) c.close();
    await mesh.close();
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (c: EchoB, md: grpcJs.Metadata) =>
    new Promise<{ error: grpcJs.ServiceError | null; metadata?: grpcJs.Metadata; status?: grpcJs.StatusObject }>((resolve) => {
      const out: { error: grpcJs.ServiceError | null; metadata?: grpcJs.Metadata; status?: grpcJs.StatusObject } = { error: null };
      const x = c.Unary({ text: 'hi' }, md, (err) => (out.error = err));
      x.on('metadata', (m: grpcJs.Metadata) => (out.metadata = m));
      x.on('status', (s: grpcJs.StatusObject) => setImmediate(() => resolve({ ...out, status: s })));
    });

  it('mesh.grpc.client takes its client class and Metadata; the response metadata and trailers are of its copy, and forwarded they are sent', async () => {
    const c = mesh.grpc.client(EchoB as never, 'up.default.svc.cluster.local:9090') as unknown as EchoB;
    const plain = new EchoB(`127.0.0.1:${up.port}`, B.credentials.createInsecure()) as unknown as EchoB;
    clients.push(c, plain);
    const md = new B.Metadata();
    md.set('x-a', '1');
    md.set('x-b-bin', Buffer.from([1, 2]));
    const r = await call(c, md);
    assert.equal(r.error, null);
    assert.deepEqual([up.seen.at(-1)?.metadata['x-a'], up.seen.at(-1)?.metadata['x-b-bin']], ['1', Buffer.from([1, 2])]);
    assert.ok(r.metadata instanceof B.Metadata, 'response metadata of the app’s copy');
    assert.ok(r.status?.metadata instanceof B.Metadata, 'trailers of the app’s copy');
    // The trailers, passed on as the metadata of a call by the app's own client.
    assert.equal((await call(plain, r.status?.metadata as grpcJs.Metadata)).error, null);
    assert.deepEqual(up.seen.at(-1)?.metadata['x-trailer'], 't');
  });

  it('a mesh-made failure’s status carries Metadata of its copy', async () => {
    const c = mesh.grpc.client(EchoB as never, 'nowhere.default.svc.cluster.local:9090') as unknown as EchoB;
    clients.push(c);
    const r = await call(c, new B.Metadata());
    assert.notEqual(r.error, null);
    assert.ok(r.status?.metadata instanceof B.Metadata);
  });

  it('a Server of its copy with mesh.grpc.serverInterceptors(): the handler’s metadata is of its copy, and forwarded it is sent', async () => {
    const plain = new EchoB(`127.0.0.1:${up.port}`, B.credentials.createInsecure()) as unknown as EchoB;
    clients.push(plain);
    const server = new B.Server({ interceptors: mesh.grpc.serverInterceptors() });
    let handed: grpcJs.Metadata | undefined;
    server.addService(EchoB.service, {
      Unary: (c: grpcJs.ServerUnaryCall<{ text: string }, object>, cb: grpcJs.sendUnaryData<object>) => {
        handed = c.metadata;
        // The incoming metadata, passed on as is (propagating the caller's headers).
        plain.Unary({ text: 'fwd' }, c.metadata, (err) => cb(err, { text: 'done', server: 's', seen: [] }));
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', B.ServerCredentials.createInsecure(), (e, p) => (e === null ? resolve(p) : reject(e))));
    const client = new EchoB(`127.0.0.1:${port}`, B.credentials.createInsecure()) as unknown as EchoB;
    clients.push(client);
    try {
      const md = new B.Metadata();
      md.set('x-forward-me', 'yes');
      assert.equal((await call(client, md)).error, null);
      // The mesh changed the handler's metadata (it added x-request-id), so it made it anew.
      assert.equal(typeof handed?.get('x-request-id')[0], 'string');
      assert.ok(handed instanceof B.Metadata);
      assert.equal(up.seen.at(-1)?.metadata['x-forward-me'], 'yes');
    } finally {
      server.forceShutdown();
    }
  });
});
