import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import * as protocol from '../../../src/control-plane/protocol.ts';
import { TokenAuthority } from '../../../src/control-plane-server/auth.ts';
import { VIEWER_MAY } from '../../../src/control-plane-server/viewer-gate.ts';
import { api, reviewsVs, SERVICES_YAML, startTestServer, type TestServer, tempDir } from './helpers.ts';

/**
 * Every route of the control plane × {admin, viewer, workload}, through the real HTTP server.
 * `none` is the router's "no such endpoint" 404; any (method, path) not in ROUTES must be `none`
 * for admin and workload tokens and 403 for a viewer — so a route added without a row here fails.
 */
type Outcome = 'none' | `${number}`;
interface Row {
  readonly admin: Outcome;
  readonly viewer: Outcome;
  readonly workload: Outcome;
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;
const VS = '/v1/resources/VirtualService/default/reviews';
const RECORD = '/v1/workloads/default/reviews-1';

/** The paths requested, by protocol.ts constant (each constant must have at least one). */
const PATHS: Record<string, readonly string[]> = {
  HEALTH_PATH: ['/healthz'],
  METRICS_PATH: ['/metrics'],
  STATUS_PATH: ['/status'],
  WATCH_PATH: ['/v1/watch?service=reviews&namespace=default'],
  ACK_PATH: ['/v1/ack'],
  REPORT_PATH: ['/v1/report'],
  CERTIFICATES_PATH: ['/v1/certificates'],
  CA_PATH: ['/v1/ca'],
  CA_ROTATE_PATH: ['/v1/ca/rotate'],
  WORKLOADS_PATH: ['/v1/workloads', '/v1/workloads/', RECORD, `${RECORD}/lease`, `${RECORD}/health`, '/v1/workloads/default'],
  RESOURCES_PATH: ['/v1/resources', '/v1/resources/', VS, '/v1/resources/VirtualService', '/v1/resources/VirtualService/default/reviews/x'],
};
const OTHER_PATHS = ['/', '/v1', '/v1/nothing', '/v1/status', '/v1/ca/other'];

const all = (o: Outcome): Row => ({ admin: o, viewer: o, workload: o });
/** The decisions: method and path → what each token gets. Bodies are `{"x":1}` (a change nobody may make). */
const ROUTES: Record<string, Row> = {
  ...Object.fromEntries(METHODS.map((m) => [`${m} /healthz`, all('200')])),
  ...Object.fromEntries(METHODS.map((m) => [`${m} /metrics`, all(m === 'GET' || m === 'HEAD' ? '200' : '405')])),
  'GET /status': { admin: '200', viewer: '200', workload: '403' },
  'GET /v1/watch?service=reviews&namespace=default': { admin: '200', viewer: '403', workload: '200' },
  'POST /v1/ack': { admin: '400', viewer: '403', workload: '400' },
  'POST /v1/report': { admin: '400', viewer: '403', workload: '400' },
  'POST /v1/certificates': { admin: '400', viewer: '403', workload: '400' },
  'GET /v1/ca': { admin: '200', viewer: '200', workload: '200' },
  'POST /v1/ca/rotate': { admin: '400', viewer: '403', workload: '403' },
  'GET /v1/workloads': { admin: '200', viewer: '200', workload: '200' },
  'GET /v1/workloads/': { admin: '200', viewer: '200', workload: '200' },
  'POST /v1/workloads': { admin: '400', viewer: '403', workload: '400' },
  'POST /v1/workloads/': { admin: '400', viewer: '403', workload: '400' },
  [`PUT ${RECORD}/lease`]: { admin: '404', viewer: '403', workload: '404' },
  [`PUT ${RECORD}/health`]: { admin: '400', viewer: '403', workload: '400' },
  [`DELETE ${RECORD}`]: { admin: '404', viewer: '403', workload: '404' },
  'GET /v1/resources': { admin: '200', viewer: '200', workload: '403' },
  'GET /v1/resources/': { admin: '200', viewer: '200', workload: '403' },
  'POST /v1/resources': { admin: '400', viewer: '403', workload: '403' },
  'POST /v1/resources/': { admin: '400', viewer: '403', workload: '403' },
  [`GET ${VS}`]: { admin: '200', viewer: '200', workload: '403' },
  [`DELETE ${VS}`]: { admin: '200', viewer: '403', workload: '403' },
  // The config API refuses a workload token before it routes.
  ...Object.fromEntries(
    [...METHODS.flatMap((m) => ['/v1/resources/VirtualService', '/v1/resources/VirtualService/default/reviews/x'].map((p) => `${m} ${p}`)), `POST ${VS}`, `PUT ${VS}`, `PATCH ${VS}`, `HEAD ${VS}`, 'PUT /v1/resources', 'PATCH /v1/resources', 'HEAD /v1/resources', 'DELETE /v1/resources', 'PUT /v1/resources/', 'PATCH /v1/resources/', 'HEAD /v1/resources/', 'DELETE /v1/resources/'].map((k) => [k, { admin: 'none', viewer: '403', workload: '403' } satisfies Row]),
  ),
};

let s: TestServer;
const tokens: Record<keyof Row, string> = { admin: '', viewer: '', workload: '' };

before(async () => {
  s = await startTestServer({ 'services.yaml': SERVICES_YAML });
  tokens.admin = s.admin;
  tokens.viewer = await s.cp.mintToken({ viewer: true });
  tokens.workload = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
});
after(async () => {
  await s.close();
});

/** One request's outcome (a stream is ended once its status is known), and the error message if any. */
async function outcome(method: string, path: string, token: string): Promise<{ outcome: Outcome; message: string }> {
  const ac = new AbortController();
  const body = method === 'POST' || method === 'PUT' || method === 'PATCH' ? '{"x":1}' : undefined;
  const res = await request(`${s.url}${path}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body,
    signal: ac.signal,
    reset: true,
  });
  if (String(res.headers['content-type']).startsWith('text/event-stream')) {
    ac.abort();
    await res.body.text().catch(() => undefined);
    return { outcome: `${res.statusCode}`, message: '' };
  }
  const text = await res.body.text();
  let message = '';
  try {
    message = String(JSON.parse(text).error?.message ?? '');
  } catch {}
  // A HEAD answer has no body: the router's 404 is the only 404 a HEAD gets.
  const none = res.statusCode === 404 && (method === 'HEAD' || message.startsWith('no such endpoint'));
  return { outcome: none ? 'none' : `${res.statusCode}`, message };
}

describe('viewer token: every route × {admin, viewer, workload}', () => {
  it('every path constant of protocol.ts is requested', () => {
    const constants = Object.keys(protocol).filter((k) => k.endsWith('_PATH'));
    assert.deepEqual(constants.sort(), Object.keys(PATHS).sort(), 'a new path constant needs rows in ROUTES and paths in PATHS');
  });

  it('answers each as the table says; a viewer refusal names what the token may do', async () => {
    await api(s.url, 'POST', '/v1/resources', { token: s.admin, text: reviewsVs('2s') });
    const got: string[] = [];
    const want: string[] = [];
    const seen = new Set<string>();
    for (const path of [...Object.values(PATHS).flat(), ...OTHER_PATHS]) {
      for (const method of METHODS) {
        const key = `${method} ${path}`;
        seen.add(key);
        // The DELETE of the VirtualService is last for the admin (below), after the others read it.
        if (key === `DELETE ${VS}`) continue;
        const row = ROUTES[key] ?? { admin: 'none', viewer: '403', workload: 'none' };
        for (const role of ['viewer', 'workload', 'admin'] as const) {
          const r = await outcome(method, path, tokens[role]);
          got.push(`${key} ${role}: ${r.outcome}`);
          want.push(`${key} ${role}: ${row[role]}`);
          if (role === 'viewer' && r.outcome === '403' && method !== 'HEAD') assert.ok(r.message.includes(VIEWER_MAY), `${key}: ${r.message}`);
        }
      }
    }
    for (const role of ['viewer', 'workload', 'admin'] as const) {
      got.push(`DELETE ${VS} ${role}: ${(await outcome('DELETE', VS, tokens[role])).outcome}`);
      want.push(`DELETE ${VS} ${role}: ${ROUTES[`DELETE ${VS}`]![role]}`);
    }
    assert.deepEqual(
      got.flatMap((g, i) => (g === want[i] ? [] : [`${g}, want ${want[i]!.slice(want[i]!.lastIndexOf(' ') + 1)}`])),
      [],
    );
    for (const key of Object.keys(ROUTES)) assert.ok(seen.has(key), `ROUTES has ${key}, which is not requested`);
  });

  it('a viewer reads what an admin reads: the config, one resource, the status, the workloads, the CA', async () => {
    await api(s.url, 'POST', '/v1/resources', { token: s.admin, text: reviewsVs('3s') });
    for (const path of ['/v1/resources?kind=VirtualService', VS, '/status', '/v1/workloads', '/v1/ca']) {
      const [a, v] = [await api(s.url, 'GET', path, { token: tokens.admin }), await api(s.url, 'GET', path, { token: tokens.viewer })];
      assert.equal(v.status, 200, path);
      if (path !== '/status') assert.deepEqual(v.body, a.body, path);
    }
    const refused = await api(s.url, 'POST', '/v1/resources', { token: tokens.viewer, text: reviewsVs('9s') });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.message, `POST /v1/resources: the token is a viewer token (viewer), which may only read: ${VIEWER_MAY}`);
    assert.equal((await api(s.url, 'GET', VS, { token: tokens.viewer })).body.spec.http[0].timeout, '3s', 'the refused apply changed nothing');
    // A workload token is told which token may apply (not offered the viewer, which may not).
    const workload = await api(s.url, 'POST', '/v1/resources', { token: tokens.workload, text: reviewsVs('9s') });
    assert.equal(workload.body.error.message, 'POST on the config API needs an admin token (meshlet token --admin); this token is for default/reviews');
    assert.match((await api(s.url, 'GET', '/v1/resources', { token: tokens.workload })).body.error.message, /^the config API needs an admin or viewer token/);
  });

  it('a refused certificate request by a viewer is counted as an authentication failure (as istiod counts)', async () => {
    const r = await api(s.url, 'POST', '/v1/certificates', { token: tokens.viewer, body: { csr: '-----BEGIN CERTIFICATE REQUEST-----', namespace: 'default' } });
    assert.equal(r.status, 403);
    const metrics = (await api(s.url, 'GET', '/metrics')).body as string;
    assert.match(metrics, /citadel_server_authentication_failure_count\S* [1-9]/);
  });
});

describe('viewer token: minting and verifying', () => {
  it('sub viewer, role viewer; verifies to the viewer identity', async () => {
    const t = tempDir('meshlet-viewer-');
    try {
      const a = await TokenAuthority.open(t.dir);
      const token = await a.mintToken({ viewer: true }, { ttlSeconds: 3600 });
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
      assert.equal(claims.role, 'viewer');
      assert.equal(claims.sub, 'viewer');
      assert.equal(claims.exp - claims.iat, 3600);
      const v = await a.verifyToken(token);
      assert.deepEqual(v, { ok: true, identity: { role: 'viewer', subject: 'viewer' } });
    } finally {
      t.cleanup();
    }
  });
});
