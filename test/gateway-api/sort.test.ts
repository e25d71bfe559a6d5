/**
 * Gateway API route precedence as istiod sorts a VirtualService's routes (conversion.go
 * `sortHTTPRoutes`): the rows of istiod's TestSortHTTPRoutes (conversion_test.go), each route
 * written as its one match block.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sortHttpRoutes } from '../../src/config/gateway-api/mesh-routes.ts';
import type { HTTPMatchRequest, HTTPRoute } from '../../src/config/types/networking.ts';

const r = (m?: HTTPMatchRequest): HTTPRoute => (m === undefined ? { match: [] } : { match: [m] });
const one = { exact: 'value1' };

describe("istiod's TestSortHTTPRoutes", () => {
  const rows: [string, HTTPRoute[], number[]][] = [
    ['match is preferred over no match', [r(), r({ uri: { exact: '/foo' } })], [1, 0]],
    ['path matching exact > prefix > regex', [r({ uri: { prefix: '/' } }), r({ uri: { regex: '.*foo' } }), r({ uri: { exact: '/foo' } })], [2, 0, 1]],
    ['path prefix matching with largest characters', [r({ uri: { prefix: '/foo' } }), r({ uri: { prefix: '/' } }), r({ uri: { prefix: '/foobar' } })], [2, 0, 1]],
    ['path match is preferred over method match', [r({ method: { exact: 'GET' } }), r({ uri: { prefix: '/foobar' } })], [1, 0]],
    ['largest number of header matches is preferred', [r({ headers: { header1: one } }), r({ headers: { header1: one, header2: { exact: 'value2' } } })], [1, 0]],
    ['largest number of query params is preferred', [r({ queryParams: { param1: one } }), r({ queryParams: { param1: one, param2: { exact: 'value2' } } })], [1, 0]],
    ['path > method > header > query params', [r({ uri: { prefix: '/' } }), r({ queryParams: { param1: one } }), r({ method: { exact: 'GET' } }), r({ headers: { param1: one } })], [0, 2, 3, 1]],
  ];
  for (const [name, routes, order] of rows) {
    it(name, () => {
      const sorted = [...routes];
      sortHttpRoutes(sorted);
      assert.deepEqual(sorted, order.map((i) => routes[i]));
    });
  }
});
