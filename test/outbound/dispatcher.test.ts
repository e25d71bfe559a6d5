import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import { createMesh, isMeshletError } from '../../src/index.ts';
import { normalizeHeaders } from '../../src/core/headers.ts';
import { serviceEntry, startUpstream } from '../helpers/upstreams.ts';

/** The header object as a plain one, to compare (normalizeHeaders makes it without a prototype). */
const plain = (h: object) => ({ ...h });

test('normalizeHeaders accepts every header form undici does and lower-cases names', () => {
  // Nothing inherited: a header named constructor, toString or __proto__ is just a header.
  const empty = normalizeHeaders({});
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf']) assert.equal((empty as Record<string, unknown>)[name], undefined, `${name} is not inherited`);
  assert.equal(Object.getPrototypeOf(Object.getPrototypeOf(empty)), null, 'the only prototype has none');
  assert.deepEqual(Object.keys(Object.getPrototypeOf(empty)), [], 'and no names of its own');
  const odd = normalizeHeaders({ Constructor: 'a', toString: 'b', ['__proto__']: 'c' } as Record<string, string>);
  assert.deepEqual(Object.entries(odd), [['constructor', 'a'], ['tostring', 'b'], ['__proto__', 'c']]);
  assert.equal(Object.getPrototypeOf(odd), Object.getPrototypeOf(empty), 'a __proto__ header sets no prototype');
  assert.deepEqual(plain(normalizeHeaders({ 'X-A': '1', b: ['2', '3'], c: undefined, n: 4 })), { 'x-a': '1', b: ['2', '3'], n: '4' });
  assert.deepEqual(plain(normalizeHeaders(['X-A', '1', 'x-a', '2'])), { 'x-a': ['1', '2'] });
  assert.deepEqual(plain(normalizeHeaders([['Accept', 'a'], ['accept', 'b']])), { accept: ['a', 'b'] });
  assert.deepEqual(plain(normalizeHeaders(new Headers({ 'Content-Type': 'text/plain' }))), { 'content-type': 'text/plain' });
  assert.deepEqual(plain(normalizeHeaders(null)), {});
});

test('dispatcher: query option, Host header routing, bad origins, close and destroy', async () => {
  const up = await startUpstream('up');
  const mesh = await createMesh({ service: 'client', errors: 'throw', config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }])] });
  try {
    const r = await request('http://svc/q', { dispatcher: mesh.dispatcher, query: { a: '1', b: 'x y' } });
    assert.equal(await r.body.text(), 'up');
    assert.equal(up.seen.at(-1)?.url, '/q?a=1&b=x+y');
    // The Host header, not the URL, decides the virtual host (as at a sidecar).
    const viaHost = await request(`http://127.0.0.1:${up.port}/h`, { dispatcher: mesh.dispatcher, headers: { host: 'svc' } });
    assert.equal(await viaHost.body.text(), 'up');
    assert.equal(up.seen.at(-1)?.headers.host, 'svc');
    await assert.rejects(
      new Promise((resolve, reject) => {
        mesh.dispatcher.dispatch({ path: '/', method: 'GET' } as never, { onResponseError: (_c: unknown, e: Error) => reject(e), onResponseEnd: resolve } as never);
      }),
      (e: Error) => isMeshletError(e, 'MESHLET_ERR_INVALID_ARG') && /no origin/.test(e.message),
    );
    await assert.rejects(
      new Promise((resolve, reject) => {
        mesh.dispatcher.dispatch({ origin: 'ftp://svc', path: '/', method: 'GET' } as never, { onResponseError: (_c: unknown, e: Error) => reject(e), onResponseEnd: resolve } as never);
      }),
      /unsupported protocol ftp:/,
    );
  } finally {
    await new Promise<void>((res) => mesh.dispatcher.destroy(() => res()));
    await up.close();
  }
  await assert.rejects(request('http://svc/after', { dispatcher: mesh.dispatcher }), /closed/);
});
