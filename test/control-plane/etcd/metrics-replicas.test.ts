/**
 * Two control-plane replicas on one real etcd: each serves its own `/metrics` — what it pushed,
 * who watches it, the ACKs and certificate requests it answered — while what they share through
 * etcd (config, registry, CA) reads the same on both.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import { type ControlPlane, startControlPlane } from '../../../src/control-plane-server/server.ts';
import { createMesh, type Mesh } from '../../../src/index.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { type Family, parseExposition, sampleValue } from '../../helpers/prometheus-text.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { serviceEntry, virtualService } from '../../helpers/upstreams.ts';
import { quietLogger, until, waitFor } from '../client-helpers.ts';

async function scrape(url: string): Promise<Map<string, Family>> {
  const res = await request(`${url}/metrics`, { reset: true });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200);
  return parseExposition(text);
}

describe('each control-plane replica serves its own /metrics (etcd)', { skip: skipWithout('etcd'), timeout: 60_000 }, () => {
  let etcd: EtcdServer;
  let dir: string;
  const stores: EtcdStores[] = [];
  const replicas: ControlPlane[] = [];
  let mesh: Mesh | undefined;

  before(async () => {
    etcd = await startEtcd();
    dir = await mkdtemp(join(tmpdir(), 'meshlet-metrics-replicas-'));
    for (const name of ['a', 'b']) {
      const s = await openEtcd(etcd.endpoints, { logger: quietLogger });
      stores.push(s);
      replicas.push(await startControlPlane({ ...s, dataDir: join(dir, name), host: '127.0.0.1', port: 0, logger: quietLogger }));
    }
  });

  after(async () => {
    await mesh?.close();
    for (const r of replicas) await r.close();
    for (const s of stores) await s.close();
    await etcd?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('a mesh on replica a: a counts its stream, pushes, ACKs and certificate; both count the change and read the same config, registry and CA', async () => {
    const [a, b] = replicas as [ControlPlane, ControlPlane];
    const admin = await b.mintToken({ admin: true });
    const apply = async (resource: object) => {
      const res = await request(`${b.url}/v1/resources`, { method: 'POST', reset: true, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify(resource) });
      assert.equal(res.statusCode, 200, await res.body.text());
    };
    await apply(serviceEntry('svc', 'svc.example', 80, [{ port: 1 }]));
    await until(() => a.status().configVersion === b.status().configVersion, 'both replicas to serve the entry');
    const token = await a.mintToken({ service: 'productpage', namespace: 'default' });
    mesh = await createMesh({ service: 'productpage', controlPlane: a.url, token, logger: quietLogger });
    await until(() => a.status().workloads.some((w) => w.acked.config !== undefined), 'the ACK');
    const before = mesh.configVersion;
    const changed = waitFor<{ version: string }>(mesh, 'config', (e) => e.version !== before);
    await apply(virtualService('svc', ['svc.example'], [{ route: [{ destination: { host: 'svc.example' } }] }]));
    const version = (await changed).version;
    await until(() => a.status().workloads.some((w) => w.acked.config?.version === version), 'the ACK of the change');
    await until(() => b.status().configVersion === version, 'b to serve it too');

    const [fa, fb] = [await scrape(a.url), await scrape(b.url)];
    const both = (name: string, labels: Record<string, string> = {}) => [sampleValue(fa, name, labels), sampleValue(fb, name, labels)];
    assert.deepEqual(both('pilot_xds'), [1, 0], 'the stream is on a');
    assert.deepEqual(both('pilot_xds_pushes', { type: 'config' }), [2, 0]);
    assert.deepEqual(both('meshlet_control_plane_acks_total', { type: 'config', status: 'ACK' }), [2, 0]);
    assert.deepEqual(both('meshlet_control_plane_propagation_seconds_count', { type: 'config' }), [1, undefined]);
    assert.deepEqual(both('citadel_server_success_cert_issuance_count'), [1, 0], 'a signed the certificate');
    assert.deepEqual(both('meshlet_control_plane_config_changes_total'), [2, 2], 'each saw both changes through etcd');
    assert.deepEqual(both('meshlet_control_plane_config_version'), [Number.parseInt(version, 16), Number.parseInt(version, 16)]);
    assert.deepEqual(both('meshlet_control_plane_config_resources', { kind: 'VirtualService' }), [1, 1]);
    const rootA = sampleValue(fa, 'citadel_server_root_cert_expiry_timestamp');
    assert.ok(rootA !== undefined && rootA > Date.now() / 1000);
    assert.deepEqual(both('citadel_server_root_cert_expiry_timestamp'), [rootA, rootA], 'one CA, shared');

    await mesh.register({ ports: { http: 9080 }, address: '127.0.0.1' });
    await until(() => b.status().registered === 1, 'b to see the registration');
    const [ga, gb] = [await scrape(a.url), await scrape(b.url)];
    assert.deepEqual([sampleValue(ga, 'meshlet_control_plane_registered_workloads'), sampleValue(gb, 'meshlet_control_plane_registered_workloads')], [1, 1]);
  });
});
