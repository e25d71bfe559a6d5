/**
 * `meshlet tap` and `meshlet top` run as child processes against a mesh's admin endpoint (real
 * sockets): Linkerd-style lines, `-o json` records, filters as flags, `--count` and `--duration`
 * to stop, remote text printed inert, `top --once` tables and JSON, usage mistakes and an
 * unreachable endpoint.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { adminBase, grpcCodeName } from '../../src/cli/tap-client.ts';
import { hasUnsafe } from '../../src/cli/escape.ts';
import { formatLatency } from '../../src/cli/commands/top.ts';
import { call, deadPort, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';
import { MAIN, meshletAsync } from './helpers.ts';

describe('meshlet tap and top', () => {
  let up: Upstream;
  let mesh: Mesh;
  let port: string;
  let traffic: Promise<void>;
  let going = true;
  before(async () => {
    up = await startUpstream('reviews');
    mesh = await createMesh({
      service: 'web',
      logger: { warn: () => {} },
      admin: { port: 0 },
      config: [
        serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: up.port }]),
        virtualService('reviews', ['reviews.default.svc.cluster.local'], [{ name: 'down', match: [{ uri: { prefix: '/down' } }], directResponse: { status: 503 } }, { name: 'all', route: [{ destination: { host: 'reviews.default.svc.cluster.local' } }] }]),
      ],
    });
    port = new URL(mesh.adminUrl as string).port;
    // Traffic until the tests end: /reviews/1 twice for each /down.
    traffic = (async () => {
      for (let i = 0; going; i++) {
        const path = i % 3 === 2 ? '/down' : '/reviews/1';
        await call(mesh, `http://reviews.default.svc.cluster.local:9080${path}?token=SECRET`);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
  });
  after(async () => {
    going = false;
    await traffic;
    await mesh.close();
    await up.close();
  });

  it('tap prints req, rsp and end lines as linkerd viz tap, stops after --count requests ended, and shows no query', async () => {
    const r = await meshletAsync(['tap', port, '--count', '4', '--path', '/reviews/', '--duration', '60s']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.filter((l) => l.startsWith('end ')).length, 4, r.stdout);
    // src: this workload's end of the connection, once the call's connection is known (its rsp at the latest).
    assert.match(lines[0] as string, new RegExp(`^req id=1 proxy=out src=(?:-|127\\.0\\.0\\.1:\\d+) dst=127\\.0\\.0\\.1:${up.port} tls=false :method=GET :authority=reviews\\.default\\.svc\\.cluster\\.local:9080 :path=/reviews/1$`));
    assert.match(lines[1] as string, new RegExp(`^rsp id=1 proxy=out src=127\\.0\\.0\\.1:\\d+ dst=127\\.0\\.0\\.1:${up.port} tls=false :status=200 latency=\\d+µs$`));
    const end = lines.find((l) => l.startsWith('end id=1 ')) as string;
    assert.match(end, new RegExp(`^end id=1 proxy=out src=127\\.0\\.0\\.1:\\d+ dst=127\\.0\\.0\\.1:${up.port} tls=false :status=200 latency=\\d+µs response-length=7B flags=-$`));
    assert.equal(lines.filter((l) => l.startsWith('rsp ')).length >= 4, true, r.stdout);
    assert.equal(r.stdout.includes('SECRET'), false);
  });

  it('tap -o json prints the records, one a line; --status keeps the failures', async () => {
    const r = await meshletAsync(['tap', mesh.adminUrl as string, '-o', 'json', '--status', '5xx', '--count', '2', '--duration', '60s']);
    assert.equal(r.code, 0, r.stderr);
    const records = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(records.map((x) => [x.type, x.type === 'req' ? x.path : x.status]), [['req', '/down'], ['rsp', 503], ['end', 503], ['req', '/down'], ['rsp', 503], ['end', 503]]);
    const rsp = records[1] as Record<string, unknown>;
    assert.deepEqual([rsp.id, rsp.direction, rsp.local, typeof rsp.latencyUs], [records[0]?.id, 'out', 'direct', 'number']);
  });

  it('prints what a hostile endpoint sends inert: no raw escape or bidi control reaches the terminal', async () => {
    const fake = createServer((_req, res) => {
      res.setHeader('content-type', 'application/x-ndjson');
      res.write(`${JSON.stringify({ type: 'start', workload: 'x' })}\n`);
      res.end(`${JSON.stringify({ type: 'req', id: 1, direction: 'out', method: 'GET', authority: 'a\u202eb', path: '/\u001b[31mred', tls: false })}\n${JSON.stringify({ type: 'rsp', id: 1, status: '\u001b[2J', srcAddress: '\u202e10.0.0.1', latencyUs: 1 })}\n${JSON.stringify({ type: 'end', id: 1, status: 200, flags: '\u001b]0;title\u0007', latencyMs: 1 })}\n`);
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    try {
      const r = await meshletAsync(['tap', String((fake.address() as AddressInfo).port), '--duration', '20s']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(hasUnsafe(r.stdout.replaceAll('\n', '')), false, JSON.stringify(r.stdout));
      assert.match(r.stdout, /:authority=a\\u202eb :path=\/\\x1b\[31mred$/m);
      assert.match(r.stdout, /flags=\\x1b\]0;title\\x07$/m);
      assert.match(r.stdout, /^rsp id=1 proxy=out src=\\u202e10\.0\.0\.1 dst=- tls=false :status=\\x1b\[2J latency=1µs$/m);
      assert.match(r.stderr, /the stream ended/);
    } finally {
      await new Promise((r) => fake.close(r));
    }
  });

  it('tap --duration stops in time with what it saw; a filter that matches nothing prints nothing', async () => {
    const r = await meshletAsync(['tap', port, '--duration', '300ms', '--method', 'DELETE']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
  });

  it('top --once prints one table of the busiest paths; -o json has count, success rate and latency percentiles', async () => {
    const t = await meshletAsync(['top', port, '--once', '--duration', '1s']);
    assert.equal(t.code, 0, t.stderr);
    const [head, ...rows] = t.stdout.trimEnd().split('\n');
    assert.match(head as string, /^PROXY\s+METHOD\s+AUTHORITY\s+PATH\s+COUNT\s+RPS\s+SUCCESS\s+P50\s+P95\s+MAX$/);
    assert.match(rows[0] as string, /^out\s+GET\s+reviews\.default\.svc\.cluster\.local:9080\s+\/reviews\/1\s+\d+\s+[\d.]+\s+100\.00%/);
    assert.ok(rows.some((l) => /\/down\s+\d+\s+[\d.]+\s+0\.00%/.test(l)), t.stdout);

    const j = await meshletAsync(['top', port, '--once', '--duration', '1s', '-o', 'json', '--by', 'cluster']);
    assert.equal(j.code, 0, j.stderr);
    const doc = JSON.parse(j.stdout) as { by: string; rows: { direction: string; cluster: string; count: number; successRate: number; latencyMs: { p50: number; p95: number; max: number } }[] };
    assert.equal(doc.by, 'cluster');
    const reviews = doc.rows.find((x) => x.cluster === 'outbound|9080||reviews.default.svc.cluster.local');
    assert.ok(reviews !== undefined && reviews.count > 0 && reviews.successRate === 100, j.stdout);
    assert.ok(reviews.latencyMs.p50 <= reviews.latencyMs.p95 && reviews.latencyMs.p95 <= reviews.latencyMs.max);
    assert.equal(doc.rows.find((x) => x.cluster === '-')?.successRate, 0, 'the direct 503s, which went to no cluster');
  });

  it('top without --once redraws the table every second until --duration (a pipe gets one table after another)', async () => {
    const t = await meshletAsync(['top', port, '--duration', '2500ms']);
    assert.equal(t.code, 0, t.stderr);
    assert.ok(t.stdout.split(`meshlet top http://127.0.0.1:${port} (Ctrl-C to quit)`).length - 1 >= 2, t.stdout);
    assert.equal(t.stdout.includes('\x1b'), false, 'no screen clearing into a pipe');
    assert.match(t.stdout, /\/reviews\/1\s+\d+/);
  });

  it('top at a terminal redraws in place and quits on q with the last table, as linkerd viz top', { skip: spawnSync('python3', ['--version']).status === 0 ? false : 'python3 is not installed (it gives the CLI a pseudo-terminal)' }, async () => {
    // python3's pty module gives top a terminal on stdin and stdout; it types q after the first redraw.
    const driver = `import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], sys.argv[2], 'top', sys.argv[3]])
out = b''
def read(until, stop):
    global out
    end = time.time() + until
    while time.time() < end and not stop():
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                d = os.read(fd, 65536)
            except OSError:
                return
            if not d:
                return
            out += d
read(30, lambda: b'to quit)' in out and b'COUNT' in out)
os.write(fd, b'q')
read(30, lambda: False)
done, status = 0, 0
for _ in range(100):
    done, status = os.waitpid(pid, os.WNOHANG)
    if done != 0:
        break
    time.sleep(0.05)
if done == 0:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    sys.stdout.write('did not quit on q\\n' + out.decode())
else:
    sys.stdout.write(str(os.WEXITSTATUS(status)) + '\\n' + out.decode())
`;
    const child = spawn('python3', ['-c', driver, process.execPath, MAIN, port], { stdio: ['ignore', 'pipe', 'inherit'] });
    let got = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      got += d;
    });
    await once(child, 'close');
    const [code, ...rest] = got.split('\n');
    const screen = rest.join('\n');
    assert.equal(code, '0', screen);
    assert.ok(screen.includes('\x1b[H\x1b[2J'), 'the screen is redrawn in place');
    assert.match(screen, /\(q to quit\)/);
    assert.match(screen, /\/reviews\/1\s+\d+/);
  });

  it('usage mistakes exit 2; an endpoint that is not there exits 1 naming it', async () => {
    for (const args of [['tap'], ['tap', 'nope:99999'], ['tap', port, '--direction', 'up'], ['tap', port, '--status', '5x'], ['tap', port, '--max-rps', '0'], ['tap', port, '--count', 'x'], ['tap', port, '-o', 'yaml'], ['top', port, '-o', 'json'], ['top', port, '--by', 'host']]) {
      const r = await meshletAsync(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
    // The endpoint's own rules check the flags; the message names the flag.
    const badRps = await meshletAsync(['tap', port, '--max-rps', '0']);
    assert.match(badRps.stderr, /--max-rps: must be a number above 0 and at most 100000, got "0"/);
    const badDirection = await meshletAsync(['top', port, '--direction', 'up']);
    assert.match(badDirection.stderr, /--direction: must be in or out, got "up"/);
    const dead = await deadPort();
    const r = await meshletAsync(['tap', String(dead), '--duration', '60s']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`meshlet tap: cannot reach the admin endpoint at http://127\\.0\\.0\\.1:${dead}`));
    const notTap = await meshletAsync(['top', `${mesh.adminUrl}/`, '--once', '--path', 'x']);
    assert.equal(notTap.code, 2);
  });

  it('reads the admin endpoint from a URL, host:port or a port; formats latencies as Linkerd', () => {
    assert.equal(adminBase('tap', '15000'), 'http://127.0.0.1:15000');
    assert.equal(adminBase('tap', 'localhost:15000'), 'http://localhost:15000');
    assert.equal(adminBase('tap', 'http://[::1]:15000/'), 'http://[::1]:15000');
    assert.throws(() => adminBase('tap', 'http://127.0.0.1:15000/x'), /is not an admin endpoint/);
    assert.deepEqual([formatLatency(0.85), formatLatency(12.4), formatLatency(1250)], ['850µs', '12ms', '1.25s']);
    // Go's codes.Code names (Linkerd's tap is Go), from meshlet's one gRPC status table.
    assert.deepEqual([0, 1, 4, 14, 16, 17].map(grpcCodeName), ['OK', 'Canceled', 'DeadlineExceeded', 'Unavailable', 'Unauthenticated', 'Code(17)']);
  });
});
