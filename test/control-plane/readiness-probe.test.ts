/**
 * A WorkloadGroup's readiness probe as the registering mesh runs it, with pilot-agent's
 * semantics (pkg/istio-agent/health/health_check.go, health_probers.go): defaults, initial
 * delay, period, timeout, success and failure thresholds, transitions only; and the three
 * probers against real sockets and a real command.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { execProber, httpProber, type ProbeOutcome, tcpProber } from '../../src/control-plane/probers.ts';
import { type HealthEvent, probeTiming, ReadinessChecker } from '../../src/control-plane/readiness-checker.ts';
import { RegistrationHealth } from '../../src/control-plane/registration-health.ts';
import { ManualClock } from '../../src/core/clock.ts';

const tick = () => new Promise((r) => setImmediate(r));

/** A prober answering from a script: true/false, or 'hang' (never answers; counts aborts). */
function scripted(script: (boolean | 'hang')[]) {
  const calls: number[] = [];
  let aborted = 0;
  const clock = new ManualClock(0);
  const prober = (signal: AbortSignal): Promise<ProbeOutcome> => {
    calls.push(clock.now());
    const next = script.shift() ?? true;
    if (next === 'hang') {
      return new Promise(() => {
        signal.addEventListener('abort', () => aborted++);
      });
    }
    return Promise.resolve(next ? { healthy: true } : { healthy: false, message: 'bad code 500' });
  };
  return { clock, prober, calls, aborted: () => aborted };
}

describe('probeTiming: pilot-agent fillInDefaults', () => {
  it('an empty probe: period 10 s, timeout 1 s, thresholds 1, no delay; 0 means the default', () => {
    assert.deepEqual(probeTiming({}), { initialDelayMs: 0, periodMs: 10_000, timeoutMs: 1000, successThreshold: 1, failureThreshold: 1 });
    assert.deepEqual(probeTiming({ periodSeconds: 0, timeoutSeconds: 0, failureThreshold: 0, successThreshold: 0, initialDelaySeconds: 0 }), probeTiming({}));
    assert.deepEqual(probeTiming({ initialDelaySeconds: 5, periodSeconds: 2, timeoutSeconds: 3, successThreshold: 2, failureThreshold: 4 }), {
      initialDelayMs: 5000,
      periodMs: 2000,
      timeoutMs: 3000,
      successThreshold: 2,
      failureThreshold: 4,
    });
  });
});

describe('ReadinessChecker on a ManualClock', () => {
  it('waits the initial delay, probes at once, then every period; reports transitions only', async () => {
    const s = scripted([true, true, true, false, false, true]);
    const events: HealthEvent[] = [];
    const c = new ReadinessChecker(s.clock, s.prober, probeTiming({ initialDelaySeconds: 3, periodSeconds: 2 }), (e) => events.push(e));
    c.start();
    s.clock.advance(2999);
    await tick();
    assert.deepEqual(s.calls, []);
    s.clock.advance(1);
    await tick();
    assert.deepEqual(s.calls, [3000]);
    assert.deepEqual(events, [{ healthy: true }]);
    for (let i = 0; i < 5; i++) {
      s.clock.advance(2000);
      await tick();
    }
    assert.deepEqual(s.calls, [3000, 5000, 7000, 9000, 11000, 13000]);
    // healthy (1st), still healthy (no event), unhealthy (4th), still unhealthy, healthy again.
    assert.deepEqual(events, [{ healthy: true }, { healthy: false, message: 'bad code 500' }, { healthy: true }]);
    c.stop();
    assert.equal(s.clock.pending, 0, 'no timer left after stop()');
  });

  it('needs successThreshold consecutive successes and failureThreshold consecutive failures', async () => {
    const s = scripted([true, false, true, true, false, false, true, false, false, false, false]);
    const events: boolean[] = [];
    const c = new ReadinessChecker(s.clock, s.prober, probeTiming({ periodSeconds: 1, successThreshold: 2, failureThreshold: 3 }), (e) => events.push(e.healthy));
    c.start();
    s.clock.advance(0);
    await tick();
    for (let i = 0; i < 10; i++) {
      s.clock.advance(1000);
      await tick();
    }
    assert.equal(s.calls.length, 11);
    // T F T T(→healthy) F F T F F F(→unhealthy) F
    assert.deepEqual(events, [true, false]);
    c.stop();
  });

  it('the first report is unhealthy when the workload is not ready yet (threshold 1)', async () => {
    const s = scripted([false, false, true]);
    const events: boolean[] = [];
    const c = new ReadinessChecker(s.clock, s.prober, probeTiming({ periodSeconds: 5 }), (e) => events.push(e.healthy));
    c.start();
    s.clock.advance(0);
    await tick();
    s.clock.advance(5000);
    await tick();
    s.clock.advance(5000);
    await tick();
    assert.deepEqual(events, [false, true]);
    c.stop();
  });

  it('a probe that does not answer within timeoutSeconds fails and is aborted', async () => {
    const s = scripted(['hang', true]);
    const events: HealthEvent[] = [];
    const c = new ReadinessChecker(s.clock, s.prober, probeTiming({ periodSeconds: 10, timeoutSeconds: 2 }), (e) => events.push(e));
    c.start();
    s.clock.advance(0);
    await tick();
    s.clock.advance(1999);
    await tick();
    assert.deepEqual(events, []);
    s.clock.advance(1);
    await tick();
    assert.deepEqual(events, [{ healthy: false, message: 'probe timed out after 2s' }]);
    assert.equal(s.aborted(), 1);
    s.clock.advance(8000);
    await tick();
    assert.deepEqual(s.calls, [0, 10_000], 'the period runs from the start of the previous probe');
    assert.equal((events as HealthEvent[]).at(-1)?.healthy, true);
    c.stop();
  });

  it('stop() aborts a probe in flight and reports nothing after', async () => {
    const s = scripted(['hang']);
    const events: HealthEvent[] = [];
    const c = new ReadinessChecker(s.clock, s.prober, probeTiming({}), (e) => events.push(e));
    c.start();
    s.clock.advance(0);
    await tick();
    c.stop();
    assert.equal(s.aborted(), 1);
    s.clock.advance(60_000);
    await tick();
    assert.deepEqual(events, []);
    assert.equal(s.clock.pending, 0);
  });
});

