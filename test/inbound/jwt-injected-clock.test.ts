/**
 * A mesh with an injected clock judges JWTs on the wall clock the docs give it: a clock that reads
 * as Unix time (`new ManualClock(Date.parse(…))`, as docs/telemetry.md suggests for the access
 * log) is Unix time for a token's `exp` too, and one that starts at 0 (`new ManualClock()`) counts
 * from the process's start, as the system clock does. Following the docs made every token
 * "expired" (the JWT check added the process's start time to a Unix-time reading).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createMesh, ManualClock } from '../../src/index.ts';
import { frameworks, raw } from '../helpers/frameworks.ts';

const ISSUER = 'testing@secure.istio.io';

describe('RequestAuthentication with an injected clock', () => {
  for (const [name, start] of [
    ['a ManualClock reading Unix time (Date.now())', () => Date.now()],
    ['a ManualClock from 0', () => 0],
  ] as const) {
    it(`${name}: a token valid for an hour is accepted, and refused as expired once the clock passes its exp`, async () => {
      const { publicKey, privateKey } = await generateKeyPair('RS256');
      const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] });
      const now = Math.floor(Date.now() / 1000);
      const token = await new SignJWT({ iss: ISSUER, sub: 'alice', iat: now, exp: now + 3600 }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey);
      const clock = new ManualClock(start());
      const mesh = await createMesh({
        service: 'httpbin',
        namespace: 'foo',
        clock,
        logger: { warn: () => {} },
        config: [{ apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name: 'jwt', namespace: 'foo' }, spec: { jwtRules: [{ issuer: ISSUER, jwks }] } }],
      });
      const server = await (frameworks[0] as (typeof frameworks)[number]).start(mesh);
      try {
        const ok = await raw(server.port, '/get', { headers: { authorization: `Bearer ${token}` } });
        assert.equal(ok.statusCode, 200, ok.text);
        // Well past exp and Envoy's 60 s of clock skew.
        clock.advance(2 * 3600_000);
        const late = await raw(server.port, '/get', { headers: { authorization: `Bearer ${token}` } });
        assert.deepEqual([late.statusCode, late.text], [401, 'Jwt is expired']);
      } finally {
        await server.close();
        await mesh.close();
      }
    });
  }
});
