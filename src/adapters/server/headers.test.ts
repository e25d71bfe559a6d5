import assert from 'node:assert/strict';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { absoluteForm, headersFromRaw, replaceHeaders, toNodeHeaders } from './headers.ts';

/** What Node itself makes of `raw` (its own parser's header lines, `req.headers`). */
function nodeParsed(raw: readonly string[]): IncomingMessage {
  const m = new IncomingMessage(new Socket());
  (m as unknown as { _addHeaderLines(h: readonly string[], n: number): void })._addHeaderLines(raw, raw.length);
  return m;
}

describe('replaceHeaders: the rebuilt req.headers is what Node makes of the same header lines', () => {
  const rows: { name: string; raw: string[] }[] = [
    { name: 'single headers', raw: ['Host', 'a.example', 'Accept', '*/*', 'X-Id', '7'] },
    { name: 'a repeated ordinary header is joined with ", "', raw: ['X-Foo', '1', 'x-foo', '2', 'X-FOO', '3'] },
    { name: 'repeated cookies are joined with "; "', raw: ['Cookie', 'a=1', 'cookie', 'b=2'] },
    { name: 'set-cookie is always a list', raw: ['Set-Cookie', 's=1'] },
    { name: 'repeated set-cookie stays a list', raw: ['Set-Cookie', 's=1', 'set-cookie', 's=2'] },
    { name: 'first-only headers keep the first', raw: ['User-Agent', 'u1', 'user-agent', 'u2', 'Authorization', 't1', 'authorization', 't2', 'Host', 'h1', 'host', 'h2', 'Content-Type', 'a/b', 'content-type', 'c/d', 'Referer', 'r1', 'Referer', 'r2'] },
    { name: 'all kinds together, order kept', raw: ['Host', 'h', 'Cookie', 'a=1', 'X-A', '1', 'cookie', 'b=2', 'X-A', '2', 'User-Agent', 'u', 'Set-Cookie', 's'] },
    { name: 'no headers', raw: [] },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const want = nodeParsed(r.raw);
      const req = nodeParsed([]);
      const view = headersFromRaw(r.raw);
      replaceHeaders(req, view);
      assert.deepEqual({ ...req.headers }, { ...want.headers });
      assert.deepEqual({ ...toNodeHeaders(view) }, { ...want.headers });
      // rawHeaders: names lower-cased, each value once, grouped under its name's first place.
      const grouped: string[] = [];
      for (const k of Object.keys(view)) for (const v of ([] as string[]).concat(view[k] as string | string[])) grouped.push(k, v);
      assert.deepEqual(req.rawHeaders, grouped);
    });
  }

  it('a name the phases removed is gone from both, one they added is in both', () => {
    const req = nodeParsed([]);
    const view = headersFromRaw(['Authorization', 'Bearer x', 'X-A', '1', 'x-a', '2']);
    delete view.authorization;
    view['x-jwt-sub'] = 'alice';
    view['x-b'] = undefined;
    replaceHeaders(req, view);
    assert.deepEqual({ ...req.headers }, { 'x-a': '1, 2', 'x-jwt-sub': 'alice' });
    assert.deepEqual(req.rawHeaders, ['x-a', '1', 'x-a', '2', 'x-jwt-sub', 'alice']);
  });
});

describe('absoluteForm: the request target split as Envoy splits an absolute-form one', () => {
  const rows: { target: string; want: { authority: string; path: string } | undefined }[] = [
    // Origin-form (answered without the regular expression), even when a URL follows the slash.
    { target: '/api/items/1?x=1', want: undefined },
    { target: '/http://evil.example/admin', want: undefined },
    { target: '*', want: undefined },
    { target: 'http://httpbin.foo:8000/api/items?x=1', want: { authority: 'httpbin.foo:8000', path: '/api/items?x=1' } },
    { target: 'HTTPS://user@h.example', want: { authority: 'h.example', path: '/' } },
    { target: 'http://h.example?q', want: { authority: 'h.example', path: '/?q' } },
  ];
  for (const r of rows) it(JSON.stringify(r.target), () => assert.deepEqual(absoluteForm(r.target), r.want));
});
