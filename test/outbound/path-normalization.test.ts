/**
 * Calls' paths are normalized before routing, as Istio's sidecar does on its outbound listeners:
 * istiod sets MeshConfig `pathNormalization` (default BASE: Envoy's `normalize_path`) on every HTTP
 * connection manager it builds (pilot/pkg/networking/core/listener_builder.go), and Envoy routes
 * and forwards the normalized path. WHATWG URLs (fetch, and undici.request, which parses its
 * URL first) resolve dot segments but keep `%61`-style escapes; a dispatcher's own `request()`
 * sends its `path` as given.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const SVC = 'svc.default.svc.cluster.local';

describe('outbound path normalization (MeshConfig pathNormalization)', () => {
  let up: Upstream;
  let other: Upstream;
  const meshes: Mesh[] = [];
  before(async () => {
    up = await startUpstream('admin');
    other = await startUpstream('other');
  });
  after(async () => {
    for (const m of meshes) await m.close();
    await up.close();
    await other.close();
  });

  async function mesh(pathNormalization?: 'NONE' | 'MERGE_SLASHES'): Promise<Mesh> {
    const m = await createMesh({
      service: 'client',
      ...(pathNormalization === undefined ? {} : { pathNormalization }),
      config: [
        serviceEntry('svc', SVC, 80, [{ port: up.port }]),
        serviceEntry('other', 'other.default.svc.cluster.local', 80, [{ port: other.port }]),
        virtualService('svc', ['svc'], [
          { match: [{ uri: { prefix: '/admin' } }], route: [{ destination: { host: 'svc' } }] },
          { route: [{ destination: { host: 'other' } }] },
        ]),
      ],
    });
    meshes.push(m);
    return m;
  }

  async function send(m: Mesh, path: string): Promise<{ status: number; upstream: string | undefined; url: string | undefined }> {
    const before = { up: up.seen.length, other: other.seen.length };
    // The dispatcher's own request() sends `path` as given (undici.request() resolves dot segments with its URL parser first).
    const r = await m.dispatcher.request({ origin: 'http://svc', path, method: 'GET' });
    await r.body.dump();
    const hit = up.seen.length > before.up ? { upstream: 'admin', url: up.seen[before.up]?.url } : other.seen.length > before.other ? { upstream: 'other', url: other.seen[before.other]?.url } : { upstream: undefined, url: undefined };
    return { status: r.statusCode, ...hit };
  }

  test('default (BASE): dot segments and escaped unreserved characters are resolved before routing, and the normalized path is sent', async () => {
    const m = await mesh();
    assert.deepEqual(await send(m, '/public/../admin/x?q=%2e'), { status: 200, upstream: 'admin', url: '/admin/x?q=%2e' });
    assert.deepEqual(await send(m, '/%61dmin'), { status: 200, upstream: 'admin', url: '/admin' });
    assert.deepEqual(await send(m, '/a/./b\\c'), { status: 200, upstream: 'other', url: '/a/b/c' });
    // BASE leaves repeated slashes (merge_slashes is off).
    assert.deepEqual(await send(m, '//admin'), { status: 200, upstream: 'other', url: '//admin' });
  });

  test('fetch with mesh.dispatcher: %61dmin routes as /admin', async () => {
    const m = await mesh();
    const before = up.seen.length;
    const res = await fetch('http://svc/%61dmin', { dispatcher: m.dispatcher } as RequestInit);
    await res.arrayBuffer();
    assert.equal(up.seen[before]?.url, '/admin');
  });

  test('an encoded NUL cannot be normalized: 400, nothing sent', async () => {
    const m = await mesh();
    const r = await send(m, '/admin%00x');
    assert.equal(r.status, 400);
    assert.equal(r.upstream, undefined);
  });

  test('a host outside the mesh keeps its path, %00 too (passed through, not refused); mesh.explain tells the two apart', async () => {
    const m = await mesh();
    const before = up.seen.length;
    const r = await m.dispatcher.request({ origin: `http://127.0.0.1:${up.port}`, path: '/file%00.txt', method: 'GET' });
    await r.body.dump();
    assert.equal(r.statusCode, 200);
    assert.equal(up.seen[before]?.url, '/file%00.txt');
    const bad = m.explain({ url: 'http://svc/admin%00x' });
    assert.equal(bad.outcome, 'invalid-path');
    assert.match(bad.refusal ?? '', /^400: path "\/admin%00x" cannot be normalized/);
    assert.match(String(bad), /refused: 400/);
    assert.equal(m.explain({ url: `http://127.0.0.1:${up.port}/file%00.txt` }).outcome, 'passthrough');
    assert.equal(m.explain({ url: 'http://svc/%61dmin' }).outcome, 'routed');
  });

  test('MERGE_SLASHES merges repeated slashes too; NONE sends the path as given', async () => {
    assert.deepEqual(await send(await mesh('MERGE_SLASHES'), '//admin'), { status: 200, upstream: 'admin', url: '/admin' });
    assert.deepEqual(await send(await mesh('NONE'), '/public/../admin'), { status: 200, upstream: 'other', url: '/public/../admin' });
  });
});
