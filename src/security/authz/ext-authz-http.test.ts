import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../core/clock.ts';
import { isMeshletError } from '../../core/errors.ts';
import { compileAuthz } from './engine.ts';
import { checkEnvoyExtAuthzGrpc } from './ext-authz-grpc.ts';
import { checkEnvoyExtAuthzHttp, type EnvoyExtAuthzHttpConfig, envoyExtAuthzHttp } from './ext-authz-http.ts';
import { HTTPBIN, policy, request, resourcesOf } from '../../../test/helpers/authz.ts';
import type { AuthzResult, ExtAuthzResponse } from './types.ts';

/** What the authorizer received. */
interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

/**
 * Istio's sample ext-authz HTTP server (samples/extauthz/cmd/extauthz/main.go), ported:
 * `x-ext-authz: allow` → 200, anything else → 403 with the deny body; both answers echo the
 * override header and describe what was received. Paths under /status/<n> answer <n>, /hang never
 * answers, /remove asks to remove a header.
 */
function sampleAuthorizer(seen: Seen[]) {
  return (req: IncomingMessage, res: ServerResponse) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const received = `${req.method} ${req.headers.host}${req.url}, headers: ${JSON.stringify(req.headers)}`;
    const status = /\/status\/(\d+)/.exec(req.url ?? '');
    if (req.url?.includes('/hang')) return; // never answers
    if (req.url?.includes('/big')) {
      res.writeHead(403);
      res.end(Buffer.alloc(2 * 1024 * 1024, 97));
      return;
    }
    if (status !== null) {
      res.writeHead(Number(status[1]), { 'x-ext-authz-check-result': 'status', 'x-other': 'y' });
      res.end(`status ${status[1]}`);
      return;
    }
    res.setHeader('x-ext-authz-additional-header-override', String(req.headers['x-ext-authz-additional-header-override']));
    res.setHeader('x-ext-authz-check-received', received);
    res.setHeader('x-not-forwarded', 'z');
    if (req.headers['x-ext-authz'] === 'allow') {
      res.setHeader('x-ext-authz-check-result', 'allowed');
      if (req.url?.includes('/remove')) res.setHeader('x-envoy-auth-headers-to-remove', 'x-secret, X-Other-Secret');
      res.writeHead(200);
      res.end();
    } else {
      res.setHeader('x-ext-authz-check-result', 'denied');
      res.setHeader('www-authenticate', 'Bearer');
      res.writeHead(403);
      res.end('denied by ext_authz for not found header `x-ext-authz: allow` in the request');
    }
  };
}

// The provider configuration of Istio's TestAuthz_CustomServer (pkg/test/framework/components/authz/kube.go).
const ISTIO_TEST_PROVIDER = {
  headersToUpstreamOnAllow: ['x-ext-authz-*'],
  headersToDownstreamOnDeny: ['x-ext-authz-*'],
  includeRequestHeadersInCheck: ['x-ext-authz'],
  includeAdditionalHeadersInCheck: {
    'x-ext-authz-additional-header-new': 'additional-header-new-value',
    'x-ext-authz-additional-header-override': 'additional-header-override-value',
  },
};

