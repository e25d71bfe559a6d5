/**
 * A local rate limit filter's own `rate_limits` apply whatever the filter's `stage`: Envoy's local
 * filter builds descriptors from them (`hasRateLimitConfigs()`, `populateDescriptors`) without
 * reading a stage, which route rate limits alone have. Calls through `mesh.fetch` to a real upstream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { envoyFilter, SRV } from '../helpers/global-rate-limit-filters.ts';
import { services } from '../helpers/rate-limit-service.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const all = { default_value: { numerator: 100, denominator: 'HUNDRED' } };

describe("local rate limit: the filter's own rate_limits with a stage", () => {
  let up: Upstream;
  let mesh: Mesh;

  before(async () => {
    up = await startUpstream('srv', (_req, res) => {
      res.end('hello');
    });
    const filter = {
      applyTo: 'HTTP_FILTER',
      match: { context: 'SIDECAR_OUTBOUND', listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } } } } },
      patch: {
        operation: 'INSERT_BEFORE',
        value: {
          name: 'envoy.filters.http.local_ratelimit',
          typed_config: {
            '@type': LRL,
            stat_prefix: 'own',
            stage: 3,
            filter_enabled: all,
            filter_enforced: all,
            token_bucket: { max_tokens: 100, fill_interval: '60s' },
            descriptors: [{ entries: [{ key: 'generic_key', value: 'g' }], token_bucket: { max_tokens: 1, fill_interval: '60s' } }],
            rate_limits: [{ actions: [{ generic_key: { descriptor_value: 'g' } }] }],
          },
        },
      },
    };
    mesh = await createMesh({ service: 'clt', namespace: 'echo', labels: { app: 'clt' }, config: [...services(1, up.port), envoyFilter('own', [filter])] as never, clock: new ManualClock(0) });
  });
  after(async () => {
    await mesh.close();
    await up.close();
  });

  it('the descriptor bucket (1 a minute) limits the second call', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await mesh.fetch(`http://${SRV}/`);
      statuses.push(r.status);
      await r.text();
    }
    assert.deepEqual(statuses, [200, 429]);
  });
});
