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

/**
 * Route-level and destination-level operations together, as istiod hands them to Envoy
 * (pilot/pkg/networking/core/route/route.go): one destination's operations are appended to the
 * route's lists (processDestination), one HeaderParser whose evaluateHeaders runs every remove,
 * then every overwrite, then every append; several destinations become
 * weighted clusters with their own lists (processWeightedDestination), which Envoy runs before the
 * route's (WeightedClusterEntry::finalizeRequestHeaders / finalizeResponseHeaders), so the route's
 * `set` and `remove` win.
 */
describe('header operations of a route and its destinations, in Envoy\'s order', () => {
  let up: Upstream;
  let mesh: Mesh;
  const destOps = {
    request: { set: { 'x-set': 'dest', 'x-gone': 'dest', 'x-order': 'dest' }, remove: ['x-added'] },
    response: { set: { 'x-r': 'dest', 'x-r-gone': 'dest' }, remove: ['x-r-added'] },
  };
  const routeOps = {
    request: { set: { 'x-set': 'route' }, add: { 'x-added': 'route', 'x-order': 'route' }, remove: ['x-gone'] },
    response: { set: { 'x-r': 'route' }, add: { 'x-r-added': 'route' }, remove: ['x-r-gone'] },
  };
  before(async () => {
    up = await startUpstream('u', (_req, res) => {
      res.setHeader('x-r', 'upstream');
      res.end('ok');
    });
    mesh = await meshFor([{ port: up.port }], [
      { match: [{ uri: { prefix: '/one' } }], headers: routeOps, route: [{ destination: { host: 'svc' }, headers: destOps }] },
      {
        match: [{ uri: { prefix: '/split' } }],
        headers: routeOps,
        route: [
          { destination: { host: 'svc' }, weight: 50, headers: destOps },
          { destination: { host: 'svc' }, weight: 50, headers: destOps },
        ],
      },
    ]);
  });
  after(async () => {
    await mesh.close();
    await up.close();
  });

  test('one destination: every remove, then every set, then every add (the destination\'s set wins, its remove cannot undo the route\'s add, the route\'s add follows its set)', async () => {
    const before = up.seen.length;
    const res = await mesh.fetch('http://svc/one', { headers: { 'x-added': 'caller', 'x-gone': 'caller' } });
    assert.equal(await res.text(), 'ok');
    const seen = up.seen[before];
    assert.equal(seen?.headers['x-set'], 'dest');
    assert.equal(seen?.headers['x-added'], 'route');
    assert.equal(seen?.headers['x-gone'], 'dest');
    assert.equal(seen?.headers['x-order'], 'dest, route');
    assert.equal(res.headers.get('x-r'), 'dest');
    assert.equal(res.headers.get('x-r-added'), 'route');
    assert.equal(res.headers.get('x-r-gone'), 'dest');
  });

  test('weighted destinations: the destination\'s operations first, then the route\'s (its set wins, its remove takes the destination\'s header away)', async () => {
    const before = up.seen.length;
    const res = await mesh.fetch('http://svc/split', { headers: { 'x-added': 'caller', 'x-gone': 'caller' } });
    assert.equal(await res.text(), 'ok');
    const seen = up.seen[before];
    assert.equal(seen?.headers['x-set'], 'route');
    assert.equal(seen?.headers['x-added'], 'route');
    assert.equal(seen?.headers['x-gone'], undefined);
    assert.equal(res.headers.get('x-r'), 'route');
    assert.equal(res.headers.get('x-r-added'), 'route');
    assert.equal(res.headers.get('x-r-gone'), null);
  });
});

/**
 * An operation whose value is empty is left out: Envoy's HeaderParser::evaluateHeaders skips an
 * empty value unless `keep_empty_value` is set, which istiod never sets; an empty `:authority` is
 * no host rewrite (route.go rewrites only a non-empty authority).
 */
describe('header operations: empty values, and one name written in two cases', () => {
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
        headers: { request: { set: { 'x-set': '', ':authority': '', 'x-case': 'lower', 'X-Case': 'upper' }, add: { 'x-add': '' } }, response: { set: { 'x-r': '' } } },
      },
    ]);
  });
  after(async () => {
    await mesh.close();
    await up.close();
  });

  test('set "" neither clears nor adds the header, add "" adds nothing, :authority "" keeps the Host', async () => {
    const before = up.seen.length;
    const res = await mesh.fetch('http://svc/', { headers: { 'x-set': 'caller' } });
    assert.equal(await res.text(), 'ok');
    const seen = up.seen[before];
    assert.equal(seen?.headers['x-set'], 'caller');
    assert.equal(seen?.headers['x-add'], undefined);
    assert.equal(seen?.headers.host, 'svc');
    assert.equal(res.headers.get('x-r'), 'upstream');
  });

  test('one header named twice in a map with different case: istiod sorts the map by key as written, so `x-case` (after `X-Case`) wins', async () => {
    const before = up.seen.length;
    const res = await mesh.fetch('http://svc/');
    await res.text();
    assert.equal(up.seen[before]?.headers['x-case'], 'lower');
  });
});
