/**
 * IP addresses and CIDR ranges for `ipBlocks`, `remoteIpBlocks`, `source.ip`, `remote.ip` and
 * `destination.ip`, as Envoy's `CidrRange` matches them: an IPv4 address is never in an IPv6
 * range and the other way round; a socket's IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what
 * a dual-stack Node server reports) is the IPv4 address, as Envoy reports a dual-stack socket's
 * peer. Addresses are parsed into a caller's 16-byte buffer, so matching allocates nothing.
 *
 * `remote.ip` is the client address Envoy's connection manager derives from X-Forwarded-For
 * ({@link remoteAddressFromXff}).
 *
 * @module
 */

/** Address family of a parsed address: 4, 6, or 0 for text that is no address. */
export type IpVersion = 0 | 4 | 6;

function parseV4(s: string, from: number, to: number, out: Uint8Array, at: number): boolean {
  let part = 0;
  let digits = 0;
  let value = 0;
  for (let i = from; i <= to; i++) {
    const c = i === to ? 46 : s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part > 3) return false;
      out[at + part] = value;
      part++;
      digits = 0;
      value = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return false; // leading zero, as inet_pton refuses
      value = value * 10 + (c - 48);
      digits++;
      if (value > 255) return false;
    } else {
      return false;
    }
  }
  return part === 4;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function parseV6(s: string, out: Uint8Array): boolean {
  const n = s.length;
  if (n < 2) return false;
  let group = 0; // next 16-bit group to write
  let gap = -1; // group index where "::" was
  let i = 0;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
    if (i === n) {
      out.fill(0);
      return true;
    }
  }
  while (i < n) {
    if (group >= 8) return false;
    // A trailing dotted IPv4 part takes the last two groups.
    let j = i;
    let value = 0;
    let digits = 0;
    let dotted = false;
    while (j < n) {
      const c = s.charCodeAt(j);
      if (c === 58) break;
      if (c === 46) dotted = true;
      j++;
    }
    if (dotted) {
      if (j !== n || group > 6) return false;
      if (!parseV4(s, i, n, out, group * 2)) return false;
      group += 2;
      i = n;
      break;
    }
    for (let k = i; k < j; k++) {
      const h = hexValue(s.charCodeAt(k));
      if (h < 0) return false;
      value = (value << 4) | h;
      digits++;
      if (digits > 4) return false;
    }
    if (digits === 0) return false;
    out[group * 2] = value >> 8;
    out[group * 2 + 1] = value & 0xff;
    group++;
    if (j === n) {
      i = n;
      break;
    }
    // s[j] is ':'
    if (j + 1 < n && s.charCodeAt(j + 1) === 58) {
      if (gap !== -1) return false;
      gap = group;
      i = j + 2;
    } else {
      if (j + 1 === n) return false; // trailing single ':'
      i = j + 1;
    }
  }
  if (gap === -1) return group === 8;
  if (group === 8) return false; // "::" must stand for at least one group
  // Move the groups after the gap to the end, zero-fill the gap.
  const after = group - gap;
  for (let k = after - 1; k >= 0; k--) {
    out[(8 - after + k) * 2] = out[(gap + k) * 2] as number;
    out[(8 - after + k) * 2 + 1] = out[(gap + k) * 2 + 1] as number;
  }
  for (let k = gap; k < 8 - after; k++) {
    out[k * 2] = 0;
    out[k * 2 + 1] = 0;
  }
  return true;
}

/**
 * Parses an IPv4 or IPv6 address (no brackets, port or zone) into `out` (4 or 16 bytes used).
 * Returns the version, or 0 when `s` is not an address.
 */
export function parseIp(s: string, out: Uint8Array): IpVersion {
  if (s.includes(':')) return parseV6(s, out) ? 6 : 0;
  return parseV4(s, 0, s.length, out, 0) ? 4 : 0;
}

/**
 * Parses a socket's address (`remoteAddress`, `localAddress`) the way Envoy sees a dual-stack
 * socket's peer: an IPv4-mapped IPv6 address is IPv4; a zone (`fe80::1%eth0`) is dropped.
 */
