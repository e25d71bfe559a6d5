/**
 * Calls to methods a grpc-js server does not serve are judged like every other call, as an Istio
 * sidecar judges every request before the app: a server bound with `mesh.grpc.bind` (or given to
 * `mesh.grpc.judgeUnserved`) runs the mesh's admission phases for them, so an AuthorizationPolicy
 * DENY answers PERMISSION_DENIED, a bad JWT UNAUTHENTICATED, a local rate limit UNAVAILABLE, STRICT
 * on a listener the mesh did not make UNAVAILABLE; an admitted call ends UNIMPLEMENTED with grpc-js's own text; and the
 * destination's metrics count them (grpc_response_status 7 / 12). Without it, grpc-js answers
 * UNIMPLEMENTED before any interceptor (pinned below, so the seam's purpose stays visible).
 * Real grpc-js clients and servers on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createMesh, type Mesh } from '../../src/index.ts';
import { sdk } from '../helpers/metric-reader.ts';
import { EchoClient, grpc } from '../helpers/grpc.ts';
import { type BindKind, md, type MeshGrpcServer, OWN_CONNECTIONS, startMeshGrpcServer } from '../helpers/grpc-server.ts';
import { localRateLimitFilter } from '../helpers/rate-limit.ts';

const ISSUER = 'testing@secure.istio.io';
const MISSING = '/meshlet.test.Other/Missing';
const ECHO_MISSING = '/meshlet.test.Echo/Missing';
const meta = (name: string) => ({ name, namespace: 'foo' });
const identity = (b: Buffer): Buffer => b;

interface Outcome {
  readonly code: number;
  readonly details: string;
}

/** A unary call to `path` (any path: the client does not check it). */
function callUnary(client: grpc.Client, path: string, metadata = new grpc.Metadata()): Promise<Outcome> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, identity, identity, Buffer.from('x'), metadata, {}, (err) => resolve({ code: err?.code ?? 0, details: err?.details ?? '' }));
  });
}

/** A bidi call to `path`: writes two messages, half-closes, waits for the status. */
function callBidi(client: grpc.Client, path: string, metadata = new grpc.Metadata()): Promise<Outcome> {
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest(path, identity, identity, metadata, {});
    call.on('data', () => undefined);
    call.on('error', () => undefined);
    call.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details }));
    call.write(Buffer.from('a'));
    call.write(Buffer.from('b'));
    call.end();
  });
}

function authz(action: 'ALLOW' | 'DENY', paths: string[]): object {
  return { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta(`p-${action.toLowerCase()}`), spec: { action, rules: [{ to: [{ operation: { paths } }] }] } };
}

