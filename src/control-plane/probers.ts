/**
 * The three readiness probes of a WorkloadGroup, as pilot-agent runs them
 * (`pkg/istio-agent/health/health_probers.go`): an HTTP GET whose status in [200, 400) is
 * healthy (after following redirects, as Go's `http.Client`), a TCP connect, a command that
 * exits 0. Each takes an AbortSignal: the caller times it out on the mesh's clock
 * ({@link ReadinessChecker}). httpGet and tcpSocket reach only the hosts a
 * {@link ProbeHostCheck} admits (probe-hosts.ts).
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { OutgoingHttpHeaders } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type { ReadinessProbe } from '../config/types/networking.ts';
import { type ProbeHostCheck, probeHostCheck } from './probe-hosts.ts';
import { formatHostPort } from '../core/host-port.ts';

/** One probe's answer: healthy, or not with why. */
export interface ProbeOutcome {
  readonly healthy: boolean;
  readonly message?: string;
}

/** One probe run; resolves (never rejects) once it knows, or soon after `signal` aborts. */
export type Prober = (signal: AbortSignal) => Promise<ProbeOutcome>;

const fail = (message: string): ProbeOutcome => ({ healthy: false, message });


/** Go's `http.Client` default redirect limit (`defaultCheckRedirect`: "stopped after 10 redirects"). */
const MAX_REDIRECTS = 10;

/** Statuses Go's client follows when they carry a Location (`redirectBehavior`). */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Headers Go drops when a redirect leaves the original host (`shouldCopyHeaderOnRedirect`). */
const SENSITIVE = ['authorization', 'www-authenticate', 'cookie', 'cookie2', 'proxy-authorization'];

type Answer = { readonly status: number; readonly location: string | undefined } | { readonly error: string };

/** One GET; the response is destroyed unread once its status is known (no keep-alive, as pilot-agent's `DisableKeepAlives`). */
function getOnce(url: URL, headers: OutgoingHttpHeaders, signal: AbortSignal): Promise<Answer> {
  return new Promise<Answer>((resolve) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, { method: 'GET', headers, agent: false, signal, ...(url.protocol === 'https:' ? { rejectUnauthorized: false } : {}) }, (res) => {
      const location = res.headers.location;
      resolve({ status: res.statusCode ?? 0, location });
      // A body that never ends must not keep the socket (and the process) alive.
      res.destroy();
    });
    req.on('error', (e) => resolve({ error: e.message }));
    req.end();
  });
}

/**
 * `httpGet`: GET `scheme://host:port/path` (scheme `http` unless `HTTPS`, path `/` by default,
 * host the probe's `host`, else `defaultHost`), with `httpHeaders` (a `Host` header sets the
 * request's host) and `User-Agent: istio-probe/1.0` unless given; HTTPS does not verify the
 * certificate (as Kubernetes and pilot-agent). Redirects are followed as Go's `http.Client`
 * does (up to 10; `Host` kept only for a relative Location; credentials dropped when the host
 * changes), each target judged by `check`. Healthy on a final status in [200, 400).
 */
