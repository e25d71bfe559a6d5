/**
 * A replica's status follows etcd's health within seconds both ways: it was only what the last
 * call or watch saw, so it read `healthy` while etcd was frozen (until a request failed) and
 * UNHEALTHY for minutes after etcd recovered (until a request succeeded on that replica).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import { startControlPlane } from '../../../src/control-plane-server/server.ts';
import { startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { quietLogger, until } from '../client-helpers.ts';

describe('etcd health in the status', { skip: skipWithout('etcd'), timeout: 60_000 }, () => {
  it('a frozen etcd is reported unhealthy without any request, and healthy again once it answers', async () => {
    const etcd = await startEtcd();
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-etcd-health-'));
    const stores = await openEtcd(etcd.endpoints, { logger: quietLogger, healthProbe: { everyMs: 50, unhealthyEveryMs: 50, timeoutMs: 300 } });
    const cp = await startControlPlane({ ...stores, dataDir: dir, host: '127.0.0.1', port: 0, logger: quietLogger });
    try {
      assert.equal(cp.status().source.healthy, true);
      etcd.freeze();
      await until(() => cp.status().source.healthy === false, 'the status to say etcd is unhealthy while it is frozen', 20_000);
      assert.match(cp.status().source.error ?? '', /maintenance\/status failed on every endpoint/);
      etcd.thaw();
      await until(() => cp.status().source.healthy === true, 'the status to say etcd is healthy again, with no request made', 20_000);
      assert.equal(cp.status().source.error, undefined);
    } finally {
      etcd.thaw();
      await cp.close();
      await stores.close();
      await etcd.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
