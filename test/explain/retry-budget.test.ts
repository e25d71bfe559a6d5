/**
 * `mesh.explain` and `meshlet explain` show a destination's cap on concurrent retries — the
 * DestinationRule `retryBudget` (Envoy's RetryBudgetImpl: `percent` of active and pending
 * requests, at least `minRetryConcurrency`) with how many retries it allows right now, or
 * `connectionPool.http.maxRetries` — next to its pool and outlier detection. Before, only `meshlet
 * routes` named it: a team that set a budget (Linkerd's default 20%) could not see it on the
 * request it was explaining.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { meshlet } from '../cli/helpers.ts';
import { until } from '../helpers/until.ts';
import { destinationRule, serviceEntry } from '../helpers/upstreams.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-explain-budget-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const budget = (port: number) => [
  serviceEntry('payments', 'payments.test', 80, [{ port }]),
  destinationRule('payments', 'payments.test', { trafficPolicy: { retryBudget: { percent: 20, minRetryConcurrency: 10 } } }),
  serviceEntry('orders', 'orders.test', 80, [{ port }]),
  destinationRule('orders', 'orders.test', { trafficPolicy: { connectionPool: { http: { maxRetries: 3 } } } }),
  serviceEntry('ledger', 'ledger.test', 80, [{ port }]),
];

describe('explain shows the retry budget', () => {
  it('mesh.explain: the budget with the retries it allows for the requests in flight now, maxRetries, or none set', async () => {
    const held: ServerResponse[] = [];
    const upstream = createServer((_req: IncomingMessage, res: ServerResponse) => held.push(res));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as AddressInfo).port;
    const mesh = await createMesh({ service: 'checkout', config: budget(port) });
    try {
      const line = (url: string) => String(mesh.explain({ url })).split('\n').find((l) => l.trim().startsWith('retries: '));
      assert.equal(line('http://payments.test/'), '      retries: retry budget 20% of active requests, min 10: 10 retries allowed now, 0 active');
      assert.equal(line('http://orders.test/'), '      retries: maxRetries 3, 0 active');
      assert.equal(line('http://ledger.test/'), '      retries: maxRetries unlimited (2^32-1), 0 active');
      const target = mesh.explain({ url: 'http://payments.test/' }).targets[0];
      assert.equal(target?.retryBudget, 'retry budget 20% of active requests, min 10: 10 retries allowed now, 0 active');
      // 60 requests in flight: 20% of them is 12, above the minimum of 10.
      const calls = Array.from({ length: 60 }, () => mesh.fetch('http://payments.test/').then((r) => r.text()));
      await until(() => held.length === 60, '60 requests held by the upstream');
      assert.equal(line('http://payments.test/'), '      retries: retry budget 20% of active requests, min 10: 12 retries allowed now, 0 active');
      for (const res of held) res.end('ok');
      assert.deepEqual(new Set(await Promise.all(calls)), new Set(['ok']));
    } finally {
      await mesh.close();
      await new Promise((r) => upstream.close(r));
    }
  });

  it('meshlet explain: the text and -o json name it per destination', () => {
    const file = join(dir, 'mesh.json');
    writeFileSync(file, budget(8080).map((r) => JSON.stringify(r)).join('\n---\n'));
    const text = meshlet(['explain', file, '--service', 'checkout', 'http://payments.test/']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /\n {4}retry budget: {7}retry budget 20% of active requests, min 10: 10 retries allowed now, 0 active\n/);
    const json = meshlet(['explain', file, '--service', 'checkout', '-o', 'json', 'http://orders.test/']);
    assert.equal(json.code, 0, json.stderr);
    const out = JSON.parse(json.stdout) as { destinations: { retryBudget: string | null }[] };
    assert.equal(out.destinations[0]?.retryBudget, 'maxRetries 3, 0 active');
  });
});
