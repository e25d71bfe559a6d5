/**
 * Bad values written straight into etcd (`etcdctl put`), against the real control plane over
 * real etcd (issue 11, point 14): a replica starts with the valid values and serves them, the
 * status names every skipped key and why (the source is unhealthy), valid applies go through, an
 * admin repairs through the API (meshlet delete / apply), and the status becomes healthy again.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { WireResource } from '../../../src/control-plane/protocol.ts';
import { EtcdClient } from '../../../src/control-plane-server/etcd/client.ts';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import { type ControlPlane, startControlPlane } from '../../../src/control-plane-server/server.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { api, type Json, until, watch } from '../server/helpers.ts';

const MAIN = new URL('../../../src/cli/main.ts', import.meta.url).pathname;
const NET = 'networking.istio.io/v1';
const serviceEntry = (name: string): WireResource => ({
  apiVersion: NET,
  kind: 'ServiceEntry',
  metadata: { name, namespace: 'default' },
  spec: { hosts: [`${name}.example.com`], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' },
});
const ratingsService: WireResource = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'ratings', namespace: 'default' },
  spec: { selector: { app: 'ratings' }, ports: [{ port: 9080, name: 'http' }] },
};

describe('bad values in etcd, through the control plane', { skip: skipWithout('etcd'), timeout: 60_000 }, () => {
  let etcd: EtcdServer;
  let raw: EtcdClient;
  let stores: EtcdStores;
  let cp: ControlPlane;
  let admin: string;
  let dataDir: string;
  const logs: string[] = [];

  before(async () => {
    etcd = await startEtcd();
    raw = new EtcdClient(etcd.endpoints);
    dataDir = await mkdtemp(join(tmpdir(), 'meshlet-bad-values-'));
    // Written before any replica runs: a good resource, a non-JSON value, an invalid resource, and a broken registry record.
    await raw.put('/meshlet/config/ServiceEntry/default/good', JSON.stringify(serviceEntry('good')));
    await raw.put('/meshlet/config/Service/default/ratings', JSON.stringify(ratingsService));
    await raw.put('/meshlet/config/ServiceEntry/default/junk', 'not json at all');
    await raw.put('/meshlet/config/VirtualService/default/broken', JSON.stringify({ apiVersion: NET, kind: 'VirtualService', metadata: { name: 'broken', namespace: 'default' }, spec: { hosts: ['good.example.com'], http: [{ timeout: 'soon' }] } }));
    await raw.put('/meshlet/registry/default/ghost', JSON.stringify({ entry: { kind: 'WorkloadEntry', metadata: { name: 'ghost', namespace: 'default' }, spec: { address: '10.0.0.66', ports: { http: 70000 }, labels: { app: 'ratings' } } }, service: 'ratings', leaseMs: 30000 }));
    const logger = { warn: (m: string) => logs.push(m), info: () => undefined };
    stores = await openEtcd(etcd.endpoints, { logger });
    cp = await startControlPlane({ ...stores, dataDir, host: '127.0.0.1', port: 0, logger });
    admin = await cp.mintToken({ admin: true });
  });
  after(async () => {
    await cp?.close();
    await stores?.close();
    await raw?.close();
    await etcd?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const status = async (): Promise<Json> => (await api(cp.url, 'GET', '/status', { token: admin })).body;

  it('a replica starts on them, serves the valid values, and its status names each skipped key and why', async () => {
    const doc = await status();
    assert.equal(doc.source.healthy, false);
    assert.match(doc.source.error, /^2 stored value\(s\) skipped as invalid: .*; 1 registry record\(s\) skipped as invalid: \/meshlet\/registry\/default\/ghost$/);
    const skipped = new Map<string, Json>(doc.source.skipped.map((v: Json) => [v.key, v]));
    assert.deepEqual([...skipped.keys()].sort(), ['/meshlet/config/ServiceEntry/default/junk', '/meshlet/config/VirtualService/default/broken', '/meshlet/registry/default/ghost']);
    assert.deepEqual(skipped.get('/meshlet/config/ServiceEntry/default/junk'), { key: '/meshlet/config/ServiceEntry/default/junk', resource: 'ServiceEntry default/junk', reasons: ['the value is not JSON'] });
    assert.match(skipped.get('/meshlet/config/VirtualService/default/broken').reasons.join(), /invalid duration "soon"/);
    assert.match(skipped.get('/meshlet/registry/default/ghost').reasons.join(), /not a valid WorkloadEntry/);
    // What a workload receives: the valid config, and no broken registry record.
    const token = await cp.mintToken({ service: 'productpage', namespace: 'default' });
    const w = await watch(cp.url, 'service=productpage&namespace=default', { token });
    const config = await w.next('config');
    assert.deepEqual(config.data.resources.map((r: WireResource) => `${r.kind} ${r.metadata.name}`).sort(), ['Service ratings', 'ServiceEntry good']);
    assert.deepEqual((await w.next('endpoints')).data.workloads, []);
    w.close();
  });

  it('meshlet status prints the skipped values with their keys', async () => {
    // Not spawnSync: the control plane runs in this process and must answer.
    const r = await promisify(execFile)(process.execPath, [MAIN, 'status'], { encoding: 'utf8', env: { ...process.env, MESHLET_CONTROL_PLANE: cp.url, MESHLET_TOKEN: admin } });
    assert.match(r.stdout, /UNHEALTHY: 2 stored value\(s\) skipped as invalid/);
    assert.match(r.stdout, /Stored values skipped as invalid \(not served; repair with meshlet apply or meshlet delete\):\n {2}\/meshlet\/config\/ServiceEntry\/default\/junk \(ServiceEntry default\/junk\)\n {4}the value is not JSON/);
  });

  it('a valid apply goes through next to them; the answer warns about them', async () => {
    const r = await api(cp.url, 'POST', '/v1/resources', { token: admin, body: serviceEntry('other') });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.applied, [{ ref: 'ServiceEntry default/other', action: 'created' }]);
    assert.ok(r.body.warnings.some((x: string) => x.startsWith('/meshlet/config/ServiceEntry/default/junk: skipped, not served')));
    // The repair hint is a command that works (docs/cli.md: meshlet delete <kind> <name> [-n <ns>]; apply takes -f).
    const junk = r.body.warnings.find((x: string) => x.startsWith('/meshlet/config/ServiceEntry/default/junk:')) as string;
    assert.match(junk, /\(repair it: meshlet delete ServiceEntry junk -n default, or meshlet apply -f <a file with a valid ServiceEntry default\/junk>\)$/);
  });

  it('an admin repairs through the API: delete removes a bad key, apply replaces one, and a bad registry record is deregistered', async () => {
    // The command the warnings give, run as given.
    const deleted = await promisify(execFile)(process.execPath, [MAIN, 'delete', 'ServiceEntry', 'junk', '-n', 'default'], { encoding: 'utf8', env: { ...process.env, MESHLET_CONTROL_PLANE: cp.url, MESHLET_TOKEN: admin } });
    assert.equal(deleted.stdout.trim(), 'ServiceEntry default/junk deleted');
    const fixed = { apiVersion: NET, kind: 'VirtualService', metadata: { name: 'broken', namespace: 'default' }, spec: { hosts: ['good.example.com'], http: [{ timeout: '2s', route: [{ destination: { host: 'good.example.com' } }] }] } };
    const applied = await api(cp.url, 'POST', '/v1/resources', { token: admin, body: fixed });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    assert.deepEqual(applied.body.applied, [{ ref: 'VirtualService default/broken', action: 'configured' }]);
    // A workload token may not remove another's record, broken or not; an admin may.
    const other = await cp.mintToken({ service: 'details', namespace: 'default' });
    assert.equal((await api(cp.url, 'DELETE', '/v1/workloads/default/ghost', { token: admin })).status, 200);
    assert.equal((await api(cp.url, 'DELETE', '/v1/workloads/default/ghost', { token: other })).status, 404);
    const doc = await until(async () => {
      const d = await status();
      return d.source.healthy ? d : undefined;
    }, 5000, 'a healthy source');
    assert.equal(doc.source.skipped, undefined);
    assert.equal(doc.source.error, undefined);
    const served = (await api(cp.url, 'GET', '/v1/resources', { token: admin })).body.resources.map((r: WireResource) => `${r.kind} ${r.metadata.name}`).sort();
    assert.deepEqual(served, ['Service ratings', 'ServiceEntry good', 'ServiceEntry other', 'VirtualService broken']);
  });

  it('a bad value written while running is skipped at once: the rest keeps being served, and the log names the key', async () => {
    const before = (await status()).configVersion;
    await raw.put('/meshlet/config/ServiceEntry/default/good', '{"kind": "ServiceEntry"');
    const doc = await until(async () => {
      const d = await status();
      return d.source.skipped?.length === 1 ? d : undefined;
    }, 5000, 'the skip');
    assert.equal(doc.source.skipped[0].key, '/meshlet/config/ServiceEntry/default/good');
    // As istiod does with an object that became invalid: it is no longer served; the others are.
    assert.notEqual(doc.configVersion, before);
    const served = (await api(cp.url, 'GET', '/v1/resources', { token: admin })).body.resources.map((r: WireResource) => r.metadata.name).sort();
    assert.deepEqual(served, ['broken', 'other', 'ratings']);
    assert.ok(logs.some((l) => l.includes('skipping 1 invalid stored value(s)') && l.includes('/meshlet/config/ServiceEntry/default/good')));
    assert.ok(doc.rejections.some((r: Json) => r.reasons.some((x: string) => x.startsWith('/meshlet/config/ServiceEntry/default/good: the value is not JSON'))));
  });
});
