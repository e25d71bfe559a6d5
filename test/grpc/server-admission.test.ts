/**
 * A grpc-js server under `mesh.grpc.serverInterceptors()`: every call type reaches its handler
 * inside the call's MeshContext; RequestAuthentication reads the token from `authorization`
 * metadata; AuthorizationPolicy matches paths `/pkg.Service/Method` and method POST; the local
 * rate limit answers with the gRPC status Envoy gives; a denial never reaches the handler; a
 * config change applies to the next call. Keys are made at test time; tokens are signed with
 * jose; real grpc-js clients call a real grpc-js server on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createMesh, type Mesh } from '../../src/index.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { collect, type Echo, grpc, unary } from '../helpers/grpc.ts';
import { md, type MeshGrpcServer, plainClient, startMeshGrpcServer } from '../helpers/grpc-server.ts';
import { localRateLimitFilter } from '../helpers/rate-limit.ts';

const ISSUER = 'testing@secure.istio.io';
const ECHO = '/meshlet.test.Echo';

async function keysAndTokens(): Promise<{ jwks: string; valid: string; expired: string; admin: string }> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  const now = Math.floor(Date.now() / 1000);
  const sign = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey);
  return {
    jwks: JSON.stringify({ keys: [jwk] }),
    valid: await sign({ iss: ISSUER, sub: 'alice', exp: now + 3600, groups: ['users'] }),
    admin: await sign({ iss: ISSUER, sub: 'root', exp: now + 3600, groups: ['admins'] }),
    expired: await sign({ iss: ISSUER, sub: 'alice', exp: now - 120 }),
  };
}

const meta = (name: string) => ({ name, namespace: 'foo' });

function policies(jwks: string): object[] {
  return [
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'RequestAuthentication',
      metadata: meta('jwt'),
      spec: { jwtRules: [{ issuer: ISSUER, jwks, outputClaimToHeaders: [{ header: 'x-jwt-sub', claim: 'sub' }] }] },
    },
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: meta('allow'),
      spec: {
        action: 'ALLOW',
        rules: [
          // Rule 0: any caller with a token.
          { from: [{ source: { requestPrincipals: [`${ISSUER}/*`] } }] },
          // Rule 1: anyone may call Unary (gRPC methods are POSTs).
          { to: [{ operation: { methods: ['POST'], paths: [`${ECHO}/Unary`] } }] },
          // Rule 2: GET never matches a gRPC call.
          { to: [{ operation: { methods: ['GET'], paths: [`${ECHO}/ServerStream`] } }] },
        ],
      },
    },
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: meta('deny-bidi'),
      spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: [`${ECHO}/Bidi`] } }], when: [{ key: 'request.auth.claims[groups]', notValues: ['admins'] }] }] },
    },
  ];
}

describe('gRPC server: the four call types run inside the call’s MeshContext', () => {
  let mesh: Mesh;
  let server: MeshGrpcServer;
  let client: Echo;
  before(async () => {
    mesh = await createMesh({ service: 'echo', namespace: 'foo', config: [] });
    server = await startMeshGrpcServer(mesh);
    client = plainClient(server.port) as Echo;
  });
  after(async () => {
    client.close();
    await server.close();
    await mesh.close();
  });

  it('unary: served; the handler’s deadline is the caller’s (grpc-timeout), in performance.now() time', async () => {
    const t0 = performance.now();
    const r = await unary(client, { text: 'u' }, { deadline: Date.now() + 5000 });
    assert.equal(r.reply?.text, 'u');
    const d = server.seen.at(-1)?.context.deadline ?? 0;
    assert.ok(d > t0 + 4000 && d <= performance.now() + 5000, `deadline ${d - t0} ms after the call started`);
  });

  it('no deadline: Infinity', async () => {
    await unary(client, { text: 'u' });
    assert.equal(server.seen.at(-1)?.context.deadline, Number.POSITIVE_INFINITY);
  });

  it('server streaming: every message, and the context', async () => {
    const r = await collect(client.ServerStream({ text: 's', count: 3 }, new grpc.Metadata(), { deadline: Date.now() + 5000 }));
    assert.deepEqual(r.messages.map((m) => m.text), ['s-0', 's-1', 's-2']);
    assert.ok(Number.isFinite(server.seen.at(-1)?.context.deadline));
  });

  it('client streaming: the handler and its data events run in the context', async () => {
    const reply = await new Promise<{ text: string }>((resolve, reject) => {
      const call = client.ClientStream(new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res as { text: string })));
      for (const t of ['x', 'y']) call.write({ text: t });
      call.end();
    });
    assert.equal(reply.text, 'x,y');
    const seen = server.seen.at(-1);
    assert.ok(Number.isFinite(seen?.context.deadline));
    assert.equal(seen?.later?.deadline, seen?.context.deadline);
  });

  it('bidi: the handler and its data events run in the context', async () => {
    const call = client.Bidi(new grpc.Metadata(), { deadline: Date.now() + 5000 });
    const done = collect(call);
    call.write({ text: '1' });
    call.write({ text: '2' });
    call.end();
    const r = await done;
    assert.deepEqual(r.messages.map((m) => m.text), ['1', '2']);
    const seen = server.seen.at(-1);
    assert.ok(Number.isFinite(seen?.context.deadline));
    assert.equal(seen?.later?.deadline, seen?.context.deadline);
  });

  it('metadata reaches the handler as sent (text and -bin)', async () => {
    const m = md({ 'x-one': 'a' });
    m.set('x-raw-bin', Buffer.from([0, 1, 2]));
    await unary(client, { text: 'm' }, { metadata: m });
    const got = server.seen.at(-1)?.metadata ?? {};
    assert.equal(got['x-one'], 'a');
    assert.deepEqual(got['x-raw-bin'], Buffer.from([0, 1, 2]));
  });
});

describe('gRPC server: JWT from metadata and AuthorizationPolicy by method path', () => {
  let mesh: Mesh;
  let server: MeshGrpcServer;
  let client: Echo;
  let t: Awaited<ReturnType<typeof keysAndTokens>>;
  before(async () => {
    t = await keysAndTokens();
    mesh = await createMesh({ service: 'echo', namespace: 'foo', config: policies(t.jwks), logger: { warn: () => undefined } });
    server = await startMeshGrpcServer(mesh);
    client = plainClient(server.port) as Echo;
  });
  after(async () => {
    client.close();
    await server.close();
    await mesh.close();
  });

  const bearer = (tok: string) => md({ authorization: `Bearer ${tok}` });

  it('a valid token: served, the principal in the handler’s context, the token removed and the claim header added', async () => {
    const before = server.seen.length;
    const r = await collect(client.ServerStream({ text: 'p', count: 1 }, bearer(t.valid)));
    assert.equal(r.status.code, grpc.status.OK);
    assert.equal(server.seen.length, before + 1);
    const seen = server.seen.at(-1);
    assert.equal(seen?.context.requestPrincipal, `${ISSUER}/alice`);
    assert.equal(seen?.metadata.authorization, undefined);
    assert.equal(seen?.metadata['x-jwt-sub'], 'alice');
  });

  const denials: { name: string; call: () => Promise<{ code?: number; details?: string; md?: grpc.Metadata }>; code: number; details: string }[] = [
    {
      name: 'an expired token: UNAUTHENTICATED, Jwt is expired',
      call: async () => {
        const r = await unary(client, { text: 'x' }, { metadata: bearer(t.expired) });
        return { code: r.error?.code, details: r.error?.details, md: r.error?.metadata };
      },
      code: grpc.status.UNAUTHENTICATED,
      details: 'Jwt is expired',
    },
    {
      name: 'no token, a method no rule opens: PERMISSION_DENIED, RBAC: access denied',
      call: async () => {
        const r = await collect(client.ServerStream({ text: 'x', count: 1 }));
        return { code: r.status.code, details: r.status.details };
      },
      code: grpc.status.PERMISSION_DENIED,
      details: 'RBAC: access denied',
    },
    {
      name: 'a valid token on Bidi without the admins group: PERMISSION_DENIED by the DENY policy',
      call: async () => {
        const call = client.Bidi(bearer(t.valid));
        const done = collect(call);
        call.end();
        const r = await done;
        return { code: r.status.code, details: r.status.details };
      },
      code: grpc.status.PERMISSION_DENIED,
      details: 'RBAC: access denied',
    },
  ];
  for (const row of denials) {
    it(`${row.name}; the handler never runs`, async () => {
      const before = server.seen.length;
      const r = await row.call();
      assert.equal(r.code, row.code);
      assert.equal(r.details, row.details);
      assert.equal(server.seen.length, before);
    });
  }

  it('the expired token’s denial carries www-authenticate as trailing metadata', async () => {
    const r = await unary(client, { text: 'x' }, { metadata: bearer(t.expired) });
    assert.match(String(r.error?.metadata.get('www-authenticate')[0]), /^Bearer realm=".*\/meshlet\.test\.Echo\/Unary", error="invalid_token"$/);
  });

  it('no token, Unary (POST to its path is allowed): served with no principal', async () => {
    const r = await unary(client, { text: 'open' });
    assert.equal(r.reply?.text, 'open');
    assert.equal(server.seen.at(-1)?.context.requestPrincipal, undefined);
  });

  it('an admin token on Bidi: served', async () => {
    const call = client.Bidi(bearer(t.admin));
    const done = collect(call);
    call.write({ text: 'b' });
    call.end();
    const r = await done;
    assert.equal(r.status.code, grpc.status.OK);
    assert.deepEqual(r.messages.map((m) => m.text), ['b']);
    assert.equal(server.seen.at(-1)?.context.requestPrincipal, `${ISSUER}/root`);
  });

  it('client streaming with a valid token: served, its messages in order', async () => {
    const reply = await new Promise<{ text: string }>((resolve, reject) => {
      const call = client.ClientStream(bearer(t.valid), {}, (err, res) => (err ? reject(err) : resolve(res as { text: string })));
      for (const x of ['a', 'b', 'c']) call.write({ text: x });
      call.end();
    });
    assert.equal(reply.text, 'a,b,c');
  });
});

describe('gRPC server: forwardOriginalToken and a token in other metadata (fromHeaders)', () => {
  it('forwardOriginalToken: true keeps the token in the handler’s metadata; fromHeaders reads x-token', async () => {
    const t = await keysAndTokens();
    const rule = (extra: object) => ({ issuer: ISSUER, jwks: t.jwks, ...extra });
    const config = [{ apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: meta('jwt'), spec: { jwtRules: [rule({ forwardOriginalToken: true, fromHeaders: [{ name: 'x-token' }, { name: 'authorization', prefix: 'Bearer ' }] })] } }];
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', config, logger: { warn: () => undefined } });
    const server = await startMeshGrpcServer(mesh);
    const client = plainClient(server.port) as Echo;
    try {
      assert.equal((await unary(client, { text: 'a' }, { metadata: md({ authorization: `Bearer ${t.valid}` }) })).error, undefined);
      assert.equal(server.seen.at(-1)?.metadata.authorization, `Bearer ${t.valid}`);
      assert.equal((await unary(client, { text: 'b' }, { metadata: md({ 'x-token': t.admin }) })).error, undefined);
      assert.equal(server.seen.at(-1)?.context.requestPrincipal, `${ISSUER}/root`);
      assert.equal((await unary(client, { text: 'c' }, { metadata: md({ 'x-token': t.expired }) })).error?.code, grpc.status.UNAUTHENTICATED);
    } finally {
      client.close();
      await server.close();
      await mesh.close();
    }
  });
});

/** Istio's local rate limit task for this workload: 2 tokens per 60 s; `asResourceExhausted` sets `rate_limited_as_resource_exhausted`, `xHeaders` `enable_x_ratelimit_headers`. */
function rateLimit(asResourceExhausted: boolean, xHeaders = false): object {
  return localRateLimitFilter(meta('ratelimit'), 2, '60s', {
    response_headers_to_add: [{ append: false, header: { key: 'x-local-rate-limit', value: 'true' } }],
    ...(asResourceExhausted ? { rate_limited_as_resource_exhausted: true } : {}),
    ...(xHeaders ? { enable_x_ratelimit_headers: 'DRAFT_VERSION_03' } : {}),
  });
}