export function parseSocketIp(s: string, out: Uint8Array): IpVersion {
  const pct = s.indexOf('%');
  const v = parseIp(pct === -1 ? s : s.slice(0, pct), out);
  if (v === 6 && isV4Mapped(out)) {
    out[0] = out[12] as number;
    out[1] = out[13] as number;
    out[2] = out[14] as number;
    out[3] = out[15] as number;
    return 4;
  }
  return v;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** An IP range. */
export class Cidr {
  readonly version: 4 | 6;
  readonly #bytes: Uint8Array;
  readonly #len: number;
  readonly #text: string;

  private constructor(version: 4 | 6, bytes: Uint8Array, len: number, text: string) {
    this.version = version;
    this.#bytes = bytes;
    this.#len = len;
    this.#text = text;
  }

  /** `10.0.0.0/8`, `2001:db8::/32`, or a single address (`/32`, `/128`); undefined when malformed. */
  static parse(text: string): Cidr | undefined {
    const slash = text.indexOf('/');
    const bytes = new Uint8Array(16);
    const v = parseIp(slash === -1 ? text : text.slice(0, slash), bytes);
    if (v === 0) return undefined;
    const max = v === 4 ? 32 : 128;
    let len = max;
    if (slash !== -1) {
      const p = text.slice(slash + 1);
      if (!/^\d{1,3}$/.test(p)) return undefined;
      len = Number(p);
      if (len > max) return undefined;
    }
    return new Cidr(v, bytes, len, text);
  }

  /** True when the address in `addr` (of `version`) is in this range. */
  contains(version: IpVersion, addr: Uint8Array): boolean {
    if (version !== this.version) return false;
    const full = this.#len >> 3;
    const b = this.#bytes;
    for (let i = 0; i < full; i++) if (addr[i] !== b[i]) return false;
    const rest = this.#len & 7;
    if (rest === 0) return true;
    const mask = (0xff << (8 - rest)) & 0xff;
    return ((addr[full] as number) & mask) === ((b[full] as number) & mask);
  }

  toString(): string {
    return this.#text;
  }
}

const WS = ' \t\f\v\n\r';

/**
 * Envoy's `Utility::getLastAddressFromXFF`: drops the last `skip` entries of X-Forwarded-For
 * and returns the (trimmed) entry before them, or undefined when there are not enough entries
 * or that entry is empty. The caller parses it (an entry that is no address also falls back).
 */
export function xffEntry(xff: string, skip: number): string | undefined {
  let end = xff.length;
  for (let i = 0; i < skip; i++) {
    const comma = xff.lastIndexOf(',', end - 1);
    if (comma === -1 || end === 0) return undefined;
    end = comma;
  }
  const comma = end === 0 ? -1 : xff.lastIndexOf(',', end - 1);
  let start = comma !== -1 && comma + 1 < end ? comma + 1 : 0;
  while (start < end && WS.includes(xff[start] as string)) start++;
  while (end > start && WS.includes(xff[end - 1] as string)) end--;
  return xff.slice(start, end);
}

/**
 * The client address Envoy's connection manager derives (what `remote.ip` and
 * `remoteIpBlocks` match):
 *
 * - `numTrustedProxies` undefined: an Istio sidecar's inbound listener (`use_remote_address:
 *   false`, no trusted hops): the last X-Forwarded-For entry, else the peer.
 * - `numTrustedProxies` = N (as an Istio gateway with `gatewayTopology.numTrustedProxies`,
 *   `use_remote_address: true`): N = 0 the peer; N > 0 the N-th entry from the right, else the
 *   peer.
 *
 * Returns the text to parse; the caller falls back to the peer when it is no address.
 */
export function remoteAddressFromXff(xff: string | undefined, numTrustedProxies: number | undefined): string | undefined {
  if (xff === undefined) return undefined;
  if (numTrustedProxies === undefined) return xffEntry(xff, 0);
  if (numTrustedProxies === 0) return undefined;
  return xffEntry(xff, numTrustedProxies - 1);
}
