/**
 * What `rewrite.uri` (and a redirect's `prefixRewrite`) replaces: istiod makes both Envoy's
 * `prefix_rewrite`, which replaces the part of the path the route matched — a prefix match's
 * prefix, the whole path (the query kept) for an exact or a regex match (Envoy's Path and Regex
 * route entries: RegexRouteEntryImpl::currentUrlPathAfterRewrite), and `/` for a match without a
 * uri (istiod's `prefix: /`). Istio's validation allows a redirect's `prefixRewrite` only with
 * prefix matches or none.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { Mesh } from '../../src/index.ts';
import { meshFor } from '../helpers/mesh-calls.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

describe('rewrite.uri and redirect.prefixRewrite replace what the route matched', () => {
  let up: Upstream;
  let mesh: Mesh;
  const route = [{ destination: { host: 'svc' } }];
  before(async () => {
    up = await startUpstream('u');
    mesh = await meshFor([{ port: up.port }], [
      { match: [{ uri: { regex: '/re/.*' } }], rewrite: { uri: '/new' }, route },
      { match: [{ uri: { exact: '/exact' } }], rewrite: { uri: '/new' }, route },
      { match: [{ uri: { prefix: '/pre/' } }], rewrite: { uri: '/new/' }, route },
      { match: [{ headers: { 'x-redirect': { exact: 'any' } } }], redirect: { prefixRewrite: '/moved/' } },
      { match: [{ headers: { 'x-h': { exact: '1' } } }], rewrite: { uri: '/hdr/' }, route },
    ]);
  });
  after(async () => {
    await mesh.close();
    await up.close();
  });

  async function upstreamPath(path: string, headers: Record<string, string> = {}): Promise<string | undefined> {
    const before = up.seen.length;
    const res = await request(`http://svc${path}`, { dispatcher: mesh.dispatcher, headers });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    return up.seen[before]?.url;
  }

  async function location(path: string, kind: string): Promise<unknown> {
    const res = await request(`http://svc${path}`, { dispatcher: mesh.dispatcher, headers: { 'x-redirect': kind } });
    await res.body.dump();
    assert.equal(res.statusCode, 301);
    return res.headers.location;
  }

  test('a regex match: the whole path is replaced, the query kept', async () => {
    assert.equal(await upstreamPath('/re/a/b?q=1'), '/new?q=1');
  });

  test('an exact match: the whole path; a prefix match: the prefix', async () => {
    assert.equal(await upstreamPath('/exact?q=1'), '/new?q=1');
    assert.equal(await upstreamPath('/pre/a/b'), '/new/a/b');
  });

  test('a match without a uri: the leading /', async () => {
    assert.equal(await upstreamPath('/any/x?q', { 'x-h': '1' }), '/hdr/any/x?q');
  });

  test('a redirect\'s prefixRewrite on a match without a uri (Istio refuses it with exact and regex uri matches): the leading /', async () => {
    assert.equal(await location('/some/path?q=1', 'any'), 'http://svc/moved/some/path?q=1');
  });
});
