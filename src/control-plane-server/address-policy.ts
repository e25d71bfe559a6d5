/**
 * Which addresses a workload may register. A registered address is where other meshes send
 * traffic, so a workload must not be able to point them at addresses that are not a workload
 * endpoint: the cloud metadata service (169.254.169.254 and friends: credentials), link-local
 * addresses, the meshes' own loopback (every mesh would call itself), or the unspecified and
 * multicast addresses. The rule, in order:
 *
 * 1. A `unix://` address is refused (it names a file on the registering machine). A DNS name is
 *    refused unless {@link AddressPolicyOptions.hostnames} (a name can resolve to anything).
 * 2. IPv4-mapped, IPv4-compatible and NAT64 (`64:ff9b::/96`) IPv6 addresses are judged as the
 *    IPv4 address they carry; a zone index (`fe80::1%eth0`) is refused.
 * 3. Unspecified (`0.0.0.0/8`, `::`), multicast (`224.0.0.0/4`, `ff00::/8`) and broadcast
 *    (`255.255.255.255`) addresses are always refused: they are no endpoint.
 * 4. An address inside one of {@link AddressPolicyOptions.allow}'s CIDRs is accepted (this is how
 *    an operator admits a link-local or loopback range on purpose).
 * 5. When `allow` is given, any other address is refused.
 * 6. Cloud metadata addresses and link-local addresses (`169.254.0.0/16`, `fe80::/10`) are refused;
 *    loopback addresses (`127.0.0.0/8`, `::1`) are refused unless {@link AddressPolicyOptions.loopback}.
 * 7. Anything else (a unicast IP) is accepted.
 *
 * With {@link AddressPolicyOptions.peerOnly} a workload may only register the address its request
 * comes from (checked before the rule above; behind NAT or a proxy that is not the workload's).
 *
 * @module
 */
import { BlockList, isIP } from 'node:net';
import { InvalidArgumentError } from '../core/errors.ts';

/** Options of {@link AddressPolicy}: what registrations may claim. */
export interface AddressPolicyOptions {
  /**
   * CIDRs (`10.0.0.0/8`, `fd00::/8`, or single addresses) registered addresses must be in. When
   * given, addresses outside them are refused, and addresses inside them are accepted even when
   * loopback, link-local or a metadata address.
   * @defaultValue none: any unicast address that is not refused by class
   */
  readonly allow?: readonly string[];
  /**
   * Accept loopback addresses (`127.0.0.0/8`, `::1`). Only meaningful when every mesh runs on the
   * control plane's machine. @defaultValue true when the server listens on a loopback address
   * only or runs `--insecure`; otherwise false
   */
  readonly loopback?: boolean;
  /** Accept DNS names (they may resolve to any address, including the ones refused here). @defaultValue false */
  readonly hostnames?: boolean;
  /**
   * A workload may register only the address its registration request comes from (the TCP
   * peer), so it cannot point other meshes at any other host. @defaultValue false
   */
  readonly peerOnly?: boolean;
}

/** Addresses of cloud instance-metadata services (AWS, GCP, Azure, OCI, OpenStack; ECS; AWS IPv6; Alibaba). */
export const METADATA_ADDRESSES: readonly string[] = ['169.254.169.254', '169.254.170.2', '169.254.169.123', 'fd00:ec2::254', '100.100.100.200'];

/** The outcome of {@link AddressPolicy.check}. */
export type AddressCheck = { readonly ok: true; readonly address: string } | { readonly ok: false; readonly reason: string };

/** 16 bytes of an IPv6 address (no zone), or undefined. */
function ipv6Bytes(text: string): Uint8Array | undefined {
  let s = text;
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    const v4 = s.slice(lastColon + 1);
    if (isIP(v4) !== 4) return undefined;
    tail = v4.split('.').map(Number);
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parse = (h: string): number[] => (h === '' ? [] : h.split(':').map((g) => Number.parseInt(g, 16)));
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = 8 - head.length - rest.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined;
  const groups = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...rest];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  if (tail.length === 4) bytes.set(tail, 12);
  return bytes;
}

