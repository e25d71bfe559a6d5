/**
 * VirtualService `corsPolicy`, as istiod translates it (`TranslateCORSPolicy`) and Envoy's CORS
 * filter on the calling side applies it, through `mesh.fetch` and `undici.request` on
 * `mesh.dispatcher` against a real upstream:
 *
 * - Istio's own integration test (`tests/integration/pilot/common/routing.go`, "cors"): a preflight
 *   answered by the mesh with the policy's headers; a GET from the allowed origin gets
 *   `Access-Control-Allow-Origin`; a GET without a matching origin gets none;
 * - `*` methods and headers echo what the preflight asked for; credentials; expose headers;
 *   prefix, regex and `*` origins; the deprecated `allowOrigin`;
 * - a preflight from an origin not allowed goes upstream (FORWARD, the default) or is answered
 *   without `Access-Control-Allow-Origin` (`unmatchedPreflights: IGNORE`);
 * - CORS headers win over the route's own response header operations, and are on the mesh's own
 *   answers (no cluster) too; `%RESPONSE_CODE_DETAILS%` of a preflight is `cors_response`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { capture, telemetry, until } from '../helpers/access-log.ts';
import { serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const HOST = 'echo.default.svc.cluster.local';
const quiet = { warn: () => undefined };

describe('VirtualService corsPolicy', () => {
  let up: Upstream;
  const meshes: Mesh[] = [];
  let hits = 0;

  before(async () => {
    up = await startUpstream('echo', (req, res) => {
      hits++;
      res.setHeader('access-control-allow-origin', 'from-upstream');
      res.end(`${req.method} ${req.url}`);
    });
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await up.close();
  });

  async function meshWith(corsPolicy: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<Mesh> {
    const m = await createMesh({ service: 'web', logger: quiet, config: [serviceEntry('echo', HOST, 80, [{ port: up.port }]), virtualService('echo', [HOST], [{ corsPolicy, route: [{ destination: { host: HOST } }], ...extra }])] as never });
    meshes.push(m);
    return m;
  }

  async function send(m: Mesh, method: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string; upstream: boolean }> {
    const before = hits;
    const r = await request(`http://${HOST}/x`, { method: method as 'GET', headers, dispatcher: m.dispatcher });
    const body = await r.body.text();
    return { status: r.statusCode, headers: r.headers, body, upstream: hits > before };
  }

  const pick = (h: Record<string, string | string[] | undefined>) => Object.fromEntries(Object.entries(h).filter(([k]) => k.startsWith('access-control-')));

  describe("Istio's integration test (routing.go \"cors\")", () => {
    let m: Mesh;
    before(async () => {
      m = await meshWith({ allowOrigins: [{ exact: 'cors.com' }], allowMethods: ['POST', 'GET'], allowCredentials: false, allowHeaders: ['X-Foo-Bar', 'X-Foo-Baz'], maxAge: '24h' });
    });

    it('preflight: 200 from the mesh with the policy’s headers (the upstream never sees it)', async () => {
      const r = await send(m, 'OPTIONS', { origin: 'cors.com', 'access-control-request-method': 'DELETE' });
      assert.equal(r.status, 200);
      assert.equal(r.upstream, false);
      assert.equal(r.body, '');
      assert.deepEqual(pick(r.headers), { 'access-control-allow-origin': 'cors.com', 'access-control-allow-methods': 'POST,GET', 'access-control-allow-headers': 'X-Foo-Bar,X-Foo-Baz', 'access-control-max-age': '86400' });
    });

    it('get: the upstream’s answer, Access-Control-Allow-Origin the caller’s origin (over the upstream’s)', async () => {
      const r = await send(m, 'GET', { origin: 'cors.com' });
      assert.equal(r.status, 200);
      assert.equal(r.upstream, true);
      assert.deepEqual(pick(r.headers), { 'access-control-allow-origin': 'cors.com' });
    });

    it('get no origin match: the upstream’s headers untouched', async () => {
      assert.deepEqual(pick((await send(m, 'GET', {})).headers), { 'access-control-allow-origin': 'from-upstream' });
      assert.deepEqual(pick((await send(m, 'GET', { origin: 'evil.com' })).headers), { 'access-control-allow-origin': 'from-upstream' });
    });

    it('mesh.fetch (undici’s fetch through the mesh) gets the same preflight answer', async () => {
      const before = hits;
      const r = await m.fetch(`http://${HOST}/x`, { method: 'OPTIONS', headers: { origin: 'cors.com', 'access-control-request-method': 'POST' } });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('access-control-allow-origin'), 'cors.com');
      assert.equal(await r.text(), '');
      assert.equal(hits, before);
    });

    it('OPTIONS without Access-Control-Request-Method is not a preflight: it goes upstream and gets the origin', async () => {
      const r = await send(m, 'OPTIONS', { origin: 'cors.com' });
      assert.equal(r.upstream, true);
      assert.equal(r.body, 'OPTIONS /x');
      assert.equal(r.headers['access-control-allow-origin'], 'cors.com');
    });
  });

  it('`*` methods and headers echo what the preflight asked; credentials and expose headers', async () => {
    const m = await meshWith({ allowOrigins: [{ prefix: 'https://' }], allowMethods: ['*'], allowHeaders: ['*'], exposeHeaders: ['x-total', 'x-page'], allowCredentials: true });
    const pre = await send(m, 'OPTIONS', { origin: 'https://app.example', 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'x-a, x-b' });
    assert.deepEqual(pick(pre.headers), { 'access-control-allow-origin': 'https://app.example', 'access-control-allow-credentials': 'true', 'access-control-allow-methods': 'PATCH', 'access-control-allow-headers': 'x-a, x-b' });
    const get = await send(m, 'GET', { origin: 'https://app.example' });
    assert.deepEqual(pick(get.headers), { 'access-control-allow-origin': 'https://app.example', 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'x-total,x-page' });
    assert.deepEqual(pick((await send(m, 'GET', { origin: 'http://app.example' })).headers), { 'access-control-allow-origin': 'from-upstream' });
  });

  it('origins: regex (full match), `*` allows every origin, the deprecated allowOrigin is exact', async () => {
    const re = await meshWith({ allowOrigins: [{ regex: 'https://[a-z]+\\.example\\.com' }] });
    assert.equal((await send(re, 'GET', { origin: 'https://shop.example.com' })).headers['access-control-allow-origin'], 'https://shop.example.com');
    assert.equal((await send(re, 'GET', { origin: 'https://shop.example.com.evil' })).headers['access-control-allow-origin'], 'from-upstream');
    const any = await meshWith({ allowOrigins: [{ exact: '*' }] });
    assert.equal((await send(any, 'GET', { origin: 'https://whoever.example' })).headers['access-control-allow-origin'], 'https://whoever.example');
    const old = await meshWith({ allowOrigin: ['https://old.example'] });
    assert.equal((await send(old, 'GET', { origin: 'https://old.example' })).headers['access-control-allow-origin'], 'https://old.example');
    assert.equal((await send(old, 'GET', { origin: 'https://old.example.x' })).headers['access-control-allow-origin'], 'from-upstream');
  });

  it('a preflight from an origin not allowed: upstream by default (FORWARD); with IGNORE, 200 from the mesh without Allow-Origin', async () => {
    const forward = await meshWith({ allowOrigins: [{ exact: 'https://a.example' }], allowMethods: ['GET'] });
    const f = await send(forward, 'OPTIONS', { origin: 'https://b.example', 'access-control-request-method': 'GET' });
    assert.equal(f.upstream, true);
    assert.equal(f.body, 'OPTIONS /x');
    const ignore = await meshWith({ allowOrigins: [{ exact: 'https://a.example' }], allowMethods: ['GET'], unmatchedPreflights: 'IGNORE' });
    const i = await send(ignore, 'OPTIONS', { origin: 'https://b.example', 'access-control-request-method': 'GET' });
    assert.equal(i.upstream, false);
    assert.equal(i.status, 200);
    assert.deepEqual(pick(i.headers), { 'access-control-allow-methods': 'GET' });
  });

  it('the CORS headers are set after the route’s own response header operations', async () => {
    const m = await meshWith({ allowOrigins: [{ exact: 'https://a.example' }] }, { headers: { response: { set: { 'access-control-allow-origin': 'set-by-route', 'x-route': 'yes' } } } });
    const r = await send(m, 'GET', { origin: 'https://a.example' });
    assert.equal(r.headers['access-control-allow-origin'], 'https://a.example');
    assert.equal(r.headers['x-route'], 'yes');
    assert.equal((await send(m, 'GET', {})).headers['access-control-allow-origin'], 'set-by-route');
  });

  it('a route without corsPolicy leaves preflights to the upstream', async () => {
    const m = await createMesh({ service: 'web', logger: quiet, config: [serviceEntry('echo', HOST, 80, [{ port: up.port }])] as never });
    meshes.push(m);
    const r = await send(m, 'OPTIONS', { origin: 'cors.com', 'access-control-request-method': 'GET' });
    assert.equal(r.upstream, true);
    assert.equal(r.headers['access-control-allow-origin'], 'from-upstream');
  });

  it('the access log says cors_response for an answered preflight, via_upstream for the rest', async () => {
    const log = capture();
    const m = await createMesh({
      service: 'web',
      logger: log.logger,
      extensionProviders: [{ name: 'details', envoyFileAccessLog: { logFormat: { text: '%REQ(:METHOD)% %RESPONSE_CODE% %RESPONSE_CODE_DETAILS%' } } }],
      config: [serviceEntry('echo', HOST, 80, [{ port: up.port }]), virtualService('echo', [HOST], [{ corsPolicy: { allowOrigins: [{ exact: 'cors.com' }] }, route: [{ destination: { host: HOST } }] }]), telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'details' }] }] })] as never,
    });
    meshes.push(m);
    await send(m, 'OPTIONS', { origin: 'cors.com', 'access-control-request-method': 'GET' });
    await send(m, 'GET', { origin: 'cors.com' });
    await until(() => log.lines().length >= 2, 'two access-log lines');
    assert.deepEqual(log.lines(), ['OPTIONS 200 cors_response', 'GET 200 via_upstream']);
  });
});
