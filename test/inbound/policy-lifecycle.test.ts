/**
 * Server-side policies over time and under failure, through a real server: a config change
 * applies to the next request, a rejected config leaves the last good policies enforcing, and a
 * JWKS endpoint that is down or hangs fails tokens closed while requests without a token go on.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import { createMesh } from '../../src/index.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { listen, raw } from '../helpers/frameworks.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-policy-lifecycle-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const deny = (path: string) =>
  JSON.stringify({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny', namespace: 'foo' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: [path] } }] }] } });

describe('config changes', () => {
  it('apply to the next request; a rejected config leaves the last good policies enforcing', async () => {
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, deny('/nothing'));
    const rejected: string[] = [];
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', config: file, watch: false, logger: { warn: (m) => rejected.push(m) } });
    const server = mesh.createServer((_req, res) => res.end('ok'));
    const port = await listen(server);
    try {
      assert.equal((await raw(port, '/admin')).statusCode, 200);
      writeFileSync(file, deny('/admin'));
      assert.equal(await mesh.reload(), true);
      assert.equal((await raw(port, '/admin')).statusCode, 403);
      // Invalid: an unknown action. Refused as a whole; the DENY keeps enforcing.
      writeFileSync(file, deny('/other').replace('"DENY"', '"REJECT"'));
      assert.equal(await mesh.reload(), false);
      assert.match(rejected.join('\n'), /new config rejected/);
      assert.equal((await raw(port, '/admin')).statusCode, 403);
      assert.equal((await raw(port, '/other')).statusCode, 200);
      writeFileSync(file, deny('/other'));
      assert.equal(await mesh.reload(), true);
      assert.equal((await raw(port, '/admin')).statusCode, 200);
      assert.equal((await raw(port, '/other')).statusCode, 403);
    } finally {
      await mesh.close();
    }
  });
});

async function token(): Promise<string> {
  const { privateKey } = await generateKeyPair('RS256');
  return new SignJWT({ iss: 'https://issuer.test', sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey);
}

function ra(jwksUri: string, timeout?: string) {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: { name: 'jwt', namespace: 'foo' },
    spec: { jwtRules: [{ issuer: 'https://issuer.test', jwksUri, ...(timeout ? { timeout } : {}) }] },
  };
}

describe('a JWKS endpoint that fails', () => {
  it('down (connection refused): a token is refused 401 "Jwks remote fetch is failed"; a request without one is served', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    const dead = await listen(probe);
    await new Promise<void>((r) => probe.close(() => r()));
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', config: [ra(`http://127.0.0.1:${dead}/jwks`)], logger: { warn: () => {} } });
    const server = mesh.createServer((_req, res) => res.end('ok'));
    const port = await listen(server);
    try {
      const r = await raw(port, '/x', { headers: { authorization: `Bearer ${await token()}` } });
      assert.equal(r.statusCode, 401);
      assert.equal(r.text, 'Jwks remote fetch is failed');
      const plain = await raw(port, '/x');
      assert.deepEqual([plain.statusCode, plain.text], [200, 'ok']);
    } finally {
      await mesh.close();
    }
  });

  it('hanging: the rule’s timeout (on the mesh clock) refuses the token; requests without a token never wait', async () => {
    const hung: Server = createServer(() => {
      /* never answers */
    });
    let asked = 0;
    hung.on('request', () => asked++);
    const jwksPort = await listen(hung);
    const clock = new ManualClock();
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', config: [ra(`http://127.0.0.1:${jwksPort}/jwks`, '2s')], clock, logger: { warn: () => {} } });
    const server = mesh.createServer((_req, res) => res.end('ok'));
    const port = await listen(server);
    try {
      const pending = raw(port, '/x', { headers: { authorization: `Bearer ${await token()}` } });
      while (asked === 0) await new Promise((r) => setImmediate(r));
      // While the key fetch hangs, a request without a token is served.
      assert.equal((await raw(port, '/y')).statusCode, 200);
      clock.advance(2000);
      const r = await pending;
      assert.deepEqual([r.statusCode, r.text], [401, 'Jwks remote fetch is failed']);
    } finally {
      await mesh.close();
      hung.closeAllConnections();
      await new Promise<void>((r) => hung.close(() => r()));
    }
  });
});
