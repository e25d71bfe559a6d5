/**
 * JWT time checks (`exp`, `nbf`) read the wall clock as it is at each request: a host whose clock
 * NTP steps after the process started (a VM that booted with a stale clock) checks tokens against
 * the corrected time, as Envoy's jwt_authn reads its time source's system time per request.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Headers } from '../../core/handler.ts';
import { jwksOf, makeKey, mint, ra, validated } from './fixtures.test.ts';
import type { JwtOutcome } from './outcome.ts';
import { JwtRuntime } from './runtime.ts';

const ISS = 'test-issuer-1@istio.io';
const rsa = makeKey('RS256', 'rsa-1');

it('with the system clock, an NTP step after the process started counts at once (forward: expired; back: not yet valid)', async () => {
  const rt = new JwtRuntime(); // the system clock
  const realNow = Date.now;
  try {
    const auth = rt.compile(validated([ra('p', 'foo', { jwtRules: [{ issuer: ISS, jwks: jwksOf(rsa) }] })]), { namespace: 'foo', labels: { app: 'httpbin' } });
    const check = async (token: string): Promise<JwtOutcome> => {
      const headers = Object.assign(Object.create(null) as Headers, { authorization: `Bearer ${token}` });
      return auth.authenticate({ method: 'GET', scheme: 'http', authority: 'httpbin.foo:8000', path: '/', headers });
    };
    const wall = Math.floor(realNow() / 1000);
    const token = mint(rsa, { iss: ISS, sub: 'sub-1', exp: wall + 3600 }); // valid for the next hour
    assert.equal((await check(token)).ok, true);
    Date.now = () => realNow() + 86_400_000; // stepped forward a day
    const expired = await check(token);
    assert.equal(expired.ok ? 'passed' : expired.body, 'Jwt is expired');
    Date.now = () => realNow() - 3_600_000; // stepped back an hour
    const notYet = await check(mint(rsa, { iss: ISS, sub: 'sub-1', nbf: wall - 1800, exp: wall + 3600 }));
    assert.equal(notYet.ok ? 'passed' : notYet.body, 'Jwt not yet valid');
  } finally {
    Date.now = realNow;
    await rt.close();
  }
});
