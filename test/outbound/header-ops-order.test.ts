/**
 * A VirtualService's header operations in Envoy's order (HeaderParser::evaluateHeaders removes
 * first — "remove-before-add the default behavior as expected by users" — then sets and appends):
 * a header both removed and set or added ends up with the rule's value, on the request and on the
 * response.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Mesh } from '../../src/index.ts';
import { meshFor } from '../helpers/mesh-calls.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

describe('header operations: remove, then set and add', () => {
  let up: Upstream;
  let mesh: Mesh;
  before(async () => {
    up = await startUpstream('u', (_req, res) => {
      res.setHeader('x-r', 'upstream');
      res.end('ok');
    });
    mesh = await meshFor([{ port: up.port }], [
      {
        route: [{ destination: { host: 'svc' } }],
        headers: {
          request: { remove: ['x-a', 'x-b'], set: { 'x-a': 'mesh' }, add: { 'x-b': '2' } },
          response: { remove: ['x-r'], set: { 'x-r': 'mesh' } },
        },
      },
    ]);
  });
  after(async () => {
    await mesh.close();
    await up.close();
  });

  test('the rule\'s values are sent and answered, the caller\'s and the upstream\'s are gone', async () => {
    const before = up.seen.length;
    const res = await mesh.fetch('http://svc/', { headers: { 'x-a': 'caller', 'x-b': '1' } });
    assert.equal(await res.text(), 'ok');
    const seen = up.seen[before];
    assert.equal(seen?.headers['x-a'], 'mesh');
    assert.equal(seen?.headers['x-b'], '2');
    assert.equal(res.headers.get('x-r'), 'mesh');
  });
});
