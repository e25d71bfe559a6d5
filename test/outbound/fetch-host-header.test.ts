/**
 * A `Host` header the app sets, by client. The fetch standard forbids `Host` (a forbidden request
 * header), and undici's `fetch` — `mesh.fetch`, Node's `fetch` with `mesh.dispatcher` — deletes it
 * before sending: such a call is routed by its URL, as behind a sidecar (which sees the Host fetch
 * sent: the URL's authority). `undici.request` through `mesh.dispatcher` sends `Host` as given, and
 * the mesh routes on it (docs/outbound.md, "How Host and :authority are used"). To reach a service
 * with fetch, name it in the URL.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { serviceEntry } from '../helpers/upstreams.ts';

describe('a Host header the app sets', () => {
  let mesh: Mesh;
  let reviews: Server;
  let other: Server;
  let local: string;
  let port: number;
  const HOST = 'reviews.default.svc.cluster.local';
  const serve = (name: string) => createServer((q, r) => r.end(`${name} ${q.headers.host}`));
  before(async () => {
    reviews = serve('reviews');
    other = serve('other');
    await new Promise<void>((r) => reviews.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    port = (other.address() as AddressInfo).port;
    local = `127.0.0.1:${port}`;
    // reviews on the port `other` listens on: a call routed to reviews reaches the reviews server.
    mesh = await createMesh({ service: 'client', namespace: 'default', config: [serviceEntry('reviews', HOST, port, [{ port: (reviews.address() as AddressInfo).port }])] });
  });
  after(async () => {
    await mesh.close();
    reviews.close();
    other.close();
  });

  it('mesh.fetch and Node’s fetch drop it (the fetch standard): the call goes where its URL says, with the URL’s Host', async () => {
    const viaMesh = await mesh.fetch(`http://${local}/`, { headers: { host: HOST } });
    assert.equal(await viaMesh.text(), `other ${local}`);
    const viaNode = await fetch(`http://${local}/`, { headers: { host: HOST }, dispatcher: mesh.dispatcher } as RequestInit);
    assert.equal(await viaNode.text(), `other ${local}`);
  });

  it('the URL names the service: routed to it', async () => {
    assert.equal(await (await mesh.fetch(`http://${HOST}:${port}/`)).text(), `reviews ${HOST}:${port}`);
    assert.equal(await (await mesh.fetch(`http://reviews:${port}/`)).text(), `reviews reviews:${port}`);
  });

  it('undici.request through mesh.dispatcher sends it as given, and the mesh routes on it', async () => {
    const r = await request(`http://${local}/`, { headers: { host: HOST }, dispatcher: mesh.dispatcher });
    assert.equal(await r.body.text(), `reviews ${HOST}`);
  });
});
