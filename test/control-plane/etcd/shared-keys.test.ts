/**
 * The key material replicas share in etcd (the token signing key, the CA) against a replica's
 * data dir: a replica joining with a different CA and key keeps them beside (never overwrites
 * them) and warns naming both; deleting the shared signing key rotates it on every replica at
 * once — tokens of the old key are refused everywhere, streams they opened are ended, new tokens
 * minted from any replica's data dir work everywhere.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TokenAuthority } from '../../../src/control-plane-server/auth.ts';
import { ControlPlaneCa } from '../../../src/control-plane-server/ca/authority.ts';
import { EtcdClient } from '../../../src/control-plane-server/etcd/client.ts';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import { startEtcd, type EtcdServer } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { until } from '../../helpers/until.ts';
import { api, startTestServer, type TestServer, tempDir, watch } from '../server/helpers.ts';

describe('key material shared in etcd and the data dir', { skip: skipWithout('etcd') }, () => {
  let etcd: EtcdServer;
  const stores: EtcdStores[] = [];
  const servers: TestServer[] = [];
  const cleanups: (() => void)[] = [];
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    for (const s of servers) await s.close();
    for (const s of stores) await s.close();
    for (const c of cleanups) c();
    await etcd?.stop();
  });

  async function replica(prefix: string, dataDir?: string): Promise<TestServer> {
    const st = await openEtcd(etcd.endpoints, { prefix });
    stores.push(st);
    const s = await startTestServer(undefined, { store: st.store, registry: st.registry, shared: st.shared, ...(dataDir === undefined ? {} : { dataDir }) });
    servers.push(s);
    return s;
  }

  function scratch(): string {
    const t = tempDir('meshlet-shared-keys-');
    cleanups.push(t.cleanup);
    return t.dir;
  }

  it("a replica whose data dir holds another CA and signing key keeps them as *.replaced-<time> and warns naming both; the shared ones are used", async () => {
    // A single control plane's data dir: its own CA and key.
    const old = scratch();
    const ownCa = await ControlPlaneCa.open({ dataDir: old });
    const ownFingerprint = ownCa.info().signer.fingerprint;
    await ownCa.close();
    const ownKid = (await TokenAuthority.open(old)).keyId;
    const caBefore = readFileSync(join(old, 'ca.json'), 'utf8');
    const keyBefore = readFileSync(join(old, 'signing-key.jwk'), 'utf8');

    const a = await replica('/join');
    const joined = await replica('/join', old);
    const sharedFingerprint = a.cp.ca.info().signer.fingerprint;
    const sharedKid = JSON.parse(Buffer.from(a.admin.split('.')[0]!, 'base64url').toString()).kid as string;
    assert.notEqual(sharedFingerprint, ownFingerprint);
    assert.notEqual(sharedKid, ownKid);
    assert.equal(joined.cp.ca.info().signer.fingerprint, sharedFingerprint, 'the joining replica signs with the shared CA');
    assert.equal((await api(joined.url, 'GET', '/v1/ca', { token: a.admin })).status, 200, 'and takes the shared key');

    const files = readdirSync(old);
    const caBackup = files.find((f) => /^ca\.json\.replaced-\d{8}T\d{6}Z$/.test(f));
    const keyBackup = files.find((f) => /^signing-key\.jwk\.replaced-\d{8}T\d{6}Z$/.test(f));
    assert.ok(caBackup !== undefined && keyBackup !== undefined, files.join(' '));
    assert.equal(readFileSync(join(old, caBackup), 'utf8'), caBefore, 'the local CA, with its key, is kept');
    assert.equal(readFileSync(join(old, keyBackup), 'utf8'), keyBefore, 'the local signing key is kept');
    const logs = joined.logs.join('\n');
    assert.match(logs, new RegExp(`warn CA: .*${ownFingerprint}.*${sharedFingerprint}.*kept as ${join(old, caBackup).replaceAll('.', '\\.')}`));
    assert.match(logs, new RegExp(`warn token signing key: .*${ownKid}.*${sharedKid}.*kept as ${join(old, keyBackup).replaceAll('.', '\\.')}`));

    // Restarting on the same (now shared) material keeps nothing more.
    await joined.cp.close();
    const again = await replica('/join', old);
    assert.equal(readdirSync(old).filter((f) => f.includes('.replaced-')).length, 2);
    assert.doesNotMatch(again.logs.join('\n'), /kept as/);
  });

  it('deleting the shared signing key in etcd rotates it on every replica: old tokens refused everywhere (their streams ended), new ones accepted everywhere', async () => {
    const a = await replica('/rotate');
    const b = await replica('/rotate');
    const leaked = a.admin;
    const workload = await a.cp.mintToken({ service: 'reviews', namespace: 'default' });
    for (const s of [a, b]) assert.equal((await api(s.url, 'GET', '/v1/resources', { token: leaked })).status, 200);
    const stream = await watch(b.url, 'service=reviews&namespace=default', { token: workload });
    await stream.next('hello');
    after(() => stream.close());
    const kid = (await TokenAuthority.open(a.dataDir)).keyId;
    // Deleting a replica's key file and restarting it does not rotate with etcd: its start says where the key comes from.
    assert.match(b.logs.join('\n'), new RegExp(`info token signing key: using key ${kid}, the one the replicas share in etcd \\(to rotate it, delete it there`));

    const client = new EtcdClient(etcd.endpoints);
    try {
      assert.equal((await client.delete('/rotate/shared/signing-key')).deleted, 1);
    } finally {
      await client.close();
    }
    const kidOf = async (dir: string) => (await TokenAuthority.open(dir)).keyId;
    await until(async () => (await kidOf(a.dataDir)) !== kid && (await kidOf(b.dataDir)) === (await kidOf(a.dataDir)), 'both replicas on one new key', 10_000);
    let ended = false;
    void stream.ended.then(() => {
      ended = true;
    });
    await until(() => ended, 'the stream opened with the old token to be ended', 10_000);

    // A token minted from either replica's data dir (meshlet token --data-dir) works on both; the leaked ones nowhere.
    const fresh = await (await TokenAuthority.open(b.dataDir)).mintToken({ admin: true });
    for (const s of [a, b]) {
      const refused = await api(s.url, 'GET', '/v1/resources', { token: leaked });
      assert.equal(refused.status, 401, JSON.stringify(refused.body));
      assert.equal((await api(s.url, 'GET', '/v1/resources', { token: fresh })).status, 200);
      assert.equal((await watch(s.url, 'service=reviews&namespace=default', { token: workload })).status, 401);
    }
    assert.match([...a.logs, ...b.logs].join('\n'), new RegExp(`token signing key: the replicas' key changed \\(kid ${kid} → `));
  });
});
