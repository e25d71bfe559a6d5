/**
 * Remote keys: fetching, sharing a fetch, caching for 5 minutes, refreshing on an unknown kid
 * with a cooldown, timeouts on the injected clock, failing closed, keeping the last good keys,
 * revoking the tokens of a removed key, the address guard. A real HTTP server on 127.0.0.1
 * serves the keys; time moves only when the test says so.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ManualClock } from '../../core/clock.ts';
import type { Headers } from '../../core/handler.ts';
import type { JWTRule } from '../../config/types/security.ts';
import type { JwtAuthenticator } from './authenticator.ts';
import type { JwtOutcome } from './outcome.ts';
import { blockedAddressReason } from './fetch.ts';
import { type JwksServer, jwksOf, makeKey, mint, ra, startJwksServer, validated } from './fixtures.test.ts';
import { JwtRuntime, type JwtRuntimeOptions } from './runtime.ts';
import { MAX_CACHED_TOKEN_CHARS, TokenCache } from './token-cache.ts';
import { parseJwt } from './token.ts';

const NOW = 1_700_000_000;
const ISS = 'https://issuer.example';
const k1 = makeKey('RS256', 'k1');
const k2 = makeKey('ES256', 'k2');
const token = (key = k1, sub = 'alice') => mint(key, { iss: ISS, sub, exp: NOW + 30 * 24 * 3600 });

const servers: JwksServer[] = [];
const runtimes: JwtRuntime[] = [];
after(async () => {
  await Promise.all(runtimes.map((r) => r.close()));
  await Promise.all(servers.map((s) => s.close()));
});

async function setup(rule: (url: string) => JWTRule, options: JwtRuntimeOptions = {}, routes: Parameters<typeof startJwksServer>[0] = { '/jwks': { body: jwksOf(k1) } }) {
  const server = await startJwksServer(routes);
  servers.push(server);
  const clock = new ManualClock(0);
  const runtime = new JwtRuntime({ clock, epochMs: NOW * 1000, ...options });
  runtimes.push(runtime);
  const compile = (r: JWTRule = rule(server.url)) => runtime.compile(validated([ra('p', 'foo', { jwtRules: [r] })]), { namespace: 'foo', labels: {} });
  const auth = compile();
  const call = (a: JwtAuthenticator, t?: string): JwtOutcome | Promise<JwtOutcome> =>
    a.authenticate({ method: 'GET', scheme: 'http', authority: 'h', path: '/', headers: Object.assign(Object.create(null) as Headers, t === undefined ? {} : { authorization: `Bearer ${t}` }) });
  const hits = (path = '/jwks') => server.hits.get(path) ?? 0;
  return { server, clock, runtime, auth, compile, call, hits };
}

const ok = (o: JwtOutcome) => (o.ok ? `ok ${o.principal ?? '-'}` : `${o.httpStatus} ${o.body}`);
const byUri = (url: string): JWTRule => ({ issuer: ISS, jwksUri: `${url}/jwks` });

describe('fetching remote keys', () => {
  it('the first token fetches; concurrent requests share that fetch; requests without a token never wait', async () => {
    const s = await setup(byUri, {}, { '/jwks': { body: jwksOf(k1), hold: true } });
    const pending = [0, 1, 2, 3, 4].map((i) => s.call(s.auth, token(k1, `u${i}`)));
    assert.ok(pending.every((p) => p instanceof Promise));
    const noToken = s.call(s.auth);
    assert.ok(!(noToken instanceof Promise), 'a request without a token is answered synchronously while the fetch hangs');
    assert.equal(ok(noToken as JwtOutcome), 'ok -');
    await waitFor(() => s.server.held === 1);
    s.server.release();
    assert.deepEqual((await Promise.all(pending)).map(ok), [0, 1, 2, 3, 4].map((i) => `ok ${ISS}/u${i}`));
    assert.equal(s.hits(), 1, 'one fetch for five requests');
  });

  it('keys are fresh for 5 minutes; then the next token refreshes them in the background', async () => {
    const s = await setup(byUri);
    assert.equal(ok(await s.call(s.auth, token(k1, 'a'))), `ok ${ISS}/a`);
    s.clock.advance(299_999);
    assert.equal(ok(await s.call(s.auth, token(k1, 'b'))), `ok ${ISS}/b`);
    await s.runtime.whenIdle();
    assert.equal(s.hits(), 1, 'still fresh');
    s.clock.advance(1);
    const r = s.call(s.auth, token(k1, 'a'));
    assert.ok(!(r instanceof Promise), 'a cached token is answered with the keys in hand while they refresh');
    assert.equal(ok(r as JwtOutcome), `ok ${ISS}/a`);
    await s.runtime.whenIdle();
    assert.equal(s.hits(), 2, 'refreshed once');
  });

  it('a key removed from the JWKS revokes the tokens it verified (cached ones too) at the next refresh', async () => {
    const s = await setup(byUri, {}, { '/jwks': { body: jwksOf(k1, k2) } });
    const t = token(k1, 'cached');
    assert.equal(ok(await s.call(s.auth, t)), `ok ${ISS}/cached`);
    assert.ok(!(s.call(s.auth, t) instanceof Promise), 'cached');
    s.server.routes.set('/jwks', { body: jwksOf(k2) });
    s.clock.advance(300_000);
    assert.equal(ok(await s.call(s.auth, t)), `ok ${ISS}/cached`, 'still valid until the refresh lands');
    await s.runtime.whenIdle();
    assert.equal(ok(await s.call(s.auth, t)), "401 Jwks doesn't have key to match kid or alg from Jwt");
    assert.equal(ok(await s.call(s.auth, token(k2, 'new'))), `ok ${ISS}/new`, 'the remaining key still works');
  });

  it('an unknown kid refreshes at once (a rotation is picked up), then at most once per cooldown', async () => {
    const s = await setup(byUri);
    assert.equal(ok(await s.call(s.auth, token(k1))), `ok ${ISS}/alice`);
    s.clock.advance(30_000);
    s.server.routes.set('/jwks', { body: jwksOf(k1, k2) });
    assert.equal(ok(await s.call(s.auth, token(k2, 'rotated'))), `ok ${ISS}/rotated`);
    assert.equal(s.hits(), 2);
    const made = (kid: string) => token({ ...k1, kid }, kid);
    assert.equal(ok(await s.call(s.auth, made('nope-1'))), "401 Jwks doesn't have key to match kid or alg from Jwt");
    assert.equal(ok(await s.call(s.auth, made('nope-2'))), "401 Jwks doesn't have key to match kid or alg from Jwt");
    assert.equal(s.hits(), 2, 'made-up kids within the cooldown fetch nothing');
    s.clock.advance(30_000);
    assert.equal(ok(await s.call(s.auth, made('nope-3'))), "401 Jwks doesn't have key to match kid or alg from Jwt");
    assert.equal(s.hits(), 3, 'after the cooldown one more fetch');
  });

  it('the timeout runs on the injected clock (Istio jwt_test timeout: 10ms against a slow server → 401)', async () => {
    const s = await setup((url) => ({ ...byUri(url), timeout: '10ms' }), {}, { '/jwks': { body: jwksOf(k1), hold: true } });
    const r = s.call(s.auth, token());
    await waitFor(() => s.server.held === 1);
    s.clock.advance(9);
    s.clock.advance(1);
    assert.equal(ok(await r), '401 Jwks remote fetch is failed');
    assert.match(String(s.runtime.sources[0]), /timed out after 10 ms/);
  });

  it('close() ends a key fetch in flight rather than waiting for the key server (its request fails closed)', { timeout: 20_000 }, async () => {
    // The fetch's own timeout (5 s, on the manual clock) never runs out here: before the fix, close() waited for a server that never answers.
    const s = await setup(byUri, {}, { '/jwks': { body: jwksOf(k1), hold: true } });
    const r = s.call(s.auth, token());
    await waitFor(() => s.server.held === 1);
    await s.runtime.close();
    assert.equal(ok(await r), '401 Jwks remote fetch is failed');
    s.server.release();
  });

  it('a JWKS server that fails: tokens fail closed, no new fetch before the retry interval, then recovery', async () => {
    const s = await setup(byUri, {}, { '/jwks': { status: 503, body: 'down' } });
    assert.equal(ok(await s.call(s.auth, token())), '401 Jwks remote fetch is failed');
    assert.match(String(s.runtime.sources[0]), /status 503/);
    assert.equal(ok(await s.call(s.auth, token())), '401 Jwks remote fetch is failed');
    assert.equal(s.hits(), 1, 'failing fast inside the retry interval');
    assert.equal(ok(await s.call(s.auth)), 'ok -', 'requests without a token are not affected');
    s.server.routes.set('/jwks', { body: jwksOf(k1) });
    s.clock.advance(1000);
    assert.equal(ok(await s.call(s.auth, token())), `ok ${ISS}/alice`);
    assert.equal(s.hits(), 2);
  });

  it('the last good keys stay in use while refreshes fail, for at most 7 days after the last good fetch', async () => {
    const s = await setup(byUri);
    assert.equal(ok(await s.call(s.auth, token(k1, 'a'))), `ok ${ISS}/a`);
    s.server.routes.set('/jwks', { status: 500, body: '' });
    s.clock.advance(300_000);
    assert.equal(ok(await s.call(s.auth, token(k1, 'b'))), `ok ${ISS}/b`);
    await s.runtime.whenIdle();
    assert.equal(ok(await s.call(s.auth, token(k1, 'c'))), `ok ${ISS}/c`, 'the failed refresh left the keys in place');
    await s.runtime.whenIdle();
    s.clock.advance(7 * 24 * 3600 * 1000);
    assert.equal(ok(await s.call(s.auth, token(k1, 'a'))), '401 Jwks remote fetch is failed', 'stale keys dropped; a new fetch fails');
  });

  it('bodies that are not a usable JWKS fail the fetch', async () => {
    const rows: { body: string; status?: number; why: RegExp }[] = [
      { body: 'not json', why: /invalid JSON/ },
      { body: '{"keys":[]}', why: /no usable key/ },
      { body: JSON.stringify({ keys: [{ kty: 'RSA', e: 'AQAB' }] }), why: /no usable key.*\[n\] or \[e\] is missing/ },
      { body: 'x'.repeat(1024 * 1024 + 1), why: /at most 1048576|longer than 1048576/ },
    ];
    for (const r of rows) {
      const s = await setup(byUri, {}, { '/jwks': { body: r.body } });
      assert.equal(ok(await s.call(s.auth, token())), '401 Jwks remote fetch is failed');
      assert.match(String(s.runtime.sources[0]), r.why);
    }
  });

  it('redirects are followed (as istiod’s client does)', async () => {
    const s = await setup((url) => ({ issuer: ISS, jwksUri: `${url}/old` }), {}, { '/jwks': { body: jwksOf(k1) } });
    s.server.routes.set('/old', { status: 302, headers: { location: `${s.server.url}/jwks` } });
    assert.equal(ok(await s.call(s.auth, token())), `ok ${ISS}/alice`);
  });

  it('OpenID discovery: a failure is retried with discovery again', async () => {
    const s = await setup((url) => ({ issuer: `${url}/idp/` }), {}, {});
    const t = mint(k1, { iss: `${s.server.url}/idp/`, sub: 'd', exp: NOW + 60 });
    assert.equal(ok(await s.call(s.auth, t)), '401 Jwks remote fetch is failed');
    assert.match(String(s.runtime.sources[0]), /OpenID discovery at http:\/\/127\.0\.0\.1:\d+\/idp\/\.well-known\/openid-configuration failed: status 404/);
    s.server.routes.set('/idp/.well-known/openid-configuration', { body: JSON.stringify({ jwks_uri: `${s.server.url}/jwks` }) });
    s.server.routes.set('/jwks', { body: jwksOf(k1) });
    s.clock.advance(1000);
    assert.equal(ok(await s.call(s.auth, t)), `ok ${s.server.url}/idp//d`);
  });

  it('keys survive a recompile that keeps the jwksUri; a source no rule uses is let go', async () => {
    const s = await setup(byUri);
    assert.equal(ok(await s.call(s.auth, token())), `ok ${ISS}/alice`);
    const again = s.compile();
    assert.equal(ok(await s.call(again, token(k1, 'other'))), `ok ${ISS}/other`);
    assert.equal(s.hits(), 1, 'no new fetch');
    s.compile({ issuer: ISS, jwksUri: `${s.server.url}/jwks?v=2` });
    assert.deepEqual(
      s.runtime.sources.map((x) => x.key),
      [`uri:${s.server.url}/jwks?v=2`],
    );
  });
});

describe('the address guard (istiod blocks link-local and cloud metadata addresses)', () => {
  const rows: { address: string; blocked: boolean }[] = [
    { address: '169.254.169.254', blocked: true },
    { address: '169.254.0.1', blocked: true },
    { address: '224.0.0.251', blocked: true },
    { address: '100.100.100.200', blocked: true },
    { address: 'fe80::1', blocked: true },
    { address: '[fe80::1]', blocked: true },
    { address: 'ff02::1', blocked: true },
    { address: 'fd00:ec2::254', blocked: true },
    { address: '::ffff:169.254.169.254', blocked: true },
    { address: '127.0.0.1', blocked: false },
    { address: '10.0.0.1', blocked: false },
    { address: '100.100.100.201', blocked: false },
    { address: 'fd00::1', blocked: false },
    { address: 'issuer.example.com', blocked: false },
  ];
  for (const r of rows) it(`${r.address} ${r.blocked ? 'is' : 'is not'} blocked`, () => assert.equal(blockedAddressReason(r.address) !== undefined, r.blocked));

  it('a jwksUri on the metadata address fails closed without connecting', async () => {
    const s = await setup(() => ({ issuer: ISS, jwksUri: 'http://169.254.169.254/latest/jwks' }));
    assert.equal(ok(await s.call(s.auth, token())), '401 Jwks remote fetch is failed');
    assert.match(String(s.runtime.sources[0]), /169\.254\.169\.254 refused: link-local and cloud metadata/);
  });
});

describe('the verified-token cache', () => {
  const jwt = (() => {
    const p = parseJwt(token());
    assert.ok(p.ok);
    return p.jwt;
  })();
  it('is a bounded LRU', () => {
    const c = new TokenCache(2);
    c.add('a', jwt);
    c.add('b', jwt);
    assert.ok(c.get('a'), 'a is now the most recent');
    c.add('c', jwt);
    assert.equal(c.get('b'), undefined, 'b was the least recently used');
    assert.ok(c.get('a') && c.get('c'));
    assert.equal(c.size, 2);
  });
  it('two tokens with the same tail never hit each other’s entry', () => {
    const c = new TokenCache(10);
    const tail = 'x'.repeat(32);
    const a = `${'A'.repeat(70)}${tail}`;
    const b = `${'B'.repeat(70)}${tail}`;
    c.add(a, jwt);
    assert.equal(c.get(b), undefined);
    c.add(b, jwt);
    assert.equal(c.get(a), undefined, 'b took the slot');
    assert.equal(c.get(b)?.token, b);
    c.delete(a);
    assert.equal(c.get(b)?.token, b, 'deleting a does not delete b');
  });
  it('does not keep tokens longer than 4 KiB, and size 0 turns it off', () => {
    const c = new TokenCache(10);
    c.add('x'.repeat(MAX_CACHED_TOKEN_CHARS + 1), jwt);
    assert.equal(c.size, 0);
    const off = new TokenCache(0);
    off.add('a', jwt);
    assert.equal(off.get('a'), undefined);
  });
  it('an expired token is refused even when cached, and dropped', async () => {
    const s = await setup(byUri);
    const t = mint(k1, { iss: ISS, sub: 'short', exp: NOW + 100 });
    assert.equal(ok(await s.call(s.auth, t)), `ok ${ISS}/short`);
    assert.equal(s.runtime.cache.size, 1);
    s.clock.advance((100 + 61) * 1000);
    await s.runtime.whenIdle();
    assert.equal(ok(await s.call(s.auth, t)), '401 Jwt is expired');
    assert.equal(s.runtime.cache.size, 0);
  });
});

async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(cond(), 'condition reached');
}
