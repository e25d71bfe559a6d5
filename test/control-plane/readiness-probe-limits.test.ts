/**
 * What a WorkloadGroup probe may do to the workload running it: an exec probe that ignores
 * SIGTERM is killed (SIGKILL, with what it started) at its timeout and on stop; an httpGet probe
 * whose body never ends does not keep its socket; redirects are followed as Go's http.Client
 * (pilot-agent's prober) does; httpGet and tcpSocket reach only the workload itself unless the
 * app allows other hosts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gone } from '../helpers/process-gone.ts';
import { probeHostCheck } from '../../src/control-plane/probe-hosts.ts';
import { execProber, httpProber, type ProbeOutcome, tcpProber } from '../../src/control-plane/probers.ts';
import { probeTiming, ReadinessChecker } from '../../src/control-plane/readiness-checker.ts';
import { RegistrationHealth } from '../../src/control-plane/registration-health.ts';
import { ManualClock } from '../../src/core/clock.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (a safety bound for a failure, not a timing assertion). */
async function until(what: string, check: () => boolean, bound = 10_000): Promise<void> {
  for (let waited = 0; !check(); waited += 10) {
    if (waited > bound) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('exec probe: killed with SIGKILL, with what it started', { skip: process.platform === 'win32' }, () => {
  it('a command ignoring SIGTERM is killed at the timeout and on stop(), with its child; stop() resolves once it is reaped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-exec-probe-'));
    try {
      const pidFile = join(dir, 'pids');
      // Ignores SIGTERM, starts a child of its own, and never exits.
      const script = `process.on('SIGTERM', () => {}); const c = require('node:child_process').spawn(process.execPath, ['-e', 'process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)'], { stdio: 'ignore' }); require('node:fs').writeFileSync(${JSON.stringify(pidFile)}, process.pid + ' ' + c.pid); setInterval(() => {}, 1000);`;
      const clock = new ManualClock(0);
      const events: unknown[] = [];
      const checker = new ReadinessChecker(clock, execProber({ command: [process.execPath, '-e', script] }), probeTiming({ periodSeconds: 60, timeoutSeconds: 1 }), (e) => events.push(e));
      checker.start();
      clock.advance(0);
      await until('the command to start its child', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').includes(' '));
      const [parent, child] = readFileSync(pidFile, 'utf8').split(' ').map(Number) as [number, number];
      clock.advance(1000);
      await until('the timeout to be reported', () => events.length === 1);
      assert.deepEqual(events, [{ healthy: false, message: 'probe timed out after 1s' }]);
      const stopped = checker.stop();
      const outcome = await Promise.race([stopped.then(() => 'stopped'), sleep(10_000).then(() => 'still running')]);
      assert.equal(outcome, 'stopped', 'stop() waits for the killed command, which SIGTERM would not end');
      await until('the command and its child to be gone', () => gone(parent) && gone(child));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('httpGet probe against a real server', () => {
  let server: Server;
  let port: number;
  const open = new Set<Socket>();
  let seen: { url: string | undefined; headers: IncomingHttpHeaders }[] = [];
  before(async () => {
    server = createServer((req, res) => {
      seen.push({ url: req.url, headers: req.headers });
      const url = req.url ?? '/';
      if (url === '/stream') {
        res.writeHead(200);
        const t = setInterval(() => res.write('x'.repeat(1024)), 5);
        res.on('close', () => clearInterval(t));
        return;
      }
      if (url.startsWith('/to/')) {
        res.writeHead(302, { location: decodeURIComponent(url.slice(4)) }).end();
        return;
      }
      if (url === '/loop') {
        res.writeHead(301, { location: '/loop' }).end();
        return;
      }
      if (url === '/no-location') {
        res.writeHead(302).end();
        return;
      }
      res.writeHead(url === '/bad' ? 503 : 200).end();
    });
    server.on('connection', (s: Socket) => {
      open.add(s);
      s.on('close', () => open.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });

  const run = (p: (s: AbortSignal) => Promise<ProbeOutcome>) => p(new AbortController().signal);

  it('a body that never ends: healthy on the status, and the connection is closed (pilot-agent closes the body unread, no keep-alive)', async () => {
    assert.deepEqual(await run(httpProber({ port, path: '/stream' }, '127.0.0.1')), { healthy: true });
    await until('the probe connection to close', () => open.size === 0);
  });

  it('redirects are followed as Go http.Client does: the final status decides; 10 at most; a 3xx without Location is the answer', async () => {
    seen = [];
    const to = (loc: string) => `/to/${encodeURIComponent(loc)}`;
    assert.deepEqual(await run(httpProber({ port, path: to('/bad') }, '127.0.0.1')), { healthy: false, message: 'status code was not from [200,400), bad code 503' });
    assert.deepEqual(await run(httpProber({ port, path: to('/ok') }, '127.0.0.1')), { healthy: true });
    assert.deepEqual(
      seen.map((s) => s.url),
      [to('/bad'), '/bad', to('/ok'), '/ok'],
    );
    seen = [];
    assert.deepEqual(await run(httpProber({ port, path: '/loop' }, '127.0.0.1')), { healthy: false, message: `GET http://127.0.0.1:${port}/loop: stopped after 10 redirects` });
    assert.equal(seen.length, 11, 'the first request and 10 redirects');
    assert.deepEqual(await run(httpProber({ port, path: '/no-location' }, '127.0.0.1')), { healthy: true });
    seen = [];
    // A Host header survives a relative redirect only; credentials do not survive a change of host.
    const headers = [
      { name: 'Host', value: 'reviews.local' },
      { name: 'Authorization', value: 'Bearer x' },
    ];
    await run(httpProber({ port, path: to('/ok'), httpHeaders: headers }, '127.0.0.1'));
    assert.deepEqual([seen[1]?.headers.host, seen[1]?.headers.authorization], ['reviews.local', 'Bearer x']);
    seen = [];
    await run(httpProber({ port, path: to(`http://localhost:${port}/ok`), httpHeaders: headers }, '127.0.0.1'));
    assert.deepEqual([seen[1]?.headers.host, seen[1]?.headers.authorization], [`localhost:${port}`, undefined]);
  });

  it('a redirect to a host other than the workload or loopback is not followed', async () => {
    seen = [];
    const o = await run(httpProber({ port, path: `/to/${encodeURIComponent('http://192.0.2.10:22/')}` }, '127.0.0.1'));
    assert.equal(o.healthy, false);
    assert.match(o.message ?? '', /^GET http:\/\/192\.0\.2\.10:22\/: host 192\.0\.2\.10 is not this workload's address \(127\.0\.0\.1\) or loopback: .*mesh\.register\(\{ probeHosts: \['192\.0\.2\.10'\] \}\)/);
    assert.equal(seen.length, 1);
  });
});

describe('probe hosts: the workload itself unless the app allows more', () => {
  it('the registered address, loopback and probeHosts are allowed; any other host is refused without a connection', async () => {
    const check = probeHostCheck('10.0.0.7', ['db.internal', 'fd00::5']);
    for (const ok of ['10.0.0.7', '127.0.0.1', '127.9.9.9', '::1', '[::1]', '0:0:0:0:0:0:0:1', 'localhost', 'LOCALHOST', 'db.internal', 'fd00:0::5']) assert.equal(check(ok), undefined, ok);
    for (const no of ['10.0.0.8', '169.254.169.254', 'example.com', '::2', 'fd00::6']) assert.match(check(no) ?? '', /is not this workload's address \(10\.0\.0\.7\) or loopback/, no);
    const signal = new AbortController().signal;
    const h = await httpProber({ port: 80, host: '192.0.2.1' }, '10.0.0.7')(signal);
    assert.equal(h.healthy, false);
    assert.match(h.message ?? '', /^GET http:\/\/192\.0\.2\.1\/: host 192\.0\.2\.1 is not this workload's address/);
    const t = await tcpProber({ port: 22, host: '192.0.2.1' }, '10.0.0.7')(signal);
    assert.match(t.message ?? '', /^dial tcp 192\.0\.2\.1:22: host 192\.0\.2\.1 is not this workload's address/);
  });

  it('a registration whose probe names a refused host warns that it is not run', async () => {
    const warnings: string[] = [];
    const h = new RegistrationHealth({ clock: new ManualClock(0), probe: { tcpSocket: { port: 22, host: '192.0.2.1' } }, host: '10.0.0.7', logger: { warn: (m) => warnings.push(m) }, describe: () => 'default/reviews-1', send: async () => {} });
    await h.stop();
    assert.match(warnings.join('\n'), /registration default\/reviews-1: its WorkloadGroup's probe is not run: host 192\.0\.2\.1 is not this workload's address/);
    const allowed = new RegistrationHealth({ clock: new ManualClock(0), probe: { tcpSocket: { port: 22, host: '192.0.2.1' } }, host: '10.0.0.7', probeHosts: ['192.0.2.1'], logger: { warn: (m) => warnings.push(m) }, describe: () => 'x', send: async () => {} });
    await allowed.stop();
    assert.equal(warnings.length, 1);
  });
});
