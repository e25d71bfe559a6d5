import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { FileConfigStore } from '../../../src/control-plane-server/file-store.ts';
import { api, reviewsVs, SERVICES_YAML, startTestServer, type TestServer, tempDir, until, watch } from './helpers.ts';

const RATINGS_DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}]
`;

describe('/v1/resources', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ 'services.yaml': SERVICES_YAML, 'reviews.yaml': reviewsVs('1s') });
  });
  after(() => s.close());
  const post = (text: string) => api(s.url, 'POST', '/v1/resources', { token: s.admin, text, headers: { 'content-type': 'application/yaml' } });

  it('applies YAML: created, then unchanged, then configured; written atomically to applied/ and pushed', async () => {
    const token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const w = await watch(s.url, 'service=reviews&namespace=default', { token });
    const before = (await w.next('config')).data.version;
    const r = await post(RATINGS_DR);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.applied, [{ ref: 'DestinationRule default/ratings', action: 'created' }]);
    assert.notEqual(r.body.version, before);
    const pushed = await w.next('config', 1000);
    assert.equal(pushed.data.version, r.body.version);
    const file = join(s.configDir, 'applied', 'DestinationRule.default.ratings.yaml');
    const written = parse(readFileSync(file, 'utf8'));
    assert.equal(written.spec.host, 'ratings');
    assert.equal(written.metadata.namespace, 'default');
    assert.ok(written.metadata.creationTimestamp);
    assert.deepEqual(readdirSync(join(s.configDir, 'applied')), ['DestinationRule.default.ratings.yaml'], 'no temp files left');

    // The watcher reloading the file it just wrote is a no-op: no new version, no push. Rather
    // than sleeping through the watcher's debounce, a probe file is added and removed: once the
    // version is back to the applied one, every file event (ours included) has been reloaded, and
    // had reloading applied/ changed anything, the version could never come back.
    const versions = () => w.events.filter((e) => e.event === 'config').map((e) => (e.data as { version: string }).version);
    const probe = join(s.configDir, 'probe.yaml');
    writeFileSync(probe, reviewsVs('3s', 'probe'));
    const withProbe = await until(() => (s.cp.status().configVersion !== r.body.version ? s.cp.status().configVersion : undefined), 3000, 'the probe to load');
    rmSync(probe);
    await until(() => s.cp.status().configVersion === r.body.version, 3000, 'the version to come back once the probe is gone');
    await until(() => versions().at(-1) === r.body.version, 3000, 'the push of the version without the probe');
    const pushed2 = versions().slice(2);
    assert.ok(
      pushed2.every((v) => v === withProbe || v === r.body.version),
      `after the apply, only the probe's version and the applied one were pushed: ${pushed2.join(', ')}`,
    );

    const again = await post(RATINGS_DR);
    assert.deepEqual(again.body.applied, [{ ref: 'DestinationRule default/ratings', action: 'unchanged' }]);
    assert.equal(again.body.version, r.body.version);
    const changed = await post(RATINGS_DR.replace('name: v1, labels: {version: v1}', 'name: v2, labels: {version: v2}'));
    assert.deepEqual(changed.body.applied, [{ ref: 'DestinationRule default/ratings', action: 'configured' }]);
    assert.equal(parse(readFileSync(file, 'utf8')).metadata.creationTimestamp, written.metadata.creationTimestamp, 'creation time is kept');
    w.close();
  });

  it('applies JSON bodies and several documents at once', async () => {
    const body = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'ratings-vs', namespace: 'default' }, spec: { hosts: ['ratings'], http: [{ route: [{ destination: { host: 'ratings' } }] }] } };
    const r = await api(s.url, 'POST', '/v1/resources', { token: s.admin, body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.applied, [{ ref: 'VirtualService default/ratings-vs', action: 'created' }]);
    const ap = 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: all}\nspec: {selector: {}, action: ALLOW, rules: [{}]}\n';
    const two = await post(`${ap}---\n${RATINGS_DR}`);
    assert.equal(two.status, 200, JSON.stringify(two.body));
    assert.equal(two.body.applied.length, 2);
    assert.ok(two.body.warnings.some((w: string) => /AuthorizationPolicy default\/all: spec\.selector: selector has no matchLabels/.test(w)), JSON.stringify(two.body.warnings));
  });

  it('a VirtualService applied for a host one of the directory\'s own files routes is the newer one: the file\'s keeps routing (Istio: the older wins)', async () => {
    const canary = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews-canary', namespace: 'default' }, spec: { hosts: ['reviews'], http: [{ timeout: '9s', route: [{ destination: { host: 'reviews' } }] }] } };
    const r = await api(s.url, 'POST', '/v1/resources', { token: s.admin, body: canary });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.warnings, [
      'error IST0109: <apply>[0]: VirtualService default/reviews-canary: spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews (older: this one is ignored for that host). Istio calls this undefined behaviour; merge them into one VirtualService',
    ]);
    // The file's resource counts as created when its file was last written; the applied one when applied.
    const got = await api(s.url, 'GET', '/v1/resources/VirtualService/default/reviews', { token: s.admin });
    assert.match(String((got.body as { metadata?: { creationTimestamp?: string } }).metadata?.creationTimestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal((await api(s.url, 'DELETE', '/v1/resources/VirtualService/default/reviews-canary', { token: s.admin })).status, 200);
  });

  it('a VirtualService claiming a host another one has: the answer warns, naming both and which wins, whichever is applied', async () => {
    const vs = (name: string, timeout: string) => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: 'default' }, spec: { hosts: ['ratings'], http: [{ timeout, route: [{ destination: { host: 'ratings' } }] }] } });
    // ratings-vs (applied above) is older: the canary is ignored for ratings.
    const canary = await api(s.url, 'POST', '/v1/resources', { token: s.admin, body: vs('ratings-canary', '1s') });
    assert.equal(canary.status, 200, JSON.stringify(canary.body));
    assert.deepEqual(canary.body.warnings, [
      'error IST0109: <apply>[0]: VirtualService default/ratings-canary: spec.hosts[0]: host ratings.default.svc.cluster.local is also claimed by VirtualService default/ratings-vs (older: this one is ignored for that host). Istio calls this undefined behaviour; merge them into one VirtualService',
    ]);
    // Changing the older one: its answer says it wins over the canary.
    const older = await api(s.url, 'POST', '/v1/resources', { token: s.admin, body: vs('ratings-vs', '2s') });
    assert.equal(older.status, 200, JSON.stringify(older.body));
    assert.deepEqual(older.body.applied, [{ ref: 'VirtualService default/ratings-vs', action: 'configured' }]);
    assert.deepEqual(older.body.warnings, [
      'error IST0109: <apply>[0]: VirtualService default/ratings-vs: spec.hosts[0]: host ratings.default.svc.cluster.local is also claimed by VirtualService default/ratings-canary (newer: it is ignored for that host). Istio calls this undefined behaviour; merge them into one VirtualService',
    ]);
    // An unrelated apply carries neither warning.
    const other = await post(RATINGS_DR);
    assert.deepEqual(other.body.warnings, []);
    assert.equal((await api(s.url, 'DELETE', '/v1/resources/VirtualService/default/ratings-canary', { token: s.admin })).status, 200);
  });

  it('refuses an invalid apply with 400 INVALID and every issue; nothing changes', async () => {
    const version = s.cp.status().configVersion;
    const r = await post(`${reviewsVs('soon', 'bad-vs')}---\n${RATINGS_DR.replace('host: ratings', 'host: nowhere')}`);
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'INVALID');
    const issues = r.body.error.issues.join('\n');
    assert.match(issues, /VirtualService default\/bad-vs: spec\.http\[0\]\.timeout: invalid duration "soon"/);
    assert.equal(s.cp.status().configVersion, version);
    assert.ok(!existsSync(join(s.configDir, 'applied', 'VirtualService.default.bad-vs.yaml')));
    assert.match(s.cp.status().rejections[0]!.origin, /^apply by admin/);
    const yaml = await post('kind: [unclosed');
    assert.equal(yaml.status, 400);
    assert.match(yaml.body.error.issues[0], /invalid YAML/);
    const gw = await post('apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {}\n');
    assert.equal(gw.status, 400);
  });

  it('409 CONFLICT naming the file when replacing or deleting a resource from a user file', async () => {
    const r = await post(reviewsVs('9s'));
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'CONFLICT');
    assert.match(r.body.error.message, /VirtualService default\/reviews is defined in .*reviews\.yaml/);
    const d = await api(s.url, 'DELETE', '/v1/resources/VirtualService/default/reviews', { token: s.admin });
    assert.equal(d.status, 409);
    assert.match(d.body.error.message, /reviews\.yaml/);
  });

  it('a backup restored (everything `get` lists applied again): the user files\' resources as they are are unchanged, the applied ones come back; one changed from its file is still 409', async () => {
    const created = await post(RATINGS_DR.replace('name: ratings', 'name: ratings-backup'));
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const listed = (await api(s.url, 'GET', '/v1/resources', { token: s.admin })).body.resources as { kind: string; metadata: { name: string; namespace: string } }[];
    const backup = listed.map((r) => stringify(r)).join('---\n');
    assert.equal((await api(s.url, 'DELETE', '/v1/resources/DestinationRule/default/ratings-backup', { token: s.admin })).status, 200);
    const restored = await post(backup);
    assert.equal(restored.status, 200, JSON.stringify(restored.body));
    const actions = new Map((restored.body.applied as { ref: string; action: string }[]).map((a) => [a.ref, a.action]));
    assert.equal(actions.get('DestinationRule default/ratings-backup'), 'created');
    assert.equal(actions.get('VirtualService default/reviews'), 'unchanged', 'defined in reviews.yaml, applied as it is');
    assert.equal(actions.size, listed.length);
    assert.equal((await api(s.url, 'GET', '/v1/resources/DestinationRule/default/ratings-backup', { token: s.admin })).status, 200);
    const changed = await post(backup.replace(/timeout: 1s/, 'timeout: 7s'));
    assert.equal(changed.status, 409);
    assert.match(changed.body.error.message, /VirtualService default\/reviews is defined in .*reviews\.yaml/);
    assert.equal((await api(s.url, 'DELETE', '/v1/resources/DestinationRule/default/ratings-backup', { token: s.admin })).status, 200);
  });

  it('gets lists (by kind and namespace, case-insensitive kinds) and single resources', async () => {
    const all = await api(s.url, 'GET', '/v1/resources', { token: s.admin });
    assert.equal(all.status, 200);
    assert.ok(all.body.resources.length >= 3);
    const vs = await api(s.url, 'GET', '/v1/resources?kind=virtualservice&namespace=default', { token: s.admin });
    assert.ok(vs.body.resources.every((r: { kind: string }) => r.kind === 'VirtualService'));
    assert.equal((await api(s.url, 'GET', '/v1/resources?namespace=prod', { token: s.admin })).body.resources.length, 0);
    const one = await api(s.url, 'GET', '/v1/resources/DestinationRule/default/ratings', { token: s.admin });
    assert.equal(one.body.kind, 'DestinationRule');
    assert.equal(one.body.source, undefined);
    const missing = await api(s.url, 'GET', '/v1/resources/dr/default/nope', { token: s.admin });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'NOT_FOUND');
  });

  it('deletes an applied resource (file removed, change pushed); 404 when absent', async () => {
    const version = s.cp.status().configVersion;
    const d = await api(s.url, 'DELETE', '/v1/resources/VirtualService/default/ratings-vs', { token: s.admin });
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.equal(d.body.deleted, true);
    assert.notEqual(d.body.version, version);
    assert.ok(!existsSync(join(s.configDir, 'applied', 'VirtualService.default.ratings-vs.yaml')));
    assert.equal((await api(s.url, 'DELETE', '/v1/resources/VirtualService/default/ratings-vs', { token: s.admin })).status, 404);
  });
});

