import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importJWK, SignJWT } from 'jose';
import { TOKEN_AUDIENCE, TOKEN_ISSUER, TokenAuthority } from '../../../src/control-plane-server/auth.ts';
import type { SharedValues } from '../../../src/control-plane-server/store.ts';
import { api, startTestServer, type TestServer, tempDir, watch } from './helpers.ts';

const dirs: (() => void)[] = [];
after(() => {
  for (const c of dirs) c();
});
function dataDir(): string {
  const t = tempDir('meshlet-auth-');
  dirs.push(t.cleanup);
  return t.dir;
}

class MapShared implements SharedValues {
  readonly values = new Map<string, string>();
  async putIfAbsent(key: string, value: string): Promise<string> {
    if (!this.values.has(key)) this.values.set(key, value);
    return this.values.get(key)!;
  }
}

describe('TokenAuthority', () => {
  it('creates signing-key.jwk (private Ed25519 JWK, mode 0600) once and reuses it', async () => {
    const dir = dataDir();
    const a = await TokenAuthority.open(dir);
    const file = join(dir, 'signing-key.jwk');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const jwk = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(jwk.kty, 'OKP');
    assert.equal(jwk.crv, 'Ed25519');
    assert.equal(typeof jwk.d, 'string');
    const b = await TokenAuthority.open(dir);
    assert.equal(b.keyId, a.keyId);
    const token = await a.mintToken({ service: 'reviews', namespace: 'default' });
    const v = await b.verifyToken(token);
    assert.ok(v.ok && v.identity.role === 'workload');
    // The labels map is a null-prototype object (its keys come from the token).
    assert.deepEqual({ ...v.identity, labels: { ...v.identity.labels } }, { role: 'workload', service: 'reviews', namespace: 'default', serviceAccount: 'default', subject: 'default/reviews', labels: {} });
  });

  it('a token proves a service account (claim sa, default "default"); a bad one is refused at mint and at verify', async () => {
    const a = await TokenAuthority.open(dataDir());
    const token = await a.mintToken({ service: 'reviews', namespace: 'prod', serviceAccount: 'bookinfo-reviews' });
    assert.equal(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sa, 'bookinfo-reviews');
    const v = await a.verifyToken(token);
    assert.ok(v.ok && v.identity.role === 'workload');
    assert.equal(v.identity.serviceAccount, 'bookinfo-reviews');
    for (const bad of ['', 'Not_A_Name', 'a/b']) {
      await assert.rejects(a.mintToken({ service: 'reviews', namespace: 'prod', serviceAccount: bad }), /token serviceAccount must be a DNS-1123 name/);
    }
    // A token without the claim (minted before it existed) is the default account.
    const dir = dataDir();
    const b = await TokenAuthority.open(dir);
    const jwk = JSON.parse(readFileSync(join(dir, 'signing-key.jwk'), 'utf8'));
    const key = await importJWK(jwk, 'EdDSA');
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: b.keyId }).setIssuer(TOKEN_ISSUER).setAudience(TOKEN_AUDIENCE).setSubject('prod/reviews').setIssuedAt().setExpirationTime('1h').sign(key);
    const old = await b.verifyToken(await sign({ role: 'workload', svc: 'reviews', ns: 'prod' }));
    assert.ok(old.ok && old.identity.role === 'workload' && old.identity.serviceAccount === 'default');
    const forged = await b.verifyToken(await sign({ role: 'workload', svc: 'reviews', ns: 'prod', sa: '../admin' }));
    assert.deepEqual(forged, { ok: false, reason: 'wrong-claims', message: 'token sa claim (service account) is not a DNS-1123 name' });
  });

  it('a token may carry the labels it proves; bad labels, or an app label that is not the service, are refused at mint', async () => {
    const a = await TokenAuthority.open(dataDir());
    const token = await a.mintToken({ service: 'reviews', namespace: 'default', labels: { version: 'v2' } });
    const v = await a.verifyToken(token);
    assert.ok(v.ok);
    assert.deepEqual({ ...(v.identity as { labels: object }).labels }, { version: 'v2' });
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    assert.deepEqual(claims.labels, { version: 'v2' });
    const refused: [Record<string, string>, RegExp][] = [
      [{ 'bad key!': 'x' }, /invalid label key "bad key!"/],
      [{ version: 'not valid!' }, /invalid label value "not valid!"/],
      [{ app: 'ratings' }, /token label app must be the service "reviews"/],
    ];
    for (const [labels, message] of refused) await assert.rejects(a.mintToken({ service: 'reviews', namespace: 'default', labels }), message);
    assert.deepEqual(
      { ...((await a.verifyToken(await a.mintToken({ service: 'reviews', namespace: 'default', labels: { app: 'reviews' } }))) as { identity: { labels: object } }).identity.labels },
      { app: 'reviews' },
    );
  });

  it('mints claims iss, aud, sub, svc, ns, role and a one-year default expiry', async () => {
    const a = await TokenAuthority.open(dataDir());
    const [, payload] = (await a.mintToken({ service: 'ratings', namespace: 'prod' })).split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    assert.equal(claims.iss, TOKEN_ISSUER);
    assert.equal(claims.aud, TOKEN_AUDIENCE);
    assert.equal(claims.sub, 'prod/ratings');
    assert.equal(claims.svc, 'ratings');
    assert.equal(claims.ns, 'prod');
    assert.equal(claims.role, 'workload');
    const year = claims.exp - claims.iat;
    assert.ok(year >= 365 * 86400 && year <= 366 * 86400, `ttl ${year}`);
    const admin = await a.verifyToken(await a.mintToken({ admin: true }, { ttlSeconds: 60 }));
    assert.deepEqual(admin, { ok: true, identity: { role: 'admin', subject: 'admin' } });
  });

  it('refuses expired, foreign and malformed tokens, saying why', async () => {
    const dir = dataDir();
    const a = await TokenAuthority.open(dir);
    const jwk = JSON.parse(readFileSync(join(dir, 'signing-key.jwk'), 'utf8'));
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ role: 'workload', svc: 'reviews', ns: 'default' })
      .setProtectedHeader({ alg: 'EdDSA' })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setIssuedAt(now - 100)
      .setExpirationTime(now - 10)
      .sign(await importJWK(jwk, 'EdDSA'));
    assert.equal(((await a.verifyToken(expired)) as { reason: string }).reason, 'expired');
    const other = await TokenAuthority.open(dataDir());
    const foreign = await other.mintToken({ admin: true });
    assert.equal(((await a.verifyToken(foreign)) as { reason: string }).reason, 'bad-signature');
    assert.equal(((await a.verifyToken('not-a-token')) as { reason: string }).reason, 'malformed');
    await assert.rejects(a.mintToken({ service: 'Bad Name', namespace: 'default' }), /DNS-1123/);
  });

  it('a token verified once is refused once it expires (verified tokens are remembered only until exp)', async (t) => {
    const a = await TokenAuthority.open(dataDir());
    // Token expiry is wall-clock time (JWT exp): the test moves Date instead of sleeping past it.
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const token = await a.mintToken({ service: 'reviews', namespace: 'default' }, { ttlSeconds: 1 });
    const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp as number;
    assert.equal((await a.verifyToken(token)).ok, true);
    assert.equal((await a.verifyToken(token)).ok, true, 'second use (remembered)');
    t.mock.timers.setTime(exp * 1000 - 1);
    assert.equal((await a.verifyToken(token)).ok, true, 'still valid 1 ms before exp');
    t.mock.timers.setTime(exp * 1000 + 50);
    assert.equal(((await a.verifyToken(token)) as { reason: string }).reason, 'expired');
    // A tampered copy of a remembered token is a different string: verified afresh, and refused.
    const good = await a.mintToken({ service: 'reviews', namespace: 'default' });
    assert.equal((await a.verifyToken(good)).ok, true);
    const [h, p, sig] = good.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, svc: 'ratings' })).toString('base64url')}.${sig}`;
    assert.equal(((await a.verifyToken(forged)) as { reason: string }).reason, 'bad-signature');
  });

  it('replicas sharing SharedValues agree on one key, written to each data dir', async () => {
    const shared = new MapShared();
    const dirA = dataDir();
    const dirB = dataDir();
    const a = await TokenAuthority.open(dirA, shared);
    const b = await TokenAuthority.open(dirB, shared);
    assert.equal(a.keyId, b.keyId);
    assert.equal(readFileSync(join(dirA, 'signing-key.jwk'), 'utf8').trim(), readFileSync(join(dirB, 'signing-key.jwk'), 'utf8').trim());
    assert.equal(statSync(join(dirB, 'signing-key.jwk')).mode & 0o777, 0o600);
    const v = await b.verifyToken(await a.mintToken({ service: 'reviews', namespace: 'default' }));
    assert.equal(v.ok, true);
  });
});

describe('authentication over HTTP', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  it('no token → 401 with WWW-Authenticate: Bearer and an ErrorBody saying what is missing', async () => {
    const r = await api(s.url, 'GET', '/status');
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), /^Bearer /);
    assert.equal(r.body.error.code, 'UNAUTHENTICATED');
    assert.match(r.body.error.message, /no token/);
  });

  it('a token signed by another key → 401 naming the signature', async () => {
    const other = await TokenAuthority.open(dataDir());
    const r = await api(s.url, 'GET', '/status', { token: await other.mintToken({ admin: true }) });
    assert.equal(r.status, 401);
    assert.match(r.body.error.message, /signature/);
  });

  it('an expired token → 401 "token expired"', async () => {
    const jwk = JSON.parse(readFileSync(join(s.dataDir, 'signing-key.jwk'), 'utf8'));
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ role: 'admin' })
      .setProtectedHeader({ alg: 'EdDSA' })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setExpirationTime(now - 5)
      .sign(await importJWK(jwk, 'EdDSA'));
    const r = await api(s.url, 'GET', '/status', { token });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.message, 'token expired');
  });

  it('a workload token may read neither /status (every namespace’s peers, NACK texts, file paths) nor the config API (403)', async () => {
    const token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const status = await api(s.url, 'GET', '/status', { token });
    assert.equal(status.status, 403);
    assert.equal(status.body.error.code, 'FORBIDDEN');
    assert.match(status.body.error.message, /the status needs an admin or viewer token/);
    assert.equal(status.body.summary, undefined);
    assert.equal((await api(s.url, 'GET', '/status', { token: s.admin })).status, 200);
    const r = await api(s.url, 'GET', '/v1/resources', { token });
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'FORBIDDEN');
    assert.match(r.body.error.message, /the config API needs an admin or viewer token/);
    assert.equal((await api(s.url, 'GET', '/v1/resources', { token: s.admin })).status, 200);
  });

  it('watching as another service or namespace → 403; as itself → 200', async () => {
    const token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const r = await api(s.url, 'GET', '/v1/watch?service=ratings&namespace=default', { token });
    assert.equal(r.status, 403);
    assert.match(r.body.error.message, /token is for default\/reviews, not default\/ratings/);
    assert.equal((await api(s.url, 'GET', '/v1/watch?service=reviews&namespace=prod', { token })).status, 403);
    const w = await watch(s.url, 'service=reviews&namespace=default', { token });
    assert.equal(w.status, 200);
    w.close();
  });

  it('registering as another app label → 403', async () => {
    const token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const r = await api(s.url, 'POST', '/v1/workloads', { token, body: { address: '10.0.0.1', ports: { http: 9080 }, labels: { app: 'ratings' } } });
    assert.equal(r.status, 403);
    assert.match(r.body.error.message, /labels\.app is "ratings"/);
  });

  it('/healthz needs no token', async () => {
    const r = await api(s.url, 'GET', '/healthz');
    assert.equal(r.status, 200);
  });
});

describe('insecure mode', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer(undefined, { insecure: true });
  });
  after(() => s.close());

  it('warns loudly at start and accepts requests without a token (identity from query and body)', async () => {
    assert.ok(s.logs.some((l) => /INSECURE/.test(l)), s.logs.join('\n'));
    const w = await watch(s.url, 'service=reviews&namespace=default');
    assert.equal(w.status, 200);
    assert.equal((await w.next('hello')).event, 'hello');
    const reg = await api(s.url, 'POST', '/v1/workloads', { body: { service: 'ratings', namespace: 'default', address: '10.0.0.9', ports: { http: 9080 } } });
    assert.equal(reg.status, 200, JSON.stringify(reg.body));
    assert.equal(reg.body.workload.spec.labels.app, 'ratings');
    assert.equal((await api(s.url, 'GET', '/v1/resources')).status, 200);
    w.close();
  });

  it('still refuses a bad token when one is sent', async () => {
    const r = await api(s.url, 'GET', '/status', { token: 'garbage' });
    assert.equal(r.status, 401);
  });
});
