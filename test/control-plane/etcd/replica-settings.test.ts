/**
 * Replicas that disagree on `--trust-domain` or `--root-namespace` (found by the HA review): a
 * replica started with `--trust-domain example.org` next to replicas of `cluster.local` joined
 * them silently ("CA: using the CA O=cluster.local for trust domain example.org") and issued
 * certificates of another trust domain, which the workloads of the other replicas refuse; one with
 * another `--root-namespace` left the mesh-wide policies (a DENY in istio-system) out of what its
 * workloads get. istiod replicas share one MeshConfig; meshlet replicas now refuse to start on
 * settings that differ from the ones stored by the first replica.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import { isMeshletError } from '../../../src/core/errors.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { startTestServer, type TestServer } from '../server/helpers.ts';

describe('settings every replica must share', { skip: skipWithout('etcd') }, () => {
  let etcd: EtcdServer;
  const stores: EtcdStores[] = [];
  const servers: TestServer[] = [];
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    for (const s of servers) await s.close();
    for (const s of stores) await s.close();
    await etcd?.stop();
  });

  async function replica(options: { trustDomain?: string; rootNamespace?: string }): Promise<TestServer> {
    const st = await openEtcd(etcd.endpoints, { prefix: '/settings' });
    stores.push(st);
    const s = await startTestServer(undefined, { store: st.store, registry: st.registry, shared: st.shared, ...options });
    servers.push(s);
    return s;
  }

  async function refused(options: { trustDomain?: string; rootNamespace?: string }): Promise<string> {
    const err = await replica(options).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isMeshletError(err), `expected a refusal, got ${String(err)}`);
    assert.equal(err.code, 'MESHLET_ERR_INVALID_ARG');
    return err.message;
  }

  it('a replica with the same settings (the defaults, given or not) joins', async () => {
    await replica({});
    await replica({ trustDomain: 'cluster.local', rootNamespace: 'istio-system' });
    assert.equal(servers.length, 2);
  });

  it('a replica with another --trust-domain does not start, naming both and how to change them', async () => {
    const message = await refused({ trustDomain: 'example.org' });
    assert.match(message, /^the replicas that share this etcd run with --trust-domain cluster\.local \(this one: example\.org\): every replica must have the same --trust-domain\. Start this one with --trust-domain cluster\.local; to change it for every replica, stop them all, delete <prefix>\/shared\/replica-settings/);
  });

  it('a replica with another --root-namespace does not start either', async () => {
    const message = await refused({ rootNamespace: 'mesh-system' });
    assert.match(message, /run with --root-namespace istio-system \(this one: mesh-system\)/);
    const both = await refused({ trustDomain: 'example.org', rootNamespace: 'mesh-system' });
    assert.match(both, /--trust-domain cluster\.local \(this one: example\.org\) and --root-namespace istio-system \(this one: mesh-system\)/);
  });
});