describe('FileConfigStore', () => {
  it('start() rejects with every issue when the first load fails', async () => {
    const t = tempDir();
    writeFileSync(join(t.dir, 'a.yaml'), `${reviewsVs('x1')}---\n${reviewsVs('x2', 'other')}`);
    const store = new FileConfigStore({ dir: t.dir, watch: false });
    await assert.rejects(store.start(), (err: Error & { issues: unknown[] }) => {
      assert.match(err.message, /invalid duration "x1"/);
      assert.match(err.message, /invalid duration "x2"/);
      return true;
    });
    t.cleanup();
  });

  it('reloads a directory change after the debounce and fires onChange once', async () => {
    const t = tempDir();
    writeFileSync(join(t.dir, 'services.yaml'), SERVICES_YAML);
    const store = new FileConfigStore({ dir: t.dir, debounceMs: 30 });
    await store.start();
    const versions: string[] = [];
    store.onChange((st) => versions.push(st.version));
    writeFileSync(join(t.dir, 'reviews.yaml'), reviewsVs('1s'));
    writeFileSync(join(t.dir, 'reviews.yaml'), reviewsVs('2s'));
    await until(() => versions.length === 1, 2000, 'reload');
    assert.equal(store.current().resources.length, 2);
    const vs = store.current().resources.find((x) => x.kind === 'VirtualService') as { spec: { http: { timeout: string }[] } } | undefined;
    assert.equal(vs?.spec.http[0]?.timeout, '2s', 'the reload saw the burst\'s last write');
    // A probe file instead of a sleep: its change is reloaded after any the burst could still
    // cause, so exactly one more onChange means the burst fired once.
    writeFileSync(join(t.dir, 'probe.yaml'), reviewsVs('3s', 'probe'));
    await until(() => store.current().resources.length === 3, 2000, 'the probe to load');
    assert.equal(versions.length, 2, `onChange fired ${versions.length} times for the burst and the probe`);
    await store.close();
    t.cleanup();
  });

  it('logs the validation warnings of the directory once each (a TCP route is not ignored without a word)', async () => {
    const t = tempDir();
    const tcp = (host: string) => `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: db, namespace: default}\nspec:\n  hosts: [db.example.com]\n  tcp:\n  - route: [{destination: {host: ${host}}}]\n`;
    writeFileSync(join(t.dir, 'db.yaml'), tcp('db.example.com'));
    const lines: string[] = [];
    const store = new FileConfigStore({ dir: t.dir, watch: false, logger: { warn: (m: string) => lines.push(m), info: () => undefined } as never });
    await store.start();
    const warned = () => lines.filter((l) => /validation warning/.test(l));
    assert.equal(warned().length, 1, lines.join('\n'));
    assert.match(warned()[0] as string, /^meshlet: config version \w+ applied with 1 validation warning\(s\):\n.*db\.yaml.*not supported by meshlet: spec\.tcp/s);
    writeFileSync(join(t.dir, 'db.yaml'), tcp('other.example.com'));
    await store.reload();
    assert.equal(warned().length, 1, 'the same warning is not logged again');
    writeFileSync(join(t.dir, 'dr.yaml'), 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: db, namespace: default}\nspec:\n  host: db.example.com\n  trafficPolicy: {proxyProtocol: {version: V2}}\n');
    await store.reload();
    assert.equal(warned().length, 2, lines.join('\n'));
    assert.match(warned()[1] as string, /proxyProtocol/);
    await store.close();
    t.cleanup();
  });
});
