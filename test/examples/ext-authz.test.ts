/**
 * examples/ext-authz as a user runs it: the script in its own process (an Express app behind the
 * mesh and the gRPC authorizer it asks), curl as the client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { curl, type ExampleProcess, startExample } from '../helpers/example-process.ts';
import { skipWithout } from '../helpers/tools.ts';

describe('examples/ext-authz (CUSTOM with a gRPC authorizer, curl as the client)', { skip: skipWithout('curl') }, () => {
  let example: ExampleProcess;
  let port = 0;
  before(async () => {
    example = await startExample('examples/ext-authz/server.ts');
    port = example.port;
  });
  after(() => example.stop());

  it('a path no CUSTOM rule matches: 200, the authorizer not asked', () => {
    assert.equal(curl(port, '/ip').status, 200);
  });

  it("without x-ext-authz: allow, the authorizer's 403 and body", () => {
    assert.deepEqual(curl(port, '/headers'), { status: 403, body: 'denied by ext_authz for not found header `x-ext-authz: allow` in the request' });
  });

  it('with x-ext-authz: allow, 200 and the header the authorizer added', () => {
    const r = curl(port, '/headers', '-H', 'x-ext-authz: allow');
    assert.equal(r.status, 200, r.body);
    const body = JSON.parse(r.body) as { headers: Record<string, string>; meshlet: { authz: { decision: string; provider: string } } };
    assert.equal(body.headers['x-ext-authz-check-result'], 'allowed');
    assert.equal(body.headers['x-ext-authz-check-received'], `GET 127.0.0.1:${port}/headers`);
    assert.deepEqual([body.meshlet.authz.decision, body.meshlet.authz.provider], ['allow', 'sample-ext-authz-grpc']);
  });
});
