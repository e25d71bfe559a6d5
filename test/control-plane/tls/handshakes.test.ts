/**
 * The control plane's TLS port and clients that fail the handshake, with curl and a raw socket as
 * the clients: `curl http://` gets Go net/http's `400 Bad Request` ("Client sent an HTTP request
 * to an HTTPS server."), and each failure is logged naming the peer and OpenSSL's reason, once per
 * peer address and reason a minute (ManualClock). And `--tls-cert-ttl`: the `auto` certificate's
 * lifetime, with its bounds.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { ManualClock } from '../../../src/core/clock.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { MAIN } from '../../cli/helpers.ts';
import { startTestServer, tempDir } from '../server/helpers.ts';

const opened: { close(): Promise<void> | void }[] = [];
after(async () => {
  for (const o of opened.reverse()) await o.close();
});

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 15_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }));
  });
}

/** Sends `bytes` on a plain TCP connection and reads until the server closes it. */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    let got = '';
    s.setEncoding('latin1').on('data', (d: string) => {
      got += d;
    });
    s.on('error', reject);
    s.on('close', () => resolve(got));
  });
}

/** Waits (on I/O, not time) until `pred` holds for the logs. */
async function logsUntil(logs: readonly string[], pred: (l: readonly string[]) => boolean): Promise<void> {
  for (let i = 0; i < 200 && !pred(logs); i++) await new Promise((r) => setImmediate(r));
}

