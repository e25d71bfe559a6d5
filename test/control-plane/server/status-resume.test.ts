/**
 * `meshlet status` after a control-plane restart: the mesh reconnects with `Last-Event-ID`, the
 * server has nothing new to send, and the versions the mesh says it holds count as sent and
 * ACKed — the workload is SYNCED, as `istioctl proxy-status` shows after a reconnect.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { meshletAsync } from '../../cli/helpers.ts';
import { createMesh } from '../../../src/index.ts';
import { serviceEntry } from '../../helpers/upstreams.ts';
import { quietLogger, shortJitter, startTestControlPlane, waitFor } from '../client-helpers.ts';

interface Row {
  service: string;
  sent: { config?: string; endpoints?: string };
  acked: { config?: { version: string }; endpoints?: { version: string } };
}

test('status: a workload resumed by Last-Event-ID after a control-plane restart is SYNCED (sent and ACKed versions)', async () => {
  const t = await startTestControlPlane({ se: [serviceEntry('a', 'a.example', 80, [{ port: 8080 }])] });
  const token = await t.cp.mintToken({ service: 'web', namespace: 'default' });
  const mesh = await createMesh({ service: 'web', controlPlane: t.cp.url, token, drainMs: 0, identity: 'none', logger: quietLogger, random: shortJitter(3) });
  try {
    const status = async () => {
      const env = { MESHLET_CONTROL_PLANE: t.cp.url, MESHLET_TOKEN: await t.cp.mintToken({ admin: true }) };
      const text = await meshletAsync(['status'], { env });
      assert.equal(text.code, 0, text.stderr);
      const json = await meshletAsync(['status', '-o', 'json'], { env });
      const doc = JSON.parse(json.stdout).servers[0].status;
      return { text: text.stdout, doc, row: (doc.workloads as Row[]).find((w) => w.service === 'web' && !('disconnectedAt' in w)) };
    };
    // ACKs travel after the events: wait (in process) until this stream's ACKs arrived or 2 s passed, then ask the CLI.
    const synced = async () => {
      const end = Date.now() + 2000;
      while (Date.now() < end) {
        const w = t.cp.status().workloads.find((r) => r.service === 'web' && !('disconnectedAt' in r));
        if (w?.acked.config !== undefined && w.acked.endpoints !== undefined) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      return status();
    };
    const first = await synced();
    assert.match(first.text, /1\/1 workloads at config version/);
    assert.match(first.text, /\bSYNCED\b/, first.text);

    const disconnected = waitFor(mesh, 'disconnected');
    await t.cp.close();
    await disconnected;
    const connected = waitFor(mesh, 'connected', undefined, 8000);
    await t.restart();
    await connected;
    const after = await synced();
    const { doc, row } = after;
    assert.ok(row !== undefined, JSON.stringify(doc.workloads));
    assert.equal(row.sent.config, doc.configVersion, JSON.stringify(row));
    assert.equal(row.acked.config?.version, doc.configVersion);
    assert.ok(row.sent.endpoints !== undefined, JSON.stringify(row));
    assert.equal(row.acked.endpoints?.version, row.sent.endpoints);
    assert.match(after.text, /1\/1 workloads at config version/);
    assert.match(after.text, /\bSYNCED\b/, after.text);
    assert.doesNotMatch(after.text, /STALE/);
  } finally {
    await mesh.close();
    await t.close();
  }
});
