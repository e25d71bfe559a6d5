/**
 * The three readiness probes of a WorkloadGroup, as pilot-agent runs them
 * (`pkg/istio-agent/health/health_probers.go`): an HTTP GET whose status in [200, 400) is
 * healthy, a TCP connect, a command that exits 0. Each takes an AbortSignal: the caller times
 * it out on the mesh's clock ({@link ReadinessChecker}).
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type { ReadinessProbe } from '../config/types/networking.ts';

/** One probe's answer: healthy, or not with why. */
export interface ProbeOutcome {
  readonly healthy: boolean;
  readonly message?: string;
}

/** One probe run; resolves (never rejects) once it knows, or soon after `signal` aborts. */
export type Prober = (signal: AbortSignal) => Promise<ProbeOutcome>;

const fail = (message: string): ProbeOutcome => ({ healthy: false, message });

/** `[host]` for an IPv6 literal (Go's `net.JoinHostPort`). */
function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * `httpGet`: GET `scheme://host:port/path` (scheme `http` unless `HTTPS`, path `/` by default,
 * host the probe's `host`, else `defaultHost`), with `httpHeaders` (a `Host` header sets the
 * request's host) and `User-Agent: istio-probe/1.0` unless given; HTTPS does not verify the
 * certificate (as Kubernetes and pilot-agent). Healthy on a status in [200, 400).
 */
export function httpProber(cfg: NonNullable<ReadinessProbe['httpGet']>, defaultHost: string): Prober {
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
  const target = `${scheme}://${hostPort(host, cfg.port)}${path}`;
  return (signal) =>
    new Promise<ProbeOutcome>((resolve) => {
      const send = scheme === 'https' ? httpsRequest : httpRequest;
      const req = send(
        target,
        // One connection per probe (DisableKeepAlives); no certificate check on HTTPS.
        { method: 'GET', headers: sent, agent: false, signal, ...(scheme === 'https' ? { rejectUnauthorized: false } : {}) },
        (res) => {
          res.resume();
          const code = res.statusCode ?? 0;
          resolve(code >= 200 && code < 400 ? { healthy: true } : fail(`status code was not from [200,400), bad code ${code}`));
        },
      );
      req.on('error', (e) => resolve(fail(`GET ${target}: ${e.message}`)));
      req.end();
    });
}

/** `tcpSocket`: healthy when a TCP connection to `host:port` (host the probe's, else `defaultHost`) opens. */
export function tcpProber(cfg: NonNullable<ReadinessProbe['tcpSocket']>, defaultHost: string): Prober {
  const host = cfg.host !== undefined && cfg.host !== '' ? cfg.host : defaultHost;
  return (signal) =>
    new Promise<ProbeOutcome>((resolve) => {
      const socket = connect({ host, port: cfg.port, signal });
      socket.once('connect', () => {
        socket.destroy();
        resolve({ healthy: true });
      });
      socket.once('error', (e) => resolve(fail(`dial tcp ${hostPort(host, cfg.port)}: ${e.message}`)));
    });
}

/**
 * `exec`: runs `command[0]` with the rest as arguments (no shell, as Go's `exec.Command`),
 * in this process's directory and environment; healthy when it exits 0. Aborting kills it.
 */
export function execProber(cfg: NonNullable<ReadinessProbe['exec']>): Prober {
  const [file = '', ...args] = cfg.command;
  return (signal) =>
    new Promise<ProbeOutcome>((resolve) => {
      let child: ReturnType<typeof spawn>;
      try {
        child = spawn(file, args, { stdio: 'ignore', signal, windowsHide: true });
      } catch (e) {
        resolve(fail(`exec ${file}: ${(e as Error).message}`));
        return;
      }
      child.once('error', (e) => resolve(fail(`exec ${file}: ${e.message}`)));
      child.once('exit', (code, sig) => resolve(code === 0 ? { healthy: true } : fail(sig !== null ? `exec ${file}: killed by ${sig}` : `exec ${file}: exit status ${code}`)));
    });
}

/** The prober of a probe; undefined for a method meshlet cannot run (`grpc`, refused by Istio's validation). */
export function proberOf(probe: ReadinessProbe, defaultHost: string): Prober | undefined {
  if (probe.httpGet) return httpProber(probe.httpGet, defaultHost);
  if (probe.tcpSocket) return tcpProber(probe.tcpSocket, defaultHost);
  if (probe.exec) return execProber(probe.exec);
  return undefined;
}
