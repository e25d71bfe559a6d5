/**
 * A mesh refusing an invalid MeshConfig a control plane pushes names it once per version: each
 * reconnect gets the same MeshConfig first again (the control plane sends its MeshConfig on every
 * new stream), and that is not a new refusal to warn about; another invalid version is. A
 * hand-written control plane (SSE over loopback) that still pushes one, ending each stream to make
 * the mesh reconnect.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { scriptedControlPlane, shortJitter, sse, until } from './client-helpers.ts';

const open: { close(): unknown }[] = [];
after(async () => {
  for (const o of open.reverse()) await o.close();
});

describe('an invalid pushed MeshConfig, sent again at every reconnect', () => {
  it('is warned about once per version', async () => {
    let streams = 0;
    /** ACKs the mesh sent: each stream's config and endpoints are ACKed after its MeshConfig was taken (or refused). */
    let acks = 0;
    let meshConfig = { version: 'bad1', meshConfig: { connectTimeout: 'soon' } };
    let current: ServerResponse | undefined;
    const cp = await scriptedControlPlane(
      (res, n) => {
        streams = n;
        current = res;
        sse(res, 'mesh-config', meshConfig);
        sse(res, 'config', { version: 'v1', resources: [] }, 'v1/');
        sse(res, 'endpoints', { version: 'e1', workloads: [] }, 'v1/e1');
      },
      {
        seen: (req) => {
          if (req.url === '/v1/ack') acks++;
        },
      },
    );
    open.push(cp);
    const warnings: string[] = [];
    const mesh = await createMesh({ service: 'productpage', controlPlane: cp.url, token: 't', identity: 'none', drainMs: 0, random: shortJitter(3), logger: { warn: (m: string) => warnings.push(m), info: () => undefined } });
    open.unshift(mesh);
    const refusals = (v: string) => warnings.filter((w) => w.includes(`version ${v} is not applied`)).length;
    await until(() => refusals('bad1') === 1, 'the first refusal');
    // Three reconnects, each sent the same invalid MeshConfig first.
    for (const n of [2, 3, 4]) {
      current?.destroy();
      await until(() => streams === n && acks === 2 * n, `reconnect ${n - 1}, its events taken`, 20_000);
    }
    assert.equal(refusals('bad1'), 1, warnings.join('\n'));
    // Another invalid version is named.
    meshConfig = { version: 'bad2', meshConfig: { connectTimeout: 'later' } };
    current?.destroy();
    await until(() => refusals('bad2') === 1, 'the refusal of another version', 20_000);
    assert.equal(refusals('bad1'), 1);
  });
});