/** The IPv4 address an IPv6 address carries (mapped `::ffff:0:0/96`, compatible `::/96`, NAT64 `64:ff9b::/96`), if any. */
function embeddedIpv4(b: Uint8Array): { v4: string; mapped: boolean } | undefined {
  const zero = (from: number, to: number): boolean => b.subarray(from, to).every((x) => x === 0);
  const v4 = `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return { v4, mapped: true };
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return { v4, mapped: false };
  // IPv4-compatible (deprecated), but not :: and ::1.
  if (zero(0, 12) && !(zero(12, 15) && (b[15] === 0 || b[15] === 1))) return { v4, mapped: false };
  return undefined;
}

function cidrList(entries: readonly string[], what: string): BlockList {
  const list = new BlockList();
  for (const e of entries) {
    const [net, bits, extra] = e.trim().split('/');
    const family = isIP(net ?? '');
    const prefix = bits === undefined ? (family === 4 ? 32 : 128) : Number(bits);
    if (family === 0 || extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128) || (bits !== undefined && !/^\d+$/.test(bits))) {
      throw new InvalidArgumentError(`${what}: "${e}" is not an IP address or CIDR (e.g. 10.0.0.0/8, fd00::/8)`);
    }
    list.addSubnet(net!, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

const ALWAYS_REFUSED = cidrList(['0.0.0.0/8', '224.0.0.0/4', '255.255.255.255/32', '::/128', 'ff00::/8'], 'internal');
const METADATA = cidrList(METADATA_ADDRESSES, 'internal');
const LINK_LOCAL = cidrList(['169.254.0.0/16', 'fe80::/10'], 'internal');
const LOOPBACK = cidrList(['127.0.0.0/8', '::1/128'], 'internal');

/** Whether a listen host is a loopback address (or `localhost`): then every client runs on this machine. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const family = isIP(host);
  return family !== 0 && LOOPBACK.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Whether loopback addresses are accepted when the options do not say: when the server listens on
 * a loopback address only (every mesh then runs on this machine, where loopback means the same
 * host to all of them), or runs `--insecure` (a test machine).
 */
export function loopbackByDefault(host: string, insecure: boolean): boolean {
  return insecure || isLoopbackHost(host);
}

/** Judges registered addresses (see the module comment for the rule). */
export class AddressPolicy {
  readonly #allow: BlockList | undefined;
  readonly #allowText: string;
  readonly #loopback: boolean;
  readonly #hostnames: boolean;
  readonly #peerOnly: boolean;

  /** Throws `InvalidArgumentError` naming a bad CIDR. */
  constructor(options: AddressPolicyOptions & { readonly loopback: boolean }) {
    const allow = options.allow ?? [];
    this.#allow = allow.length === 0 ? undefined : cidrList(allow, 'registration address allow list');
    this.#allowText = allow.join(', ');
    this.#loopback = options.loopback;
    this.#hostnames = options.hostnames === true;
    this.#peerOnly = options.peerOnly === true;
  }

  /** Whether loopback addresses are accepted. */
  get loopback(): boolean {
    return this.#loopback;
  }

  /**
   * Accepts an address (the canonical form to store: lower-case, IPv6 compressed, IPv4-mapped as
   * IPv4) or says why not. `peer` is the address the registration request came from.
   */
  check(address: string, peer?: string): AddressCheck {
    const result = this.#check(address);
    if (!result.ok || !this.#peerOnly || peer === undefined) return result;
    if (result.address !== (normalize(peer)?.canonical ?? peer)) {
      return { ok: false, reason: `only the address the request comes from (${peer}) may be registered (--registration-peer-only)` };
    }
    return result;
  }

  #check(address: string): AddressCheck {
    if (/^unix:\/\//i.test(address)) return { ok: false, reason: 'a unix:// socket names a file on the registering machine, which other meshes cannot reach' };
    if (isIP(address) === 0) {
      if (!this.#hostnames) {
        return { ok: false, reason: 'not an IP address; DNS names are not accepted (they may resolve to any address: start the control plane with --registration-hostnames to allow them)' };
      }
      return { ok: true, address: address.toLowerCase() };
    }
    if (address.includes('%')) return { ok: false, reason: 'an IPv6 zone index names an interface of the registering machine' };
    const { ip, type, canonical } = normalize(address)!;
    const shown = ip === address ? address : `${address} (${ip})`;
    if (ALWAYS_REFUSED.check(ip, type)) return { ok: false, reason: `${shown} is an unspecified, multicast or broadcast address, not a workload` };
    if (this.#allow?.check(ip, type) === true) return { ok: true, address: canonical };
    if (this.#allow !== undefined) return { ok: false, reason: `${shown} is not in the allowed ranges (${this.#allowText})` };
    if (METADATA.check(ip, type)) return { ok: false, reason: `${shown} is a cloud metadata service address` };
    if (LINK_LOCAL.check(ip, type)) return { ok: false, reason: `${shown} is a link-local address` };
    if (LOOPBACK.check(ip, type) && !this.#loopback) {
      return { ok: false, reason: `${shown} is a loopback address: other meshes would call themselves (accepted only when the control plane listens on loopback, runs --insecure, or with --registration-loopback)` };
    }
    return { ok: true, address: canonical };
  }
}

/**
 * An IP literal (no zone) as it is judged and stored: the IPv4 address an IPv6 one carries
 * (`ip`, `type`), and the canonical text to store; undefined for anything else.
 */
function normalize(address: string): { ip: string; type: 'ipv4' | 'ipv6'; canonical: string } | undefined {
  const family = isIP(address);
  if (family === 0 || address.includes('%')) return undefined;
  if (family === 4) return { ip: address, type: 'ipv4', canonical: address };
  const canonical = new URL(`http://[${address}]`).hostname.slice(1, -1);
  const v4 = embeddedIpv4(ipv6Bytes(canonical) ?? new Uint8Array(16));
  if (v4 === undefined) return { ip: canonical, type: 'ipv6', canonical };
  // An IPv4-mapped address is the IPv4 address (what a dual-stack socket reports).
  return { ip: v4.v4, type: 'ipv4', canonical: v4.mapped ? v4.v4 : canonical };
}