describe('gRPC server: the local rate limit', () => {
  for (const [asRe, code] of [
    [false, grpc.status.UNAVAILABLE],
    [true, grpc.status.RESOURCE_EXHAUSTED],
  ] as const) {
    it(`2 served, the third ${grpc.status[code]} local_rate_limited with the configured header; one more after 30 s`, async () => {
      const clock = new ManualClock();
      const mesh = await createMesh({ service: 'echo', namespace: 'foo', config: [rateLimit(asRe)], clock, logger: { warn: () => undefined } });
      const server = await startMeshGrpcServer(mesh);
      const client = plainClient(server.port) as Echo;
      try {
        const codes: number[] = [];
        for (let i = 0; i < 3; i++) codes.push((await unary(client, { text: 'r' })).error?.code ?? 0);
        assert.deepEqual(codes, [0, 0, code]);
        const limited = await unary(client, { text: 'r' });
        assert.equal(limited.error?.details, 'local_rate_limited');
        assert.equal(limited.error?.metadata.get('x-local-rate-limit')[0], 'true');
        assert.equal(server.seen.length, 2);
        clock.advance(30_000);
        assert.equal((await unary(client, { text: 'r' })).error, undefined);
        assert.equal((await unary(client, { text: 'r' })).error?.code, code);
      } finally {
        client.close();
        await server.close();
        await mesh.close();
      }
    });
  }
});