describe('envoyExtAuthzHttp against a real HTTP authorizer', () => {
  const seen: Seen[] = [];
  let server: Server;
  let port = 0;
  before(async () => {
    server = createServer(sampleAuthorizer(seen));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  const provider = (more: Partial<EnvoyExtAuthzHttpConfig> = {}, clock?: ManualClock) =>
    envoyExtAuthzHttp({ service: '127.0.0.1', port, ...ISTIO_TEST_PROVIDER, ...more }, clock === undefined ? {} : { clock });
  const extHeaders = (value: string) => ({ 'x-ext-authz': value, 'x-ext-authz-additional-header-override': 'should-be-override', authorization: 'Bearer t', 'x-other': 'o' });

  it('allowed (Istio TestAuthz_CustomServer /custom allow): the check request and the headers for the app', async () => {
    seen.length = 0;
    const res = await provider()(request({ path: '/custom?q=1', headers: extHeaders('allow') }));
    assert.equal(res.allowed, true);
    const s = seen[0] as Seen;
    assert.deepEqual([s.method, s.url, s.headers.host, s.headers['x-forwarded-host']], ['GET', '/custom?q=1', `127.0.0.1:${port}`, 'httpbin:8000'], 'Host is the authorizer’s (a Host-routing dispatcher must not send the check elsewhere); the request’s is x-forwarded-host');
    assert.equal(s.headers['content-length'], undefined, 'undici sends no content-length on a GET without body (Envoy sends 0)');
    assert.equal(s.headers.authorization, 'Bearer t', 'authorization is always sent');
    assert.equal(s.headers['x-ext-authz'], 'allow', 'includeRequestHeadersInCheck');
    assert.equal(s.headers['x-other'], undefined, 'headers not listed are not sent');
    assert.equal(s.headers['x-ext-authz-additional-header-new'], 'additional-header-new-value');
    assert.equal(s.headers['x-ext-authz-additional-header-override'], 'additional-header-override-value', 'the additional header overwrites the client’s');
    assert.ok(res.allowed);
    const up = res.headersToUpstream ?? {};
    assert.equal(up['x-ext-authz-check-result'], 'allowed');
    assert.equal(up['x-ext-authz-additional-header-override'], 'additional-header-override-value');
    assert.match(up['x-ext-authz-check-received'] ?? '', /additional-header-new-value/);
    assert.doesNotMatch(up['x-ext-authz-check-received'] ?? '', /should-be-override/);
    assert.equal(up['x-not-forwarded'], undefined, 'only headersToUpstreamOnAllow');
    assert.equal(res.headersToDownstream, undefined);
  });

  it('denied (Istio TestAuthz_CustomServer /custom deny): the authorizer’s status, body and listed headers', async () => {
    const res = await provider()(request({ path: '/custom', headers: extHeaders('deny') }));
    assert.equal(res.allowed, false);
    assert.ok(!res.allowed);
    assert.equal(res.status, 403);
    assert.equal(res.body, 'denied by ext_authz for not found header `x-ext-authz: allow` in the request');
    assert.equal(res.headers['x-ext-authz-check-result'], 'denied');
    assert.equal(res.headers['x-ext-authz-additional-header-override'], 'additional-header-override-value');
    assert.equal(res.headers['www-authenticate'], 'Bearer', 'always passed on');
    assert.equal(res.headers['x-not-forwarded'], undefined);
    assert.equal(res.error, undefined);
  });

  it('headersToDownstreamOnDeny unset: every header of the denial but Host and hop-by-hop ones', async () => {
    const res = await envoyExtAuthzHttp({ service: '127.0.0.1', port })(request({ path: '/custom' }));
    assert.ok(!res.allowed);
    assert.equal(res.headers['x-not-forwarded'], 'z');
    assert.equal(res.headers.connection, undefined);
    assert.equal(res.headers['content-length'], undefined);
  });

  it('headersToDownstreamOnAllow and x-envoy-auth-headers-to-remove', async () => {
    const res = await provider({ headersToDownstreamOnAllow: ['x-ext-authz-check-result'] })(request({ path: '/remove', headers: extHeaders('allow') }));
    assert.ok(res.allowed);
    assert.deepEqual(res.headersToDownstream, { 'x-ext-authz-check-result': 'allowed' });
    assert.deepEqual(res.headersToRemove, ['x-secret', 'x-other-secret']);
  });

  it('the method is the request’s; a POST check says content-length: 0, with no body', async () => {
    seen.length = 0;
    await provider()(request({ method: 'POST', path: '/proto.EchoTestService/Echo', headers: { ...extHeaders('allow'), 'content-length': '42', 'content-type': 'application/grpc' } }));
    assert.deepEqual([seen[0]?.method, seen[0]?.headers['content-length'], seen[0]?.headers['content-type']], ['POST', '0', undefined]);
  });

  it('pathPrefix is prepended to the path', async () => {
    seen.length = 0;
    await provider({ pathPrefix: '/check' })(request({ path: '/a/b?c=d', headers: extHeaders('allow') }));
    assert.equal(seen[0]?.url, '/check/a/b?c=d');
  });

  it('the deprecated includeHeadersInCheck is used only without includeRequestHeadersInCheck', async () => {
    seen.length = 0;
    await envoyExtAuthzHttp({ service: '127.0.0.1', port, includeHeadersInCheck: ['x-o*'] })(request({ headers: { 'x-other': 'o' } }));
    assert.equal(seen[0]?.headers['x-other'], 'o');
  });

  const statusRows: [string, Partial<EnvoyExtAuthzHttpConfig>, string, ExtAuthzResponse][] = [
    ['a 5xx is an error: statusOnError defaults to 403, no body', {}, '/status/503', { allowed: false, status: 403, headers: {}, body: '', error: true }],
    ['statusOnError', { statusOnError: '500' }, '/status/500', { allowed: false, status: 500, headers: {}, body: '', error: true }],
    ['failOpen allows on an error', { failOpen: true }, '/status/502', { allowed: true }],
    ['a 204 is not 200: denied with 204', {}, '/status/204', { allowed: false, status: 204, headers: { 'x-ext-authz-check-result': 'status' }, body: '' }],
    ['a denial body over 1 MiB is an error', {}, '/big', { allowed: false, status: 403, headers: {}, body: '', error: true }],
    ['a 401 is passed on', {}, '/status/401', { allowed: false, status: 401, headers: { 'x-ext-authz-check-result': 'status' }, body: 'status 401' }],
  ];
  for (const [name, more, path, want] of statusRows) {
    it(name, async () => assert.deepEqual({ ...(await provider(more)(request({ path }))) }, want));
  }

  it('a timeout is an error (the injected clock, no waiting)', async () => {
    const clock = new ManualClock();
    const pending = provider({ timeout: '2s' }, clock)(request({ path: '/hang' }));
    await new Promise((r) => setTimeout(r, 20)); // the request reaches the authorizer
    clock.advance(1999);
    let settled = false;
    void pending.then(() => {
      settled = true;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, 'not before the timeout');
    clock.advance(1);
    assert.deepEqual({ ...(await pending) }, { allowed: false, status: 403, headers: {}, body: '', error: true });
  });

  it('an authorizer that cannot be reached is an error; failOpen allows', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    assert.deepEqual({ ...(await envoyExtAuthzHttp({ service: '127.0.0.1', port: deadPort })(request())) }, { allowed: false, status: 403, headers: {}, body: '', error: true });
    assert.deepEqual(await envoyExtAuthzHttp({ service: '127.0.0.1', port: deadPort, failOpen: true })(request()), { allowed: true });
  });

  it('through the engine: a CUSTOM policy on /custom, health checks not sent (Istio TestAuthz_CustomServer)', async () => {
    seen.length = 0;
    const yaml = policy('custom-b', 'action: CUSTOM\nprovider: {name: ext-authz-http}\nrules:\n- to: [{operation: {ports: ["8000"], paths: ["/custom"], methods: ["GET"]}}]');
    const e = compileAuthz(resourcesOf(yaml), HTTPBIN, { providers: { 'ext-authz-http': provider() } });
    const allowed = (await e.evaluate(request({ path: '/custom', headers: extHeaders('allow') }))) as AuthzResult;
    assert.equal(allowed.decision, 'allow');
    assert.equal(allowed.headersToUpstream?.['x-ext-authz-check-result'], 'allowed');
    const denied = (await e.evaluate(request({ path: '/custom', headers: extHeaders('deny') }))) as AuthzResult;
    assert.deepEqual([denied.decision, denied.denial?.status, denied.details], ['deny', 403, 'ext_authz_denied']);
    const health = e.evaluate(request({ path: '/health', headers: extHeaders('deny') }));
    assert.ok(!(health instanceof Promise), 'not matched: judged without the authorizer');
    assert.equal(health.decision, 'allow');
    assert.equal(seen.length, 2);
  });
});

describe('envoyExtAuthzHttp configuration, checked as Istio checks it', () => {
  const rows: [string, EnvoyExtAuthzHttpConfig, RegExp | undefined][] = [
    ['valid', { service: 'ext-authz.foo.svc.cluster.local', port: 8000, timeout: '0.5s', statusOnError: '500', pathPrefix: '/check' }, undefined],
    ['namespace/host service', { service: 'foo/ext-authz.foo.svc.cluster.local', port: 8000 }, undefined],
    ['no service', { service: '', port: 8000 }, /service must not be empty/],
    ['port 0', { service: 'a', port: 0 }, /port must be in the range \[1, 65535\], found: 0/],
    ['bad timeout', { service: 'a', port: 1, timeout: 'soon' }, /invalid timeout "soon"/],
    ['unknown statusOnError', { service: 'a', port: 1, statusOnError: '299' }, /unsupported statusOnError "299"/],
    ['pathPrefix without /', { service: 'a', port: 1, pathPrefix: 'check' }, /pathPrefix must begin with "\/"/],
    ['a lone wildcard', { service: 'a', port: 1, headersToUpstreamOnAllow: ['*'] }, /a single wildcard \("\*"\) is not supported.*headersToUpstreamOnAllow/],
    // A misspelt field was ignored and its default used (a 600s timeout, no headers in the check).
    ['a misspelt field', { service: 'a', port: 1, timout: '1s' } as never, /unknown field "timout" \(did you mean "timeout"\?\)/],
    ['a snake_case field', { service: 'a', port: 1, include_request_headers_in_check: ['x-ext-authz'] } as never, /unknown field "include_request_headers_in_check"/],
    ['a misspelt body field', { service: 'a', port: 1, includeRequestBodyInCheck: { maxRequestByte: 10 } } as never, /unknown field "includeRequestBodyInCheck.maxRequestByte" \(did you mean "maxRequestBytes"\?\)/],
  ];
  for (const [name, config, error] of rows) {
    it(name, () => {
      const errs = checkEnvoyExtAuthzHttp(config).join('; ');
      if (error === undefined) assert.equal(errs, '');
      else {
        assert.match(errs, error);
        assert.throws(
          () => envoyExtAuthzHttp(config, { name: 'p' }),
          (e: unknown) => isMeshletError(e, 'MESHLET_ERR_INVALID_ARG') && /extension provider "p" \(envoyExtAuthzHttp\)/.test((e as Error).message),
        );
      }
    });
  }
  it('envoyExtAuthzGrpc: a misspelt field is an error too', () => {
    assert.match(checkEnvoyExtAuthzGrpc({ service: 'a', port: 1, failopen: true } as never).join('; '), /unknown field "failopen" \(did you mean "failOpen"\?\)/);
    assert.deepEqual(checkEnvoyExtAuthzGrpc({ service: 'a', port: 1, timeout: '0.5s', failOpen: true, statusOnError: '503', clearRouteCache: true, includeRequestBodyInCheck: { maxRequestBytes: 10, allowPartialMessage: true, packAsBytes: true } }), []);
  });
  it('unsupported fields are said once, not silently dropped', () => {
    const said: string[] = [];
    envoyExtAuthzHttp({ service: 'a', port: 1, includeRequestBodyInCheck: { maxRequestBytes: 10 }, includeAdditionalHeadersInCheck: { 'x-ip': '%DOWNSTREAM_REMOTE_ADDRESS%' } }, { warn: (m) => said.push(m) });
    assert.equal(said.length, 1);
    assert.match(said[0] ?? '', /substitutions \(%…%\) are not supported/);
  });
});
