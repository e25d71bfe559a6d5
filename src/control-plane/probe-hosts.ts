/**
 * Which hosts a WorkloadGroup's httpGet and tcpSocket probes may reach. The probe comes from the
 * control plane's config and runs in every registered workload, and its result (with the probe's
 * error) is published in the WorkloadEntry's `Healthy` condition: a probe at any host would let
 * whoever writes config make every workload scan its network and publish what it found.
 * pilot-agent's HTTP prober binds its source address to 127.0.0.6 (`health_probers.go`
 * `NewHTTPProber`: `d.LocalAddr = status.UpstreamLocalAddressIPv4`), so it reaches only the VM
 * itself. meshlet probes, by default, only the workload's registered address and loopback
 * (`127.0.0.0/8`, `::1`, `localhost`); the app names any other host with
 * `mesh.register({ probeHosts })`.
 *
 * @module
 */
import { BlockList, isIP } from 'node:net';

/** Judges a probe's host: undefined when it may be probed, else why not. */
export type ProbeHostCheck = (host: string) => string | undefined;

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** The host without IPv6 brackets, lower-cased. */
function bare(host: string): string {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return h.toLowerCase();
}

/** Whether `a` and `b` name the same host (IP addresses compared as addresses: `::1` is `0:0::1`). */
function same(a: string, b: string): boolean {
  const fa = isIP(a);
  if (fa === 0 || fa !== isIP(b)) return a === b;
  const list = new BlockList();
  list.addAddress(a, fa === 4 ? 'ipv4' : 'ipv6');
  return list.check(b, fa === 4 ? 'ipv4' : 'ipv6');
}

/** Whether `host` is a loopback address or `localhost`. */
export function isLoopback(host: string): boolean {
  const h = bare(host);
  if (h === 'localhost') return true;
  const family = isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 4 ? 'ipv4' : 'ipv6');
}

/** The hosts a registration's probe may reach: its own address, loopback, and `extra` (the app's `probeHosts`). */
export function probeHostCheck(own: string, extra: readonly string[] = []): ProbeHostCheck {
  const allowed = [bare(own), ...extra.map(bare)];
  return (host) => {
    const h = bare(host);
    if (isLoopback(h) || allowed.some((a) => same(a, h))) return undefined;
    return `host ${h} is not this workload's address (${bare(own)}) or loopback: probes reach only the workload itself unless the app allows other hosts with mesh.register({ probeHosts: ['${h}'] })`;
  };
}
