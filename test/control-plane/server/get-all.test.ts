/**
 * `meshlet get` of several kinds at once, as kubectl users type it: comma-separated kinds
 * (`kubectl get virtualservices,destinationrules`), and `all`, every config kind the control plane
 * serves — so that a backup, `meshlet get all -A -o yaml > backup.yaml`, applied again with
 * `meshlet apply -f backup.yaml` changes nothing (no new config version), and restores the config
 * into an empty control plane.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import { startControlPlane } from '../../../src/control-plane-server/server.ts';
import { meshletAsync } from '../../cli/helpers.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { api, reviewsVs, SERVICES_YAML, startTestServer, tempDir, type TestServer } from './helpers.ts';

const APPLIED = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: prod}
spec: {}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: prod}
spec: {mtls: {mode: STRICT}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: default}
spec: {tracing: [{randomSamplingPercentage: 10}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: prod}
spec: {ports: [{port: 9080, name: http}]}
`;

let s: TestServer;
const t = tempDir('meshlet-get-all-');
const cli = (args: string[], server: TestServer = s) => meshletAsync(args, { env: { MESHLET_CONTROL_PLANE: server.url, MESHLET_TOKEN: server.admin } });
const versionOf = async (server: TestServer): Promise<string> => (await api(server.url, 'GET', '/v1/resources', { token: server.admin })).body.version;

before(async () => {
  // Two resources from config files, the rest applied.
  s = await startTestServer({ 'services.yaml': SERVICES_YAML, 'reviews.yaml': reviewsVs('1s') });
  writeFileSync(join(t.dir, 'applied.yaml'), APPLIED);
  const r = await cli(['apply', '-f', join(t.dir, 'applied.yaml')]);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await s.close();
  t.cleanup();
});

describe('meshlet get <kind>,<kind> and get all', () => {
  it('get all -A -o yaml lists every kind, from files and applied, in every namespace', async () => {
    const r = await cli(['get', 'all', '-A', '-o', 'yaml']);
    assert.equal(r.code, 0, r.stderr);
    const list = parse(r.stdout) as { kind: string; items: { kind: string; metadata: { name: string; namespace: string } }[] };
    assert.equal(list.kind, 'List');
    assert.deepEqual(list.items.map((i) => `${i.kind} ${i.metadata.namespace}/${i.metadata.name}`).sort(), [
      'AuthorizationPolicy prod/deny-all',
      'DestinationRule default/reviews',
      'PeerAuthentication prod/default',
      'Service prod/ratings',
      'ServiceEntry default/services',
      'Telemetry default/mesh-default',
      'VirtualService default/reviews',
    ]);
  });

  it('the backup applied again changes nothing: every resource unchanged, the same config version', async () => {
    const backup = join(t.dir, 'backup.yaml');
    const got = await cli(['get', 'all', '-A', '-o', 'yaml']);
    writeFileSync(backup, got.stdout);
    const before = await versionOf(s);
    const r = await cli(['apply', '-f', backup]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 7, r.stdout);
    for (const l of lines) assert.match(l, / unchanged$/);
    assert.equal(await versionOf(s), before);
  });

  it('the backup restores the config into an empty control plane', async () => {
    const backup = join(t.dir, 'backup.yaml');
    const fresh = await startTestServer({});
    try {
      const r = await cli(['apply', '-f', backup], fresh);
      assert.equal(r.code, 0, r.stderr);
      // The same resources (their order and creation times aside).
      const strip = (text: string) =>
        (parse(text) as { items: { kind: string; metadata: Record<string, unknown> }[] }).items
          .map((i) => ({ ...i, metadata: { ...i.metadata, creationTimestamp: undefined } as Record<string, unknown> }))
          .sort((a, b) => `${a.kind}/${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.namespace}/${b.metadata.name}`));
      assert.deepEqual(strip((await cli(['get', 'all', '-o', 'yaml'], fresh)).stdout), strip((await cli(['get', 'all', '-o', 'yaml'])).stdout));
    } finally {
      await fresh.close();
    }
  });

  it('comma-separated kinds (any spelling) list those kinds; -n narrows them', async () => {
    const r = await cli(['get', 'vs,DestinationRules,ap']);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/).slice(0, 3).join(' '));
    assert.deepEqual(rows.sort(), ['default reviews DestinationRule', 'default reviews VirtualService', 'prod deny-all AuthorizationPolicy']);
    const prod = await cli(['get', 'vs,ap', '-n', 'prod', '-o', 'json']);
    assert.deepEqual((JSON.parse(prod.stdout) as { items: { kind: string }[] }).items.map((i) => i.kind), ['AuthorizationPolicy']);
    const none = await cli(['get', 'wg,se', '-n', 'prod']);
    assert.equal(none.code, 0);
    assert.equal(none.stderr, 'No resources found in namespace prod.\n');
  });

  it('an unknown kind in a list, an empty one, or a name with several kinds is a usage error (exit 2)', async () => {
    const unknown = await cli(['get', 'vs,gateways']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown kind "gateways"; the control plane serves VirtualService \(vs\)/);
    const empty = await cli(['get', 'vs,']);
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /an empty kind in "vs,"/);
    for (const kinds of ['all', 'vs,dr']) {
      const named = await cli(['get', kinds, 'reviews']);
      assert.equal(named.code, 2);
      assert.match(named.stderr, new RegExp(`a resource name goes with one kind, not "${kinds}"`));
    }
  });
});

describe('the backup round trip over etcd', { skip: skipWithout('etcd'), timeout: 60_000 }, () => {
  let etcd: EtcdServer;
  let stores: EtcdStores;
  let server: TestServer;
  const d = tempDir('meshlet-get-all-etcd-');

  before(async () => {
    etcd = await startEtcd();
    const logger = { warn: () => undefined, info: () => undefined };
    stores = await openEtcd(etcd.endpoints, { logger });
    const cp = await startControlPlane({ ...stores, dataDir: d.dir, host: '127.0.0.1', port: 0, logger });
    server = { cp, url: cp.url, configDir: '', dataDir: d.dir, admin: await cp.mintToken({ admin: true }), logs: [], close: () => cp.close() };
    writeFileSync(join(d.dir, 'applied.yaml'), `${SERVICES_YAML}---\n${reviewsVs('1s')}---\n${APPLIED}`);
    const r = await cli(['apply', '-f', join(d.dir, 'applied.yaml')], server);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await server?.close();
    await stores?.close();
    await etcd?.stop();
    d.cleanup();
  });

  it('get all -A -o yaml, applied again: every resource unchanged, the same config version', async () => {
    const backup = join(d.dir, 'backup.yaml');
    const got = await cli(['get', 'all', '-A', '-o', 'yaml'], server);
    assert.equal(got.code, 0, got.stderr);
    writeFileSync(backup, got.stdout);
    const before = await versionOf(server);
    const r = await cli(['apply', '-f', backup], server);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 7, r.stdout);
    for (const l of lines) assert.match(l, / unchanged$/);
    assert.equal(await versionOf(server), before);
  });
});
