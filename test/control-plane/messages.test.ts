/**
 * Messages a review found wrong: a refused token logged per URL per attempt forever; a first
 * certificate called "renewed again"; a killed control plane reported as an HTTP/1.1 protocol
 * error; CLI errors prefixed twice (`meshlet: meshlet get: …`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { describe, it } from 'node:test';
import { callOne } from '../../src/cli/client.ts';
import { describeFailure } from '../../src/control-plane/http.ts';
import { RepeatedWarning } from '../../src/control-plane/repeated-warning.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createMesh } from '../../src/index.ts';
import { startTestControlPlane, until } from './client-helpers.ts';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

function logger(): { warn(m: string): void; info(m: string): void; lines: string[] } {
  const lines: string[] = [];
  return { warn: (m) => lines.push(`warn ${m}`), info: (m) => lines.push(`info ${m}`), lines };
}

describe('messages', () => {
  it('a repeating warning is logged once, then summarized at most once a minute while it persists; again at once after a reset', () => {
    const clock = new ManualClock();
    const lines: string[] = [];
    const w = new RepeatedWarning(clock, (m) => lines.push(m));
    const refused = 'meshlet: control plane http://cp:15010: 401 Unauthorized: token signature does not verify';
    for (let i = 0; i < 27; i++) {
      w.warn(refused);
      clock.advance(1000);
    }
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^meshlet: control plane http:\/\/cp:15010: 401 Unauthorized: token signature does not verify \(retrying; repeats of this are summarized every 60 s\)$/);
    for (let i = 0; i < 40; i++) {
      w.warn(refused);
      clock.advance(1000);
    }
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, /401 Unauthorized: token signature does not verify \(still refused: 60 more time\(s\) in the last 60 s; retrying\)$/);
    w.reset();
    w.warn(refused);
    assert.equal(lines.length, 3);
  });

  it('a mesh whose token is refused after a signing-key change says so once, not at each attempt', async () => {
    const t = await startTestControlPlane({});
    const log = logger();
    let draws = 0;
    const token = await t.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const m = await createMesh({ service: 'reviews', controlPlane: t.cp.url, token, drainMs: 0, identity: 'none', logger: log, random: {
        next: () => {
          draws++;
          return 0.01;
        },
      },
    });
    try {
      await t.cp.close();
      spawnSync('rm', ['-f', `${t.dataDir}/signing-key.jwk`]);
      await t.restart();
      const from = draws;
      await until(() => draws > from + 6, 'several reconnect attempts', 15_000);
      const refused = log.lines.filter((l) => l.includes('401 Unauthorized'));
      assert.equal(refused.length, 1, refused.join('\n'));
    } finally {
      await m.close();
      await t.close();
    }
  });

  it('a mesh that started without a certificate logs its first as issued, not renewed again', async () => {
    const t = await startTestControlPlane({});
    const token = await t.cp.mintToken({ service: 'reviews', namespace: 'default' });
    await t.cp.close();
    const clock = new ManualClock();
    const log = logger();
    const m = await createMesh({ service: 'reviews', controlPlane: t.cp.url, token, drainMs: 0, failOpen: true, startupTimeoutMs: 300, clock, logger: log, random: { next: () => 0.01 } });
    try {
      assert.equal(m.credentials.current, undefined);
      await t.restart();
      await until(
        () => {
          clock.advance(1000);
          return m.credentials.current !== undefined;
        },
        'the first certificate',
        15_000,
      );
      await until(() => log.lines.some((l) => l.includes('workload certificate issued (spiffe://')), 'the log line');
      assert.equal(log.lines.filter((l) => l.includes('renewed again')).length, 0, log.lines.join('\n'));
    } finally {
      await m.close();
      await t.close();
    }
  });

  it('a control plane that closed the connection mid-answer is said to have closed it', () => {
    const err = Object.assign(new Error('Response does not match the HTTP/1.1 protocol (Invalid EOF state)'), { code: 'HPE_INVALID_EOF_STATE' });
    assert.equal(describeFailure('http://cp', err), 'control plane http://cp: the control plane closed the connection before its answer was complete (it stopped or restarted?) (HPE_INVALID_EOF_STATE)');
    // What undici throws when a control plane is killed in the middle of a watch stream: no code.
    const parser = Object.assign(new Error('Response does not match the HTTP/1.1 protocol (Invalid EOF state)'), { name: 'HTTPParserError' });
    assert.equal(describeFailure('http://cp', parser), 'control plane http://cp: the control plane closed the connection before its answer was complete (it stopped or restarted?)');
    // Closed before a byte came: perhaps a TLS-only control plane given an http:// URL; said as a possibility.
    const silent = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET', socket: { bytesRead: 0 } });
    assert.equal(describeFailure('http://cp:15010', silent), 'control plane http://cp:15010: the control plane closed the connection before its answer was complete (it stopped or restarted?) (UND_ERR_SOCKET); if it serves only TLS (meshlet control-plane --tls …), give https://cp:15010');
    assert.doesNotMatch(describeFailure('https://cp:15010', silent), /serves only TLS/);
    assert.doesNotMatch(describeFailure('http://cp:15010', Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET', socket: { bytesRead: 12 } })), /serves only TLS/);
  });

  it('the CLI says a control plane that closed the connection mid-answer closed it', async () => {
    // What a replica killed with SIGKILL looks like: part of an answer, then the connection ends.
    const server = createNetServer((socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\ncontent-ty'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      await assert.rejects(callOne(url, 'x', 'GET', '/status'), (e: Error) => {
        assert.equal(e.message.replace(/\((HPE_INVALID_EOF_STATE|UND_ERR_SOCKET)\)$/, '(…)'), `the control plane at ${url} closed the connection before it answered (it stopped, restarted or was killed?) (…)`);
        return true;
      });
    } finally {
      server.close();
    }
  });

  it('CLI errors are prefixed once', () => {
    const get = spawnSync(process.execPath, [MAIN, 'get', 'widgets', '--control-plane', 'http://127.0.0.1:1'], { encoding: 'utf8', env: { ...process.env, MESHLET_TOKEN: 'x' } });
    assert.match(get.stderr.trim().split('\n')[0] as string, /^meshlet get: unknown kind "widgets"; the control plane serves VirtualService \(vs\), /);
    const cp = spawnSync(process.execPath, [MAIN, 'control-plane', '--config', '.', '--ca-cert', 'x.pem'], { encoding: 'utf8' });
    assert.equal(cp.stderr.trim(), 'meshlet control-plane: give --ca-cert and --ca-key together');
    const plain = spawnSync(process.execPath, [MAIN, 'nosuchcommand'], { encoding: 'utf8' });
    assert.match(plain.stderr, /^meshlet: /);
  });
});
