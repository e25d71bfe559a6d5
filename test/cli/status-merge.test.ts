/**
 * `meshlet status --control-plane a,b,c` merges the replicas' refused changes (found by a review:
 * replicas sharing etcd each refuse the same etcd write, and the merged view listed it once per
 * replica, moments apart, without saying which server each came from).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { mergeRejections } from '../../src/cli/commands/status.ts';
import type { Rejection, StatusDocument } from '../../src/control-plane/protocol.ts';
import { meshletAsync } from './helpers.ts';

const skippedWrite = (at: string): Rejection => ({ at, origin: 'etcd write at revision 7 (VirtualService/default/junk)', reasons: ['/meshlet/config/VirtualService/default/junk: the value is not JSON'] });

function doc(server: string, rejections: Rejection[]): StatusDocument {
  return {
    server,
    startedAt: '2026-12-05T00:00:00.000Z',
    configVersion: 'e3b0c44298fc',
    endpointsVersion: 'e3b0c44298fc',
    source: { kind: 'etcd', location: 'http://127.0.0.1:2379', healthy: true },
    summary: '0/0 workloads at config version e3b0c44298fc',
    workloads: [],
    rejections,
    registered: 0,
  } as unknown as StatusDocument;
}

describe('meshlet status over several replicas: refused changes', () => {
  const servers: Server[] = [];
  const urls: string[] = [];
  const docs = [
    doc('cp-a', [skippedWrite('2026-12-05T00:00:01.001Z')]),
    doc('cp-b', [{ at: '2026-12-05T00:00:02.000Z', origin: 'apply by admin from 10.0.0.1', reasons: ['only b refused this'] }, skippedWrite('2026-12-05T00:00:01.002Z')]),
    doc('cp-c', [skippedWrite('2026-12-05T00:00:01.003Z')]),
  ];

  before(async () => {
    for (const d of docs) {
      const s = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(d)));
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      servers.push(s);
      urls.push(`http://127.0.0.1:${(s.address() as AddressInfo).port}`);
    }
  });
  after(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  it('lists a refusal every replica made once, and names the replicas of one only some made', async () => {
    const r = await meshletAsync(['status', '--control-plane', urls.join(','), '--token', 'x']);
    assert.equal(r.code, 0, r.stderr);
    const section = r.stdout.slice(r.stdout.indexOf('Refused changes'));
    assert.equal(
      section,
      [
        'Refused changes (newest first):',
        '  2026-12-05T00:00:02.000Z  apply by admin from 10.0.0.1 (cp-b)',
        '    only b refused this',
        '  2026-12-05T00:00:01.001Z  etcd write at revision 7 (VirtualService/default/junk) (every replica)',
        '    /meshlet/config/VirtualService/default/junk: the value is not JSON',
        '',
      ].join('\n'),
    );
  });

  it('the same refusal made again later is listed again', () => {
    const again = mergeRejections([
      { server: 'a', rejections: [{ ...skippedWrite('2026-12-05T01:00:00.000Z') }, skippedWrite('2026-12-05T00:00:00.000Z')] },
      { server: 'b', rejections: [skippedWrite('2026-12-05T00:00:00.001Z')] },
    ]);
    assert.deepEqual(
      again.map((x) => [x.at, x.servers]),
      [
        ['2026-12-05T01:00:00.000Z', ['a']],
        ['2026-12-05T00:00:00.000Z', ['a', 'b']],
      ],
    );
  });
});
