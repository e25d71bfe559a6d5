/**
 * `mesh.fetch(url, { body: formData })` with Node's global `FormData` (another undici copy's
 * class than the one mesh.fetch runs on) sends the multipart body Node's own fetch sends — not
 * the text "[object FormData]" — with its fields and files (names, types), and it is retried like
 * any body of mesh.fetch.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FormData as UndiciFormData } from 'undici';
import { meshFor } from '../helpers/mesh-calls.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

/** The body with its multipart boundary replaced (each encoder picks its own at random). */
function unbound(s: Upstream['seen'][number]): { ct: string; body: string } {
  const ct = String(s.headers['content-type']);
  const boundary = /boundary=(.+)$/.exec(ct)?.[1] ?? '';
  return { ct: ct.replace(boundary, 'B'), body: boundary === '' ? s.body : s.body.split(boundary).join('B') };
}

describe("mesh.fetch with Node's global FormData", () => {
  let up: Upstream;
  before(async () => {
    // Each x-id's first request gets 503 (retried), the next 200.
    const ids = new Set<string>();
    up = await startUpstream('up', (req, res) => {
      const id = String(req.headers['x-id']);
      res.statusCode = ids.has(id) || id === 'node' ? 200 : 503;
      ids.add(id);
      res.end();
    });
  });
  after(() => up.close());

  test('sent as multipart, as Node\'s fetch sends it, and retried', async () => {
    assert.notEqual(FormData, UndiciFormData, "Node's global FormData is another undici's class");
    const form = (): FormData => {
      const fd = new FormData();
      fd.append('name', 'value é');
      fd.append('file', new Blob(['file contents'], { type: 'text/x-test' }), 'notes.txt');
      fd.append('blob', new Blob(['no type']));
      return fd;
    };
    const mesh = await meshFor([{ port: up.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 1, retryOn: '503', retryIgnorePreviousHosts: false } }]);
    try {
      // Node's own fetch through the mesh encodes its own FormData: the reference.
      const ref = await fetch('http://svc/', { method: 'POST', body: form(), headers: { 'x-id': 'node' }, dispatcher: mesh.dispatcher } as RequestInit);
      await ref.arrayBuffer();
      const expected = unbound(up.seen.at(-1) as Upstream['seen'][number]);
      assert.match(expected.ct, /^multipart\/form-data; boundary=B$/);
      assert.match(expected.body, /filename="notes\.txt"\r\nContent-Type: text\/x-test\r\n\r\nfile contents/);

      const r = await mesh.fetch('http://svc/', { method: 'POST', body: form(), headers: { 'x-id': 'mesh' } });
      await r.arrayBuffer();
      assert.equal(r.status, 200, 'the 503 was retried');
      const attempts = up.seen.filter((s) => s.headers['x-id'] === 'mesh');
      assert.equal(attempts.length, 2);
      for (const a of attempts) assert.deepEqual(unbound(a), expected, 'each attempt sends what Node\'s fetch sends');
    } finally {
      await mesh.close();
    }
  });

  test("undici's own FormData and other bodies are passed as they are", async () => {
    const mesh = await meshFor([{ port: up.port }], [{ route: [{ destination: { host: 'svc' } }], retries: { attempts: 0 } }]);
    try {
      const fd = new UndiciFormData();
      fd.append('a', 'b');
      const r = await mesh.fetch('http://svc/', { method: 'POST', body: fd as unknown as FormData, headers: { 'x-id': 'node' } });
      await r.arrayBuffer();
      assert.match(unbound(up.seen.at(-1) as Upstream['seen'][number]).body, /name="a"\r\n\r\nb\r\n/);
      const p = await mesh.fetch('http://svc/', { method: 'POST', body: new URLSearchParams({ x: 'y z' }), headers: { 'x-id': 'node' } });
      await p.arrayBuffer();
      assert.equal(up.seen.at(-1)?.body, 'x=y+z');
    } finally {
      await mesh.close();
    }
  });
});
