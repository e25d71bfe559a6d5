/**
 * examples/server as a user runs it: the script in its own process, curl as the client, Istio's
 * own demo tokens (test/fixtures/istio/jwt, from Istio's security/tools/jwt/samples).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { curl, type ExampleProcess, startExample } from '../helpers/example-process.ts';
import { skipWithout } from '../helpers/tools.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const DEMO = readFileSync(`${ROOT}test/fixtures/istio/jwt/demo.jwt`, 'utf8').trim();
const GROUPS = readFileSync(`${ROOT}test/fixtures/istio/jwt/groups-scope.jwt`, 'utf8').trim();

describe('examples/server (Express behind the mesh, curl as the client)', { skip: skipWithout('curl') }, () => {
  let example: ExampleProcess;
  let port = 0;
  before(async () => {
    example = await startExample('examples/server/server.ts');
    port = example.port;
  });
  after(() => example.stop());

  it('an open path: 200 without a token', () => {
    assert.equal(curl(port, '/ip').status, 200);
  });

  it('no token: 403 RBAC: access denied', () => {
    assert.deepEqual(curl(port, '/headers'), { status: 403, body: 'RBAC: access denied' });
  });

  it("Istio's demo token: 200, the principal and the rule that allowed it, the token not forwarded, the claim header set", () => {
    const r = curl(port, '/headers', '-H', `Authorization: Bearer ${DEMO}`);
    assert.equal(r.status, 200, r.body);
    const body = JSON.parse(r.body) as { headers: Record<string, string>; meshlet: { requestPrincipal: string; authz: { policy: string; rule: number } } };
    assert.equal(body.meshlet.requestPrincipal, 'testing@secure.istio.io/testing@secure.istio.io');
    assert.deepEqual([body.meshlet.authz.policy, body.meshlet.authz.rule], ['foo/require-jwt', 0]);
    assert.equal(body.headers.authorization, undefined);
    assert.equal(body.headers['x-jwt-sub'], 'testing@secure.istio.io');
  });

  it("Istio's groups-scope token is valid too", () => {
    assert.equal(curl(port, '/headers', '-H', `Authorization: Bearer ${GROUPS}`).status, 200);
  });

  it('a malformed token: 401 with Envoy’s text and WWW-Authenticate', () => {
    const r = spawnSync('curl', ['-s', '-i', '-H', 'Authorization: Bearer bad', `http://127.0.0.1:${port}/headers`], { encoding: 'utf8' });
    assert.match(r.stdout, /^HTTP\/1\.1 401/);
    assert.match(r.stdout, /www-authenticate: Bearer realm="http:\/\/127\.0\.0\.1:\d+\/headers", error="invalid_token"/i);
    assert.match(r.stdout, /Jwt is not in the form of Header\.Payload\.Signature with two dots and 3 sections$/);
  });

  it('/ip/../admin is judged as /admin: 403 even with a token', () => {
    assert.equal(curl(port, '/ip/../admin', '-H', `Authorization: Bearer ${DEMO}`).status, 403);
  });
});