describe('gRPC server: headers the phases add to an admitted call’s response', () => {
  it('x-ratelimit-* (enable_x_ratelimit_headers) reach the caller: with a trailers-only error status, in the response metadata, with the denial', async () => {
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', config: [rateLimit(false, true)], clock: new ManualClock(), logger: { warn: () => undefined } });
    const server = await startMeshGrpcServer(mesh, 'mesh', { Unary: (_call, cb) => cb(Object.assign(new Error('no'), { code: grpc.status.NOT_FOUND, details: 'no' })) });
    const client = plainClient(server.port) as Echo;
    try {
      // The handler fails trailers-only: the headers go with its status.
      const failed = await unary(client, { text: 'h' });
      assert.equal(failed.error?.code, grpc.status.NOT_FOUND);
      assert.deepEqual([failed.error?.metadata.get('x-ratelimit-limit')[0], failed.error?.metadata.get('x-ratelimit-remaining')[0]], ['2', '1']);
      const head = await new Promise<grpc.Metadata>((resolve) => {
        const call = client.ServerStream({ text: 'h', count: 1 });
        call.on('metadata', resolve);
        call.on('data', () => undefined);
      });
      assert.deepEqual([head.get('x-ratelimit-limit')[0], head.get('x-ratelimit-remaining')[0]], ['2', '0']);
      const limited = await unary(client, { text: 'h' });
      assert.equal(limited.error?.details, 'local_rate_limited');
      assert.equal(limited.error?.metadata.get('x-ratelimit-remaining')[0], '0');
    } finally {
      client.close();
      await server.close();
      await mesh.close();
    }
  });
});

describe('gRPC server: config changes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-grpc-server-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const deny = (method: string) => JSON.stringify({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta('deny'), spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: [`${ECHO}/${method}`] } }] }] } });

  it('apply to the next call', async () => {
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, deny('Nothing'));
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', config: file, watch: false, logger: { warn: () => undefined } });
    const server = await startMeshGrpcServer(mesh);
    const client = plainClient(server.port) as Echo;
    try {
      assert.equal((await unary(client, { text: 'a' })).error, undefined);
      writeFileSync(file, deny('Unary'));
      assert.equal(await mesh.reload(), true);
      assert.equal((await unary(client, { text: 'a' })).error?.code, grpc.status.PERMISSION_DENIED);
      writeFileSync(file, deny('ServerStream'));
      assert.equal(await mesh.reload(), true);
      assert.equal((await unary(client, { text: 'a' })).error, undefined);
      assert.equal((await collect(client.ServerStream({ text: 'a', count: 1 }))).status.code, grpc.status.PERMISSION_DENIED);
    } finally {
      client.close();
      await server.close();
      await mesh.close();
    }
  });
});
