/**
 * `meshlet tap` decodes the stream as UTF-8 across chunks: a character whose bytes arrive in two
 * reads (a path or authority with non-ASCII text, split by the network) is printed whole, not as
 * two replacement characters.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { meshletAsync } from './helpers.ts';

describe('meshlet tap: UTF-8 split across reads', () => {
  it('prints a character whose bytes came in two chunks whole', async () => {
    const fake = createServer(async (_req, res) => {
      res.setHeader('content-type', 'application/x-ndjson');
      res.socket?.setNoDelay(true);
      res.write(`${JSON.stringify({ type: 'start', workload: 'x' })}\n`);
      const line = Buffer.from(`${JSON.stringify({ type: 'req', id: 1, direction: 'in', method: 'GET', authority: 'bücher:80', path: '/café', tls: false })}\n`);
      const cut = line.indexOf(Buffer.from('é')) + 1;
      res.write(line.subarray(0, cut));
      await sleep(100);
      res.end(line.subarray(cut));
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    try {
      const r = await meshletAsync(['tap', String((fake.address() as AddressInfo).port), '--duration', '20s']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /:authority=bücher:80 :path=\/café$/m, JSON.stringify(r.stdout));
    } finally {
      await new Promise((r) => fake.close(r));
    }
  });
});
