/**
 * `local_rate_limit_per_downstream_connection: true`: Envoy's local rate limit filter keeps the
 * buckets in the downstream connection's filter state (`per_connection_local_rate_limiter`,
 * source/extensions/filters/http/local_ratelimit/local_ratelimit.cc getPerConnectionRateLimiter),
 * so each caller connection has its own, for as long as it lives. Over real connections: keep-alive
 * HTTP/1.1 clients of node:http (mesh.createServer), Express 5 and Fastify 5, HTTP/2 streams of one
 * session (bridged to the app by mesh.createServer), and grpc-js channels.
 */
import assert from 'node:assert/strict';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Client } from 'undici';
import { createMesh } from '../../src/index.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { frameworks } from '../helpers/frameworks.ts';
import { type Echo, grpc, unary } from '../helpers/grpc.ts';
import { plainClient, startMeshGrpcServer } from '../helpers/grpc-server.ts';

const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const ALL = { runtime_key: 'k', default_value: { numerator: 100, denominator: 'HUNDRED' } };

/** Two tokens per 600 s, per downstream connection. */
function perConnection(context = 'SIDECAR_INBOUND'): object {
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata: { name: 'per-conn', namespace: 'foo' },
    spec: {
      configPatches: [
        {
          applyTo: 'HTTP_FILTER',
          match: { context, listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } } } } },
          patch: {
            operation: 'INSERT_BEFORE',
            value: {
              name: 'envoy.filters.http.local_ratelimit',
              typed_config: {
                '@type': LRL,
                stat_prefix: 'per_conn',
                token_bucket: { max_tokens: 2, tokens_per_fill: 2, fill_interval: '600s' },
                filter_enabled: ALL,
                filter_enforced: ALL,
                local_rate_limit_per_downstream_connection: true,
              },
            },
          },
        },
      ],
    },
  };
}

async function statuses(client: Client, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await client.request({ path: '/x', method: 'GET' });
    await r.body.text();
    out.push(r.statusCode);
  }
  return out;
}

function h2status(session: ClientHttp2Session): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'GET', ':path': '/x' });
    let status = 0;
    req.on('response', (h) => {
      status = Number(h[':status']);
    });
    req.resume();
    req.on('end', () => resolve(status));
    req.on('error', reject);
  });
}

const denyNothing = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny', namespace: 'foo' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/nothing'] } }] }] } };

describe('local rate limit buckets per downstream connection', () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-rl-conn-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const fw of frameworks.filter((f) => ['node:http (mesh.createServer)', 'Express 5', 'Fastify 5'].includes(f.name))) {
    it(`${fw.name}: each keep-alive connection has its own 2 tokens, kept across a config reload`, async () => {
      const warnings: string[] = [];
      const file = join(dir, `${fw.name.replace(/\W+/g, '-')}.yaml`);
      writeFileSync(file, JSON.stringify(perConnection()));
      const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', config: file, watch: false, clock: new ManualClock(0), logger: { warn: (m) => warnings.push(m) } });
      const server = await fw.start(mesh);
      const a = new Client(`http://127.0.0.1:${server.port}`);
      const b = new Client(`http://127.0.0.1:${server.port}`);
      try {
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(warnings, [], 'the EnvoyFilter is applied');
        assert.deepEqual(await statuses(a, 3), [200, 200, 429]);
        assert.deepEqual(await statuses(b, 3), [200, 200, 429], 'a second connection: its own bucket');
        // An unrelated change: the connections keep their buckets (Envoy keeps them in the connection's filter state).
        writeFileSync(file, `${JSON.stringify(perConnection())}\n---\n${JSON.stringify(denyNothing)}`);
        assert.equal(await mesh.reload(), true);
        assert.deepEqual(await statuses(a, 1), [429], 'the first connection’s bucket is still empty');
        const c = new Client(`http://127.0.0.1:${server.port}`);
        assert.deepEqual(await statuses(c, 1), [200], 'a new connection: a new bucket');
        await c.close();
      } finally {
        await a.close();
        await b.close();
        await server.close();
        await mesh.close();
      }
    });
  }

  it('HTTP/2 through mesh.createServer: the streams of one session share its bucket, another session has its own', async () => {
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', identity: 'none', config: [perConnection()], clock: new ManualClock(0), logger: { warn: () => {} } });
    const server = await (frameworks[0] as (typeof frameworks)[number]).start(mesh);
    const one = h2connect(`http://127.0.0.1:${server.port}`);
    const two = h2connect(`http://127.0.0.1:${server.port}`);
    try {
      assert.deepEqual(await Promise.all([h2status(one), h2status(one)]), [200, 200]);
      assert.equal(await h2status(one), 429);
      assert.deepEqual([await h2status(two), await h2status(two), await h2status(two)], [200, 200, 429]);
    } finally {
      one.close();
      two.close();
      await server.close();
      await mesh.close();
    }
  });

  it('grpc-js: the calls of one channel share its bucket, another channel has its own', async () => {
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', config: [perConnection()], clock: new ManualClock(0), logger: { warn: () => {} } });
    const server = await startMeshGrpcServer(mesh);
    const first = plainClient(server.port) as Echo;
    const second = plainClient(server.port) as Echo;
    try {
      const codes = async (c: Echo) => {
        const out: number[] = [];
        for (let i = 0; i < 3; i++) out.push((await unary(c, { text: 'x' })).error?.code ?? grpc.status.OK);
        return out;
      };
      assert.deepEqual(await codes(first), [grpc.status.OK, grpc.status.OK, grpc.status.UNAVAILABLE]);
      assert.deepEqual(await codes(second), [grpc.status.OK, grpc.status.OK, grpc.status.UNAVAILABLE]);
    } finally {
      first.close();
      second.close();
      await server.close();
      await mesh.close();
    }
  });

  it('on outbound calls (no downstream connection in the process) the EnvoyFilter is skipped, with a warning naming why', async () => {
    const warnings: string[] = [];
    const file = join(dir, 'outbound.yaml');
    writeFileSync(file, JSON.stringify(perConnection('SIDECAR_OUTBOUND')));
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', config: file, watch: false, logger: { warn: (m) => warnings.push(m), info: (m) => warnings.push(m) } });
    try {
      // The first config's warnings are logged once createMesh has returned.
      await new Promise((r) => setImmediate(r));
      assert.match(warnings.join('\n'), /local_rate_limit_per_downstream_connection \(a bucket per downstream connection\) for outbound calls: the app's calls have no downstream connection/);
    } finally {
      await mesh.close();
    }
  });
});