describe('probers (real sockets, a real command)', () => {
  let server: Server;
  let port: number;
  let status = 200;
  let seen: { url: string | undefined; headers: IncomingHttpHeaders }[] = [];
  before(async () => {
    server = createServer((req, res) => {
      seen.push({ url: req.url, headers: req.headers });
      res.writeHead(status).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const run = (p: (s: AbortSignal) => Promise<ProbeOutcome>) => p(new AbortController().signal);

  it('httpGet: GET the path on the default host, User-Agent istio-probe/1.0, headers and Host as given; [200,400) is healthy', async () => {
    seen = [];
    status = 200;
    assert.deepEqual(await run(httpProber({ port, path: '/healthz?deep=1', httpHeaders: [{ name: 'X-Probe', value: 'a' }, { name: 'Host', value: 'reviews.local' }] }, '127.0.0.1')), { healthy: true });
    assert.equal(seen[0]?.url, '/healthz?deep=1');
    assert.equal(seen[0]?.headers['user-agent'], 'istio-probe/1.0');
    assert.equal(seen[0]?.headers['x-probe'], 'a');
    assert.equal(seen[0]?.headers.host, 'reviews.local');
    await run(httpProber({ port, httpHeaders: [{ name: 'User-Agent', value: 'mine' }] }, '127.0.0.1'));
    assert.equal(seen[1]?.url, '/', 'the path defaults to /');
    assert.equal(seen[1]?.headers['user-agent'], 'mine');
    status = 399;
    assert.equal((await run(httpProber({ port }, '127.0.0.1'))).healthy, true);
    status = 400;
    assert.deepEqual(await run(httpProber({ port }, '127.0.0.1')), { healthy: false, message: 'status code was not from [200,400), bad code 400' });
    status = 500;
    assert.equal((await run(httpProber({ port, host: '127.0.0.1' }, 'no-such-host.invalid'))).healthy, false);
    assert.equal(seen.length, 5, 'the probe host overrides the default host');
  });

  it('httpGet and tcpSocket: a refused connection is unhealthy, naming the target', async () => {
    const closed = createTcpServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const dead = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const h = await run(httpProber({ port: dead }, '127.0.0.1'));
    assert.equal(h.healthy, false);
    assert.match(h.message ?? '', new RegExp(`GET http://127\\.0\\.0\\.1:${dead}/: .*ECONNREFUSED`));
    const t = await run(tcpProber({ port: dead }, '127.0.0.1'));
    assert.equal(t.healthy, false);
    assert.match(t.message ?? '', new RegExp(`dial tcp 127\\.0\\.0\\.1:${dead}: .*ECONNREFUSED`));
    assert.deepEqual(await run(tcpProber({ port }, '127.0.0.1')), { healthy: true });
  });

  it('exec: exit 0 is healthy; another exit status, or a missing command, is not', async () => {
    const node = process.execPath;
    assert.deepEqual(await run(execProber({ command: [node, '-e', 'process.exit(0)'] })), { healthy: true });
    assert.deepEqual(await run(execProber({ command: [node, '-e', 'process.exit(3)'] })), { healthy: false, message: `exec ${node}: exit status 3` });
    const missing = await run(execProber({ command: ['/no/such/command'] }));
    assert.equal(missing.healthy, false);
    assert.match(missing.message ?? '', /ENOENT/);
    const abort = new AbortController();
    const hung = execProber({ command: [node, '-e', 'setTimeout(() => {}, 60000)'] })(abort.signal);
    setTimeout(() => abort.abort(), 50);
    assert.equal((await hung).healthy, false, 'aborting kills the command');
  });
});

describe('RegistrationHealth: reporting transitions to the control plane', () => {
  it('sends each transition once; a failed report is sent again with the next renewal; a registration made anew gets the last one again', async () => {
    const tcp = createTcpServer((s) => s.destroy());
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const port = (tcp.address() as { port: number }).port;
    const clock = new ManualClock(0);
    const sent: HealthEvent[] = [];
    let failNext = false;
    const warnings: string[] = [];
    const h = new RegistrationHealth({
      clock,
      probe: { periodSeconds: 1, tcpSocket: { port } },
      host: '127.0.0.1',
      logger: { warn: (m) => warnings.push(m) },
      describe: () => 'default/reviews-1',
      send: async (e) => {
        if (failNext) {
          failNext = false;
          throw new Error('connection refused');
        }
        sent.push(e);
      },
    });
    try {
      failNext = true;
      h.start();
      clock.advance(0);
      const settle = async () => {
        for (let i = 0; i < 20; i++) await tick();
      };
      await until(() => warnings.length === 1);
      assert.match(warnings[0] ?? '', /reporting healthy for registration default\/reviews-1 failed, retrying: connection refused/);
      assert.deepEqual(sent, []);
      h.resync(false);
      await settle();
      assert.deepEqual(sent, [{ healthy: true }]);
      h.resync(false);
      clock.advance(1000);
      await settle();
      assert.deepEqual(sent, [{ healthy: true }], 'no new report while nothing changes');
      h.resync(true);
      await settle();
      assert.deepEqual(sent, [{ healthy: true }, { healthy: true }], 'sent again to a registration made anew');
    } finally {
      await h.stop();
      await new Promise<void>((r) => tcp.close(() => r()));
    }
    assert.equal(clock.pending, 0);
  });
});

describe('RegistrationHealth: reports that race a new registration, and failed reports', () => {
  const settle = async () => {
    for (let i = 0; i < 20; i++) await tick();
  };
  async function tcpServer() {
    const tcp = createTcpServer((s) => s.destroy());
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    return { tcp, port: (tcp.address() as { port: number }).port };
  }

  it('a report in flight to the old record when the registration is made anew is sent again to the new one', async () => {
    const { tcp, port } = await tcpServer();
    const clock = new ManualClock(0);
    const sent: HealthEvent[] = [];
    let release: () => void = () => {};
    const h = new RegistrationHealth({
      clock,
      probe: { periodSeconds: 3600, tcpSocket: { port } },
      host: '127.0.0.1',
      logger: { warn: () => {} },
      describe: () => 'default/reviews-1',
      send: (e) => {
        sent.push(e);
        return sent.length === 1 ? new Promise<void>((r) => (release = r)) : Promise.resolve();
      },
    });
    try {
      h.start();
      clock.advance(0);
      await until(() => sent.length === 1);
      h.resync(true); // the renewal got 404 and registered anew: the new record has no condition
      release(); // the report to the old record answers 200 afterwards
      await settle();
      assert.deepEqual(sent, [{ healthy: true }, { healthy: true }], 'the new record gets the condition');
      h.resync(false);
      await settle();
      assert.equal(sent.length, 2, 'and only once');
    } finally {
      await h.stop();
      await new Promise<void>((r) => tcp.close(() => r()));
    }
  });

  it('a failed report is retried after 1 s, doubling to 8 s, not only at the next renewal', async () => {
    const { tcp, port } = await tcpServer();
    const clock = new ManualClock(0);
    const attempts: number[] = [];
    let failing = true;
    const h = new RegistrationHealth({
      clock,
      probe: { periodSeconds: 3600, tcpSocket: { port } },
      host: '127.0.0.1',
      logger: { warn: () => {} },
      describe: () => 'default/reviews-1',
      send: async () => {
        attempts.push(clock.now());
        if (failing) throw new Error('503');
      },
    });
    try {
      h.start();
      clock.advance(0);
      await until(() => attempts.length === 1);
      await settle();
      for (const step of [1000, 2000, 4000, 8000, 8000]) {
        clock.advance(step);
        await settle();
      }
      assert.deepEqual(attempts, [0, 1000, 3000, 7000, 15_000, 23_000]);
      failing = false;
      clock.advance(8000);
      await settle();
      assert.equal(attempts.length, 7);
      clock.advance(60_000);
      await settle();
      assert.equal(attempts.length, 7, 'delivered: no more retries');
    } finally {
      await h.stop();
      await new Promise<void>((r) => tcp.close(() => r()));
    }
    assert.equal(clock.pending, 0);
  });
});

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(check());
}
