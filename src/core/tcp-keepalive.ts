/**
 * What this platform lets a process set of TCP keepalive, read once: whether Node sets a
 * socket's probe interval and count (`socket.setKeepAlive(enable, delay, interval, count)`, from
 * v24.19), and the operating system's own keepalive settings (Linux's sysctls, else the values
 * Linux ships with) — what Envoy leaves in place for a field a DestinationRule does not set.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { Socket } from 'node:net';

/** True when this Node sets a socket's keepalive interval and probe count (v24.19 and later). */
export const KEEPALIVE_PROBES_SETTABLE = Socket.prototype.setKeepAlive.length >= 4;

function sysctl(name: string, fallback: number): number {
  try {
    const n = Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : fallback;
  } catch {
    return fallback;
  }
}

/**
 * The operating system's keepalive settings, in ms and probes. (Node cannot leave them in place:
 * given an idle time it also sets the interval and count, to 1 s and 10 unless told; given none
 * it sets neither.)
 */
export const OS_KEEPALIVE = Object.freeze({ timeMs: sysctl('tcp_keepalive_time', 7200) * 1000, intervalMs: sysctl('tcp_keepalive_intvl', 75) * 1000, probes: sysctl('tcp_keepalive_probes', 9) });