describe('gRPC server: calls to methods the server does not serve are judged first', () => {
  let jwks = '';
  let foreignToken = '';
  before(async () => {
    const mine = await generateKeyPair('RS256');
    const other = await generateKeyPair('RS256');
    jwks = JSON.stringify({ keys: [{ ...(await exportJWK(mine.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] });
    const now = Math.floor(Date.now() / 1000);
    // Signed with a key that is not in the JWKS.
    foreignToken = await new SignJWT({ iss: ISSUER, sub: 'alice', exp: now + 3600 }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(other.privateKey);
  });

  const open: { close(): Promise<void> | void }[] = [];
  after(async () => {
    for (const o of open.reverse()) await o.close();
  });

  async function serve(config: object[], bind: BindKind = 'mesh', judge = true) {
    const metrics = sdk();
    const mesh: Mesh = await createMesh({
      service: 'echo',
      namespace: 'foo',
      config,
      logger: { warn: () => undefined },
      telemetry: { metrics: { meterProvider: metrics.provider } },
    });
    open.push({ close: () => metrics.shutdown() }, mesh);
    const server: MeshGrpcServer = await startMeshGrpcServer(mesh, bind);
    open.push(server);
    if (bind !== 'mesh' && judge) assert.equal(mesh.grpc.judgeUnserved(server.server), server.server);
    const client = new EchoClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure(), OWN_CONNECTIONS);
    open.push({ close: () => client.close() });
    /** istio_requests_total{reporter="destination"} as `path grpc_response_status flags` → count. */
    const destination = async (): Promise<Record<string, number>> => {
      const out: Record<string, number> = {};
      for (const p of await metrics.points('istio_requests_total')) {
        if (p.attributes['reporter'] !== 'destination') continue;
        const k = `${p.attributes['response_code']} ${p.attributes['grpc_response_status']} ${p.attributes['response_flags']}`;
        out[k] = (out[k] ?? 0) + p.value;
      }
      return out;
    };
    return { mesh, server, client, destination };
  }

  const unimplemented = (path: string): Outcome => ({ code: grpc.status.UNIMPLEMENTED, details: `The server does not implement the method ${path}` });
  const rbac: Outcome = { code: grpc.status.PERMISSION_DENIED, details: 'RBAC: access denied' };

  const rows: [name: string, config: () => object[], metadata: () => grpc.Metadata, path: string, expected: Outcome, metric: string][] = [
    ['no policy: UNIMPLEMENTED, with grpc-js’s text', () => [], () => new grpc.Metadata(), MISSING, unimplemented(MISSING), '200 12 -'],
    ['DENY paths naming the unserved method: PERMISSION_DENIED', () => [authz('DENY', [MISSING])], () => new grpc.Metadata(), MISSING, rbac, '200 7 -'],
    ['DENY another path: admitted, UNIMPLEMENTED', () => [authz('DENY', ['/meshlet.test.Echo/Unary'])], () => new grpc.Metadata(), MISSING, unimplemented(MISSING), '200 12 -'],
    ['ALLOW of another method only (default deny): PERMISSION_DENIED', () => [authz('ALLOW', ['/meshlet.test.Echo/Unary'])], () => new grpc.Metadata(), ECHO_MISSING, rbac, '200 7 -'],
    ['ALLOW prefix /meshlet.test.Echo/*: admitted, UNIMPLEMENTED', () => [authz('ALLOW', ['/meshlet.test.Echo/*'])], () => new grpc.Metadata(), ECHO_MISSING, unimplemented(ECHO_MISSING), '200 12 -'],
    [
      'RequestAuthentication, a JWT signed with a key not in the JWKS: UNAUTHENTICATED',
      () => [{ apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: meta('jwt'), spec: { jwtRules: [{ issuer: ISSUER, jwks }] } }],
      () => md({ authorization: `Bearer ${foreignToken}` }),
      MISSING,
      { code: grpc.status.UNAUTHENTICATED, details: 'Jwt verification fails' },
      '200 16 -',
    ],
  ];
  for (const [name, config, metadata, path, expected, metric] of rows) {
    it(`${name} (unary and bidi; the destination metric counts both)`, async () => {
      const { client, server, destination } = await serve(config());
      assert.deepEqual(await callUnary(client, path, metadata()), expected);
      assert.deepEqual(await callBidi(client, path, metadata()), expected);
      assert.equal(server.seen.length, 0);
      assert.deepEqual(await destination(), { [metric]: 2 });
    });
  }

  it('a local rate limit (1 token per 60 s) applies to unserved methods: the first call UNIMPLEMENTED, the next UNAVAILABLE local_rate_limited (RL)', async () => {
    const limit = localRateLimitFilter(meta('ratelimit'), 1, '60s');
    const { client, destination } = await serve([limit]);
    assert.deepEqual(await callUnary(client, MISSING), unimplemented(MISSING));
    assert.deepEqual(await callUnary(client, MISSING), { code: grpc.status.UNAVAILABLE, details: 'local_rate_limited' });
    assert.deepEqual(await destination(), { '200 12 -': 1, '200 14 RL': 1 });
  });

  it('a served method is still served, and one the server registers later is served by its handler', async () => {
    const { client, server } = await serve([authz('DENY', [MISSING])]);
    const echo = client as unknown as { Unary(r: object, cb: (e: grpc.ServiceError | null, r?: { server: string }) => void): void };
    const reply = await new Promise<{ server: string } | undefined>((r) => echo.Unary({ text: 'u' }, (_e, res) => r(res)));
    assert.equal(reply?.server, 'mesh-server');
    assert.equal(server.seen.length, 1);
    assert.deepEqual(await callUnary(client, '/meshlet.test.Late/Call'), unimplemented('/meshlet.test.Late/Call'));
    server.server.register('/meshlet.test.Late/Call', (_call: unknown, cb: (e: null, v: Buffer) => void) => cb(null, Buffer.from('late')), identity, identity, 'unary');
    assert.deepEqual(await callUnary(client, '/meshlet.test.Late/Call'), { code: 0, details: '' });
  });

  it('bindAsync with mesh.grpc.judgeUnserved(server): judged (DENY → PERMISSION_DENIED); idempotent', async () => {
    const { mesh, client, server, destination } = await serve([authz('DENY', [MISSING])], 'insecure');
    mesh.grpc.judgeUnserved(server.server);
    assert.deepEqual(await callUnary(client, MISSING), rbac);
    assert.deepEqual(await callUnary(client, ECHO_MISSING), unimplemented(ECHO_MISSING));
    assert.deepEqual(await destination(), { '200 7 -': 1, '200 12 -': 1 });
  });

  it('PeerAuthentication STRICT on a listener the mesh did not make: a plaintext call to an unserved method is refused (UNAVAILABLE)', async () => {
    const strict = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: meta('strict'), spec: { mtls: { mode: 'STRICT' } } };
    const { client, destination } = await serve([strict], 'insecure');
    const r = await callUnary(client, MISSING);
    assert.equal(r.code, grpc.status.UNAVAILABLE);
    assert.match(r.details, /PeerAuthentication/);
    // Not counted: a sidecar refuses a plaintext connection to a STRICT port in its listener (no
    // filter chain matches), before any HTTP filter, so Istio reports no request metric for it.
    assert.deepEqual(await destination(), {});
  });

  it('without it (bindAsync, no judgeUnserved) grpc-js answers UNIMPLEMENTED before any interceptor: the DENY never applies, nothing is counted', async () => {
    const { client, destination } = await serve([authz('DENY', [MISSING])], 'insecure', false);
    assert.deepEqual(await callUnary(client, MISSING), unimplemented(MISSING));
    assert.deepEqual(await destination(), {});
  });

  it('mesh.grpc.judgeUnserved refuses what is not a server', async () => {
    const mesh = await createMesh({ service: 'echo', config: [] });
    open.push(mesh);
    assert.throws(() => mesh.grpc.judgeUnserved(null as never), /mesh\.grpc\.judgeUnserved\(server\): server must be a grpc-js Server/);
  });
});