describe('the TLS port and failed handshakes', { skip: skipWithout('curl') }, () => {
  it('curl http:// gets 400 "Client sent an HTTP request to an HTTPS server." (as Go net/http answers), and the attempt is logged', async () => {
    const t = await startTestServer(undefined, { tls: { auto: true } });
    opened.push(t);
    const r = await run('curl', ['-sS', '-i', `http://127.0.0.1:${t.cp.port}/healthz`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^HTTP\/1\.0 400 Bad Request\r\n/);
    assert.match(r.stdout, /\r\n\r\nClient sent an HTTP request to an HTTPS server\.\n$/);
    // Other methods OpenSSL recognizes as HTTP, over a raw socket.
    assert.equal(await raw(t.cp.port, 'POST /api/v1/apply HTTP/1.1\r\nhost: x\r\n\r\n'), 'HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n');
    await logsUntil(t.logs, (l) => l.some((x) => x.includes('http request')));
    const line = t.logs.find((l) => l.includes('TLS handshake error'));
    assert.match(line ?? '', /TLS handshake error from 127\.0\.0\.1:\d+: http request \(ERR_SSL_HTTP_REQUEST\) \(answered 400: use https:\/\/\)/);
    // And https still works.
    assert.equal((await run('curl', ['-sS', '-k', `https://127.0.0.1:${t.cp.port}/healthz`])).stdout.trim(), 'ok');
  });

  it('an untrusting client and a non-TLS client are logged with the peer and OpenSSL reason, one line per address and reason a minute', async () => {
    const clock = new ManualClock(Date.now());
    const t = await startTestServer(undefined, { tls: { auto: true }, clock });
    opened.push(t);
    const handshakeLines = () => t.logs.filter((l) => l.includes('TLS handshake error'));
    // curl without the control plane's root: it refuses the certificate (exit 60) and alerts "unknown ca".
    for (let i = 0; i < 3; i++) assert.equal((await run('curl', ['-sS', `https://127.0.0.1:${t.cp.port}/healthz`])).code, 60);
    // Not TLS, not HTTP either.
    await raw(t.cp.port, 'hello there, this is not TLS\r\n\r\n');
    await logsUntil(t.logs, () => handshakeLines().length >= 2);
    const lines = handshakeLines();
    assert.equal(lines.filter((l) => l.includes('unknown ca')).length, 1, lines.join('\n'));
    assert.match(lines.find((l) => l.includes('unknown ca')) ?? '', /from 127\.0\.0\.1:\d+: tlsv1 alert unknown ca \(ERR_SSL_TLSV1_ALERT_UNKNOWN_CA\): the client does not trust this server's certificate \(give it \/.*\/root-cert\.pem, /);
    // The trust bundle is named by its path, which the operator can hand out as it is.
    assert.ok(lines.find((l) => l.includes('unknown ca'))?.includes(`give it ${join(t.dataDir, 'root-cert.pem')}, or the CA of --tls-cert`));
    const notTls = lines.find((l) => !l.includes('unknown ca')) ?? '';
    assert.match(notTls, /from 127\.0\.0\.1:\d+: (wrong version number|packet length too long)/);
    // The next line says how many went unsaid before it.
    assert.match(notTls, /\(2 other failed handshakes not logged since the last line: at most one line per client address and reason per 60 s\)$/);
    const before = lines.length;
    // A minute later, the same failure is said again.
    clock.advance(60_000);
    assert.equal((await run('curl', ['-sS', `https://127.0.0.1:${t.cp.port}/healthz`])).code, 60);
    await logsUntil(t.logs, () => handshakeLines().length > before);
    const last = handshakeLines().at(-1) ?? '';
    assert.match(last, /unknown ca/);
    assert.doesNotMatch(last, /not logged/);
  });
});

describe('--tls-cert-ttl', () => {
  it('refuses a lifetime out of bounds, unparsable, or without --tls auto, naming the flag', () => {
    const cp = (...args: string[]) => spawnSync(process.execPath, [MAIN, 'control-plane', '--config', '.', '--port', '0', ...args], { encoding: 'utf8', timeout: 20_000 });
    const cases: [string[], RegExp][] = [
      [['--tls', 'auto', '--tls-cert-ttl', '5m'], /^meshlet: --tls-cert-ttl: the serving certificate's lifetime must be from 10m to 8760h \(365 days\), got "5m"; it is renewed at half of it$/],
      [['--tls', 'auto', '--tls-cert-ttl', '9000h'], /--tls-cert-ttl: the serving certificate's lifetime must be from 10m to 8760h \(365 days\), got "9000h"/],
      [['--tls', 'auto', '--tls-cert-ttl', 'soon'], /^meshlet: --tls-cert-ttl: .*"soon"/],
      [['--tls', 'auto', '--tls-cert-ttl', '0s'], /--tls-cert-ttl: must be more than 0, got "0s"/],
      [['--tls-cert-ttl', '2h'], /--tls-cert-ttl is the lifetime of a --tls auto certificate; give --tls auto$/],
      [['--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--tls-cert-ttl', '2h'], /give --tls auto \(a --tls-cert has its own lifetime\)/],
    ];
    for (const [args, want] of cases) {
      const r = cp(...args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr.trim(), want, args.join(' '));
    }
  });

  it('meshlet control-plane --tls auto --tls-cert-ttl 2h serves a certificate valid for 2 hours', async () => {
    const { dir, cleanup } = tempDir();
    opened.push({ close: cleanup });
    mkdirSync(join(dir, 'config'));
    const child = spawn(process.execPath, [MAIN, 'control-plane', '--config', join(dir, 'config'), '--data-dir', join(dir, 'data'), '--host', '127.0.0.1', '--port', '0', '--tls', 'auto', '--tls-cert-ttl', '2h'], { stdio: ['ignore', 'pipe', 'pipe'] });
    opened.push({
      close: async () => {
        if (child.exitCode === null) {
          child.kill('SIGTERM');
          await new Promise((r) => child.once('exit', r));
        }
      },
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const started = Date.now();
    let line = '';
    child.stdout.setEncoding('utf8');
    for await (const chunk of child.stdout) {
      line += chunk as string;
      if (line.includes('\n')) break;
    }
    assert.match(line, /listening on https:\/\//, stderr);
    const until = /TLS: serving a certificate from the control plane's CA for .* \(until ([^)]+)\)/.exec(stderr)?.[1];
    assert.ok(until !== undefined, stderr);
    const lifetime = Date.parse(until) - started;
    assert.ok(lifetime > 2 * 3600_000 - 120_000 && lifetime <= 2 * 3600_000 + 60_000, `valid for about 2h: until ${until}`);
  });
});