export function httpProber(cfg: NonNullable<ReadinessProbe['httpGet']>, defaultHost: string, check: ProbeHostCheck = probeHostCheck(defaultHost)): Prober {
  const scheme = (cfg.scheme ?? '').toLowerCase() === 'https' ? 'https' : 'http';
  const host = cfg.host !== undefined && cfg.host !== '' ? cfg.host : defaultHost;
  const path = cfg.path === undefined || cfg.path === '' ? '/' : cfg.path.startsWith('/') ? cfg.path : `/${cfg.path}`;
  const headers: Record<string, string[]> = {};
  for (const h of cfg.httpHeaders ?? []) {
    if (h.name === undefined || h.name === '') continue;
    const key = h.name.toLowerCase();
    headers[key] = [...(headers[key] ?? []), h.value ?? ''];
  }
  headers['user-agent'] ??= ['istio-probe/1.0'];
  // A Host header is the request's host (Go's req.Host = headers.Get("Host"): the first value).
  const sent: Record<string, string | string[]> = { ...headers };
  if (headers.host !== undefined) sent.host = headers.host[0] ?? '';
  const target = `${scheme}://${formatHostPort(host, cfg.port)}${path}`;
  return async (signal) => {
    let url: URL;
    try {
      url = new URL(target);
    } catch (e) {
      return fail(`GET ${target}: ${(e as Error).message}`);
    }
    let reqHeaders: Record<string, string | string[]> = sent;
    for (let redirects = 0; ; redirects++) {
      const refused = check(url.hostname);
      if (refused !== undefined) return fail(`GET ${url.href}: ${refused}`);
      const a = await getOnce(url, reqHeaders, signal);
      if ('error' in a) return fail(`GET ${url.href}: ${a.error}`);
      if (!REDIRECTS.has(a.status) || a.location === undefined || a.location === '') {
        return a.status >= 200 && a.status < 400 ? { healthy: true } : fail(`status code was not from [200,400), bad code ${a.status}`);
      }
      if (redirects + 1 > MAX_REDIRECTS) return fail(`GET ${target}: stopped after ${MAX_REDIRECTS} redirects`);
      let next: URL;
      try {
        next = new URL(a.location, url);
      } catch {
        return fail(`GET ${url.href}: failed to parse Location header ${JSON.stringify(a.location)}`);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') return fail(`GET ${next.href}: unsupported protocol scheme ${JSON.stringify(next.protocol.slice(0, -1))}`);
      const relative = !/^[a-z][a-z0-9+.-]*:|^\/\//i.test(a.location);
      const copied: Record<string, string | string[]> = { ...reqHeaders };
      if (!relative) delete copied.host;
      if (next.host !== url.host) for (const k of SENSITIVE) delete copied[k];
      reqHeaders = copied;
      url = next;
    }
  };
}

/** `tcpSocket`: healthy when a TCP connection to `host:port` (host the probe's, else `defaultHost`, judged by `check`) opens. */
export function tcpProber(cfg: NonNullable<ReadinessProbe['tcpSocket']>, defaultHost: string, check: ProbeHostCheck = probeHostCheck(defaultHost)): Prober {
  const host = cfg.host !== undefined && cfg.host !== '' ? cfg.host : defaultHost;
  const refused = check(host);
  return (signal) =>
    new Promise<ProbeOutcome>((resolve) => {
      if (refused !== undefined) {
        resolve(fail(`dial tcp ${formatHostPort(host, cfg.port)}: ${refused}`));
        return;
      }
      const socket = connect({ host, port: cfg.port, signal });
      socket.once('connect', () => {
        socket.destroy();
        resolve({ healthy: true });
      });
      socket.once('error', (e) => resolve(fail(`dial tcp ${formatHostPort(host, cfg.port)}: ${e.message}`)));
    });
}

/** Kills a probe command with SIGKILL (Go's `exec.CommandContext`), with its process group where there is one. */
function kill(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (process.platform !== 'win32' && child.pid !== undefined) {
    try {
      // The command leads its own process group: what it started goes with it.
      process.kill(-child.pid, 'SIGKILL');
      return;
    } catch {
      // Fall through: kill the command itself.
    }
  }
  child.kill('SIGKILL');
}

/** Probe commands running now (each leads its own process group: a signal to the mesh's group does not reach it). */
const running = new Set<ChildProcess>();

/** Kills every running probe command with its group: the process is exiting (`exit` listeners run synchronously). */
function killRunning(): void {
  for (const child of running) kill(child);
}

/**
 * Keeps `child` among the running probe commands until it exits; while there are any, this
 * process's `exit` kills them. The listener is there only while a command runs.
 */
function track(child: ChildProcess): void {
  if (running.size === 0) process.on('exit', killRunning);
  running.add(child);
  const done = (): void => {
    if (!running.delete(child) || running.size > 0) return;
    process.off('exit', killRunning);
  };
  child.once('exit', done);
  child.once('error', done);
}

/**
 * `exec`: runs `command[0]` with the rest as arguments (no shell, as Go's `exec.Command`),
 * in this process's directory and environment; healthy when it exits 0. Aborting (the timeout,
 * or stopping) kills it with SIGKILL, as Go's `exec.CommandContext` does, and with it the
 * processes it started (its process group); the promise resolves once it has exited (reaped).
 * So that it does not outlive the mesh's process, it is killed (with its group) when the
 * process exits (`process.exit()`, an uncaught exception); a process
 * ended by a signal it does not handle (SIGKILL, a default SIGTERM) or a native crash runs no
 * `exit` listener, and leaves a running command to end by itself (as pilot-agent does).
 */
export function execProber(cfg: NonNullable<ReadinessProbe['exec']>): Prober {
  const [file = '', ...args] = cfg.command;
  return (signal) =>
    new Promise<ProbeOutcome>((resolve) => {
      if (signal.aborted) {
        resolve(fail(`exec ${file}: aborted`));
        return;
      }
      let child: ChildProcess;
      try {
        child = spawn(file, args, { stdio: 'ignore', windowsHide: true, detached: process.platform !== 'win32' });
      } catch (e) {
        resolve(fail(`exec ${file}: ${(e as Error).message}`));
        return;
      }
      track(child);
      const onAbort = (): void => kill(child);
      signal.addEventListener('abort', onAbort, { once: true });
      child.once('error', (e) => {
        signal.removeEventListener('abort', onAbort);
        resolve(fail(`exec ${file}: ${e.message}`));
      });
      child.once('exit', (code, sig) => {
        signal.removeEventListener('abort', onAbort);
        resolve(code === 0 ? { healthy: true } : fail(sig !== null ? `exec ${file}: killed by ${sig}` : `exec ${file}: exit status ${code}`));
      });
    });
}

/** The prober of a probe; undefined for a method meshlet cannot run (`grpc`, refused by Istio's validation). */
export function proberOf(probe: ReadinessProbe, defaultHost: string, check: ProbeHostCheck = probeHostCheck(defaultHost)): Prober | undefined {
  if (probe.httpGet) return httpProber(probe.httpGet, defaultHost, check);
  if (probe.tcpSocket) return tcpProber(probe.tcpSocket, defaultHost, check);
  if (probe.exec) return execProber(probe.exec);
  return undefined;
}
