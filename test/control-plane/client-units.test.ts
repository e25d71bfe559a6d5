/**
 * Unit tests of the control-plane client's parts: the SSE parser, the reconnect backoff and URL
 * rotation, the last-known-good cache, and the validation of received events.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { seededRandom } from '../../src/core/clock.ts';
import { fullJitterMs, UrlRotation } from '../../src/control-plane/backoff.ts';
import { SnapshotCache } from '../../src/control-plane/cache.ts';
import { ControlPlaneHttp, describeFailure, HttpStatusError, statusError } from '../../src/control-plane/http.ts';
import { SseParser, type SseEvent } from '../../src/control-plane/sse.ts';
import { checkConfig, checkWorkloads, compileState, EMPTY_STATE, parseEvent } from '../../src/control-plane/state.ts';
import { controlPlaneUrls } from '../../src/control-plane/source.ts';
import { deadPort, serviceEntry } from '../helpers/upstreams.ts';

function parse(chunks: (string | Uint8Array)[]) {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const p = new SseParser({ onEvent: (e) => events.push(e), onComment: (c) => comments.push(c) });
  for (const c of chunks) p.push(c);
  return { events, comments, lastEventId: p.lastEventId };
}

test('SSE: event, id, multi-line data, comments, default event name', () => {
  const { events, comments, lastEventId } = parse([': ping\n\nevent: hello\ndata: {"a":1}\n\nid: 1/2\nevent: config\ndata: line1\ndata: line2\n\ndata: plain\n\n']);
  assert.deepEqual(comments, ['ping']);
  assert.deepEqual(events, [
    { event: 'hello', data: '{"a":1}', id: '' },
    { event: 'config', data: 'line1\nline2', id: '1/2' },
    { event: 'message', data: 'plain', id: '1/2' },
  ]);
  assert.equal(lastEventId, '1/2');
});

test('SSE: CRLF and CR line ends, also split across chunks; BOM; split UTF-8', () => {
  const crlf = parse(['\uFEFFevent: a\r', '\ndata: x\r\n\r', '\nevent: b\rdata: y\r\r']);
  assert.deepEqual(crlf.events.map((e) => [e.event, e.data]), [['a', 'x'], ['b', 'y']]);
  const bytes = new TextEncoder().encode('data: héllo ✓\n\n');
  const split = parse(Array.from(bytes, (b) => Uint8Array.of(b)));
  assert.deepEqual(split.events.map((e) => e.data), ['héllo ✓']);
});

test('SSE: edge cases of fields — no colon, no space, empty data, unknown field, retry, NUL id, unterminated event', () => {
  const { events } = parse(['data\n\ndata:x\nfoo: bar\nretry: 50\n\ndata: \ndata:\n\nid: a\0b\ndata: z\n\nevent: lost\ndata: never']);
  assert.deepEqual(events, [
    { event: 'message', data: '', id: '' },
    { event: 'message', data: 'x', id: '', retry: 50 },
    { event: 'message', data: '\n', id: '' },
    { event: 'message', data: 'z', id: '' },
  ]);
  // An event with no data is not dispatched.
  assert.deepEqual(parse(['event: x\n\n']).events, []);
  assert.throws(() => new SseParser({ onEvent: () => undefined }, { maxLineChars: 10 }).push('data: 0123456789abc'), /longer than 10/);
  // An event is bounded as a line is: data lines that never meet a blank line are refused.
  const p = new SseParser({ onEvent: () => undefined }, { maxLineChars: 10 });
  p.push('data: 0123\ndata: 4567\n');
  assert.throws(() => p.push('data: 89\n'), /SSE event longer than 10 characters/);
  // Ended events do not count against the next one.
  const q = new SseParser({ onEvent: () => undefined }, { maxLineChars: 10 });
  for (let i = 0; i < 5; i++) q.push('data: 01234567\n\n');
});

test('backoff: full jitter grows and is capped; the rotation skips to the next URL at once and backs off per round', () => {
  const max = { next: () => 0.999999 };
  assert.deepEqual([0, 1, 2, 3, 10].map((a) => fullJitterMs(a, max, { baseMs: 100, maxMs: 1000 })), [99, 199, 399, 799, 999]);
  assert.equal(fullJitterMs(5, { next: () => 0 }), 0);
  // The first URL is a random one (here the last): a fleet given one list spreads over the replicas.
  const r = new UrlRotation(['a', 'b', 'c'], max, { baseMs: 100, maxMs: 10_000 });
  assert.equal(r.current, 'c');
  const delays = [r.next(), r.next(), r.next(), r.next(), r.next(), r.next()];
  assert.deepEqual(delays, [99, 0, 99, 0, 0, 199]);
  assert.equal(r.current, 'c');
  assert.deepEqual([0, 0.34, 0.67, 0.999999].map((x) => new UrlRotation(['a', 'b', 'c'], { next: () => x }).current), ['a', 'b', 'c', 'c']);
  assert.equal(r.roundFailed, true);
  r.succeeded();
  assert.equal(r.roundFailed, false);
  const one = new UrlRotation(['a'], max, { baseMs: 100, maxMs: 400 });
  assert.deepEqual([one.next(), one.next(), one.next(), one.next()], [99, 199, 399, 399]);
  const seeded = new UrlRotation(['a'], seededRandom(1), { baseMs: 100, maxMs: 400 });
  for (let i = 0; i < 20; i++) assert.ok(seeded.next() < 400);
});

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('cache: atomic write and read back; a corrupt or foreign file is ignored with a warning', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-cache-'));
  dirs.push(dir);
  const warnings: string[] = [];
  const cache = new SnapshotCache(join(dir, 'sub'), 'default', 'productpage', (m) => warnings.push(m));
  assert.equal(await cache.read(), undefined);
  assert.deepEqual(warnings, []);
  const state = { configVersion: 'c1', endpointsVersion: 'e1', resources: [JSON.parse(JSON.stringify(serviceEntry('a', 'a.example', 80, [{ port: 1 }])))], workloads: [] };
  await Promise.all([cache.write({ ...state, configVersion: 'c0' }), cache.write(state)]);
  assert.equal(cache.file, join(dir, 'sub', 'default.productpage.json'));
  assert.deepEqual(await cache.read(), state);
  assert.deepEqual(await readdir(join(dir, 'sub')), ['default.productpage.json'], 'no temp files left');
  await writeFile(cache.file, '{"format":"meshlet.cache/v1","configVersion":');
  assert.equal(await cache.read(), undefined);
  await writeFile(cache.file, '{"format":"other"}');
  assert.equal(await cache.read(), undefined);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0] ?? '', /ignoring the corrupt config cache .*default\.productpage\.json/);
  assert.match(warnings[1] ?? '', /not a meshlet cache/);
  assert.match(await readFile(cache.file, 'utf8'), /other/);
});

test("cache: the control plane's MeshConfig is kept with the config (mode 0600) and read back; a malformed one makes the file corrupt", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-cache-'));
  dirs.push(dir);
  const warnings: string[] = [];
  const cache = new SnapshotCache(dir, 'default', 'productpage', (m) => warnings.push(m));
  const state = { configVersion: 'c1', endpointsVersion: 'e1', resources: [], workloads: [], meshConfig: { version: 'm1', meshConfig: { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }, source: '/etc/istio/mesh.yaml' } };
  await cache.write(state);
  assert.deepEqual(await cache.read(), state);
  assert.equal((await stat(cache.file)).mode & 0o777, 0o600);
  const { meshConfig: _, ...old } = state;
  await writeFile(cache.file, JSON.stringify({ format: 'meshlet.cache/v1', ...old }));
  assert.deepEqual(await cache.read(), old, 'a file written before the MeshConfig was kept');
  for (const bad of [{ version: 'm1' }, { version: 'm1', meshConfig: [] }, { meshConfig: {} }, { version: 'm1', meshConfig: {}, source: 3 }, 'm1']) {
    await writeFile(cache.file, JSON.stringify({ format: 'meshlet.cache/v1', ...old, meshConfig: bad }));
    assert.equal(await cache.read(), undefined, JSON.stringify(bad));
  }
  assert.equal(warnings.length, 5);
  for (const w of warnings) assert.match(w, /ignoring the corrupt config cache .*default\.productpage\.json: meshConfig: /);
});

test('received events are validated: config as a whole set, workloads as WorkloadEntries', () => {
  const opts = { defaultNamespace: 'default' };
  const good = checkConfig([serviceEntry('a', 'a.example', 80, [{ port: 1 }]) as never], 'cp', opts);
  assert.equal(good.ok, true);
  const bad = checkConfig([{ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'x' }, spec: { hosts: [], htp: [] } }] as never, 'cp', opts);
  assert.equal(bad.ok, false);
  assert.match(bad.issues.ofLevel('error').map(String).join('\n'), /htp/);
  const we = { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'w', namespace: 'default' }, spec: { address: '127.0.0.1', labels: { app: 'r' }, ports: { http: 1 } } };
  assert.equal(checkWorkloads([we] as never, 'ep', opts).ok, true);
  const notWe = checkWorkloads([serviceEntry('a', 'a.example', 80, [])] as never, 'ep', opts);
  assert.equal(notWe.ok, false);
  assert.match(notWe.issues.ofLevel('error').map(String).join('\n'), /expected a WorkloadEntry, got kind "ServiceEntry"/);
  assert.equal(checkConfig('nope' as never, 'cp', opts).ok, false);
  const snap = compileState({ ...EMPTY_STATE, configVersion: 'c', endpointsVersion: 'e', resources: good.value }, { service: 's', namespace: 'default', labels: {} });
  assert.equal(snap.version, 'c/e');
});

test('control-plane URLs and error descriptions', () => {
  assert.deepEqual(controlPlaneUrls(['http://127.0.0.1:1/', 'https://cp.example']), ['http://127.0.0.1:1', 'https://cp.example']);
  assert.throws(() => controlPlaneUrls('ftp://x'), /expected an http\(s\) URL/);
  assert.throws(() => controlPlaneUrls([]), /non-empty list/);
  assert.throws(() => controlPlaneUrls('nope'), /not a URL/);
  assert.equal(describeFailure('http://cp', statusError(401, '{"error":{"code":"UNAUTHENTICATED","message":"no token"}}')), 'control plane http://cp: 401 Unauthorized: no token');
  assert.equal(describeFailure('http://cp', statusError(503, 'down')), 'control plane http://cp: 503 Service Unavailable: down');
  assert.equal(describeFailure('http://cp', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })), 'control plane http://cp: connection refused (ECONNREFUSED)');
});

test('HTTP calls: a per-URL breaker opens after repeated failures, fails fast, and closes after a half-open trial succeeds; 4xx do not trip it', async () => {
  const port = await deadPort();
  const url = `http://127.0.0.1:${port}`;
  const http = new ControlPlaneHttp({ token: 'tok', breakerResetMs: 50 });
  const server = createServer((req, res) => {
    if (req.url === '/missing') res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"NOT_FOUND","message":"gone"}}');
    else res.end(JSON.stringify({ auth: req.headers.authorization }));
  });
  try {
    for (let i = 0; i < 3; i++) await assert.rejects(http.call(url, { method: 'GET', path: '/' }), { code: 'ECONNREFUSED' });
    await assert.rejects(http.call(url, { method: 'GET', path: '/' }), { code: 'EOPENBREAKER' });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    await assert.rejects(http.call(url, { method: 'GET', path: '/' }), { code: 'EOPENBREAKER' }, 'still open before the reset timeout');
    await new Promise((r) => setTimeout(r, 70));
    assert.deepEqual(await http.call(url, { method: 'GET', path: '/' }), { auth: 'Bearer tok' });
    for (let i = 0; i < 5; i++) await assert.rejects(http.call(url, { method: 'GET', path: '/missing' }), (e: Error) => e instanceof HttpStatusError && e.status === 404);
    assert.deepEqual(await http.call(url, { method: 'GET', path: '/' }), { auth: 'Bearer tok' }, '404s did not open it');
  } finally {
    await http.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('meshes in one process that receive the same event text validate it once; other text or options validate again', () => {
  const opts = { defaultNamespace: 'default' };
  const wire = [serviceEntry('a', 'a.example', 80, [{ port: 1 }])] as never;
  const text = JSON.stringify({ version: 'v1', resources: wire });
  const first = checkConfig(wire, 'cp v1', opts, text);
  assert.equal(checkConfig(JSON.parse(text).resources, 'cp v1', opts, text), first, 'same text: the same outcome object');
  assert.notEqual(checkConfig(wire, 'cp v1', { ...opts, analysis: 'off' as const }, text), first, 'other options');
  assert.notEqual(checkConfig(wire, 'cp v1', { defaultNamespace: 'shop' }, text), first, 'other namespace');
  assert.notEqual(checkConfig(wire, 'cp v1', opts, `${text} `), first, 'other text');
  assert.notEqual(checkConfig(wire, 'cp v1', opts), first, 'no text: validated anew');
  assert.equal(parseEvent(text), parseEvent(`${text}`), 'the same event text is parsed once');
  assert.deepEqual(parseEvent(text), JSON.parse(text));
  assert.throws(() => parseEvent('{nope'), SyntaxError);
});

test('an open breaker says why it opened: the last failure that counted against it', async () => {
  const server = createServer((_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"UNAVAILABLE","message":"etcd is unreachable"}}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const http = new ControlPlaneHttp({ token: 't', breakerResetMs: 60_000 });
  try {
    const failures: string[] = [];
    for (let i = 0; i < 5; i++) {
      await http.call(url, { method: 'POST', path: '/v1/certificates', body: {} }).catch((e: unknown) => failures.push(describeFailure(url, e)));
    }
    assert.equal(failures.length, 5);
    assert.match(failures[0] ?? '', /503 .*etcd is unreachable/);
    assert.match(failures.at(-1) ?? '', /^control plane http:\/\/127\.0\.0\.1:\d+: not called: circuit breaker open after repeated failures \(the last: 503 .*etcd is unreachable\)$/);
  } finally {
    await http.close();
    server.close();
  }
});
