/**
 * `--etcd` with `--config <dir>` (found by a review: the directory was applied once at start, not
 * watched; the API could delete or replace its resources, and every replica restart applied the
 * files again over what the API had changed). Now, as without etcd: the directory is watched and
 * each change applied into etcd; its resources are the files' — every replica, with or without
 * `--config`, refuses to change them through the API (409 naming the file); a restart touches
 * only what the files define.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { WireResource } from '../../../src/control-plane/protocol.ts';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import { isMeshletError } from '../../../src/core/errors.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';

const NET = 'networking.istio.io/v1';
const serviceEntry = (name: string, host = `${name}.example.com`): WireResource => ({
  apiVersion: NET,
  kind: 'ServiceEntry',
  metadata: { name, namespace: 'default' },
  spec: { hosts: [host], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' },
});

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Written as editors and kubectl do: a temp file renamed over the old one. */
async function writeAtomic(file: string, resource: WireResource): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.tmp`);
  await writeFile(tmp, stringify(resource));
  await rename(tmp, file);
}

const hosts = (s: EtcdStores, name: string): unknown => (s.store.current().resources.find((r) => r.kind === 'ServiceEntry' && r.metadata.name === name)?.spec as { hosts?: string[] } | undefined)?.hosts;

async function conflict(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(isMeshletError(err), `expected a refusal, got ${String(err)}`);
  assert.equal((err as { httpStatus?: number }).httpStatus, 409, (err as Error).message);
  return (err as Error).message;
}

describe('etcd with --config: the files are watched and theirs', { skip: skipWithout('etcd'), timeout: 60_000 }, () => {
  let etcd: EtcdServer;
  let dir: string;
  let mesh: string;
  let a: EtcdStores | undefined;
  let b: EtcdStores | undefined;
  const logs: string[] = [];
  const logger = { warn: (m: string) => logs.push(m), info: (m: string) => logs.push(m) };

  before(async () => {
    etcd = await startEtcd();
    dir = await mkdtemp(join(tmpdir(), 'meshlet-etcd-files-'));
    mesh = join(dir, 'mesh');
    await mkdir(mesh);
    await writeAtomic(join(mesh, 'se.yaml'), serviceEntry('x'));
    a = await openEtcd(etcd.endpoints, { configDir: mesh, logger });
    b = await openEtcd(etcd.endpoints, { logger }); // a replica without --config
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await etcd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('the files are applied at start; a replica without --config refuses to delete or replace them (409 naming the file)', async () => {
    assert.deepEqual(a!.files, { resources: 1, changed: 1 });
    await until('b to serve x', () => hosts(b!, 'x') !== undefined);
    const del = await conflict(b!.store.delete('ServiceEntry', 'default', 'x', 'delete by admin'));
    assert.match(del, /^ServiceEntry default\/x is defined in .*\/mesh\/se\.yaml \(the --config of the control plane on .+\); delete it there, not through the API$/);
    const put = await conflict(b!.store.apply([serviceEntry('x', 'z.example.com')], 'apply by admin'));
    assert.match(put, /^ServiceEntry default\/x is defined in .*\/mesh\/se\.yaml .*; change it there, not through the API$/);
    // The replica with the files refuses too; applying it as the file has it (a backup restored) is unchanged.
    await conflict(a!.store.delete('ServiceEntry', 'default', 'x', 'delete by admin'));
    const same = await b!.store.apply([serviceEntry('x')], 'apply by admin');
    assert.deepEqual(same.applied, [{ ref: 'ServiceEntry default/x', action: 'unchanged' }]);
    assert.deepEqual(hosts(b!, 'x'), ['x.example.com']);
  });

  it('an edit of a file (atomic rename) reaches every replica', async () => {
    await writeAtomic(join(mesh, 'se.yaml'), serviceEntry('x', 'y.example.com'));
    await until('the edit on b', () => JSON.stringify(hosts(b!, 'x')) === '["y.example.com"]');
    // Logged once a's write returns, which b's watch may see first.
    await until('the edit logged by a', () => logs.some((l) => l.includes('applied into etcd: ServiceEntry default/x configured')));
  });

  it('a restart of the replica with --config reverts nothing changed through the API', async () => {
    const api = await b!.store.apply([serviceEntry('api-made')], 'apply by admin');
    assert.deepEqual(api.applied, [{ ref: 'ServiceEntry default/api-made', action: 'created' }]);
    await a!.close();
    a = undefined;
    // Changed through the API while the replica is down: the API's resource is changed again.
    await b!.store.apply([serviceEntry('api-made', 'api2.example.com')], 'apply by admin');
    a = await openEtcd(etcd.endpoints, { configDir: mesh, logger });
    assert.deepEqual(a.files, { resources: 1, changed: 0 });
    assert.deepEqual(hosts(a, 'api-made'), ['api2.example.com']);
    assert.deepEqual(hosts(a, 'x'), ['y.example.com']);
    // The API's own resource can still be changed and deleted through the API.
    assert.equal((await b!.store.delete('ServiceEntry', 'default', 'api-made', 'delete by admin')).deleted, true);
  });

  it('a replica with another directory does not remove these files’ resources; removing the file does', async () => {
    const other = join(dir, 'other');
    await mkdir(other);
    await writeAtomic(join(other, 'w.yaml'), serviceEntry('w'));
    const c = await openEtcd(etcd.endpoints, { configDir: other, logger });
    try {
      assert.deepEqual(c.files, { resources: 1, changed: 1 });
      await until('a to serve w and x', () => hosts(a!, 'w') !== undefined && hosts(a!, 'x') !== undefined);
      await rm(join(mesh, 'se.yaml'));
      await until('x to be deleted', () => hosts(b!, 'x') === undefined);
      assert.deepEqual(hosts(b!, 'w'), ['w.example.com']);
      // Once the files no longer define it, the name is the API's again.
      const again = await b!.store.apply([serviceEntry('x', 'api.example.com')], 'apply by admin');
      assert.deepEqual(again.applied, [{ ref: 'ServiceEntry default/x', action: 'created' }]);
    } finally {
      await c.close();
    }
  });

  it('a file change that is invalid is refused as without etcd: logged, listed, the source unhealthy; etcd keeps what it had', async () => {
    await writeAtomic(join(mesh, 'bad.yaml'), { ...serviceEntry('bad'), spec: { hosts: [], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }] } });
    await until('the refusal', () => !a!.store.health.healthy);
    assert.match(a!.store.health.error ?? '', /--config .*mesh: last change rejected/);
    assert.ok(a!.store.rejections().some((r) => r.origin.includes('bad.yaml')));
    assert.equal(hosts(b!, 'bad'), undefined);
    await rm(join(mesh, 'bad.yaml'));
    await until('healthy again', () => a!.store.health.healthy);
  });
});
