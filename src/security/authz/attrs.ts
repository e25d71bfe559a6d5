/**
 * The attributes of one request, read the way Envoy's RBAC filter reads them, computed lazily
 * and at most once per evaluation. One {@link Attrs} belongs to one engine and is reset for
 * every evaluation (evaluation is synchronous), so matching allocates nothing for the common
 * attributes: the path's end without its query is an index, IP addresses are parsed into
 * buffers, the JWT's `iss` and `sub` are read from the claims object.
 *
 * @module
 */
import { type IpVersion, parseIp, parseSocketIp, remoteAddressFromXff } from './ip.ts';
import type { AuthzRequest } from './types.ts';

/** Joins a header's values as Envoy's header matcher sees them (`,`-separated). */
export function headerText(v: string | readonly string[] | undefined): string | undefined {
  if (typeof v === 'string') return v;
  // Anything else but a list (an inherited `constructor` of a plain object) is no header.
  return Array.isArray(v) && v.length > 0 ? v.join(',') : undefined;
}

/** Reads own properties only: a claim named `constructor` or `__proto__` is a claim like any other. */
function own(o: unknown, key: string): unknown {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
  return Object.hasOwn(o, key) ? (o as Record<string, unknown>)[key] : undefined;
}

/** Per-evaluation attribute reader. */
export class Attrs {
  req!: AuthzRequest;
  readonly #numTrustedProxies: number | undefined;
  #pathEnd = -1;
  #src: IpVersion | -1 = -1;
  readonly srcIp = new Uint8Array(16);
  #remote: IpVersion | -1 = -1;
  readonly remoteIp = new Uint8Array(16);
  #dest: IpVersion | -1 = -1;
  readonly destIp = new Uint8Array(16);
  #jwt = false;
  #iss: string | undefined;
  #sub: string | undefined;

  constructor(numTrustedProxies: number | undefined) {
    this.#numTrustedProxies = numTrustedProxies;
  }

  /** Starts an evaluation of `req`. */
  reset(req: AuthzRequest): this {
    this.req = req;
    this.#pathEnd = -1;
    this.#src = -1;
    this.#remote = -1;
    this.#dest = -1;
    this.#jwt = false;
    return this;
  }

  /** Where the path ends without its query or fragment (Envoy's `removeQueryAndFragment`). */
  pathEnd(): number {
    if (this.#pathEnd === -1) {
      const p = this.req.path;
      let end = 0;
      for (; end < p.length; end++) {
        const c = p.charCodeAt(end);
        if (c === 63 || c === 35) break; // '?', '#'
      }
      this.#pathEnd = end;
    }
    return this.#pathEnd;
  }

  /**
   * A header as Envoy's header map holds it: `:authority` and `host` are the authority,
   * `:method`, `:path` (with query) and `:scheme` the request's; others from the headers.
   */
  header(name: string): string | undefined {
    const r = this.req;
    switch (name) {
      case ':authority':
      case 'host':
        return r.authority === '' ? undefined : r.authority;
      case ':method':
        return r.method;
      case ':path':
        return r.path;
      case ':scheme':
        return r.scheme;
      default:
        return headerText(r.headers[name]);
    }
  }

  /** The peer certificate's URI SAN, or undefined for a connection without one (no mTLS). */
  peerUri(): string | undefined {
    const p = this.req.peer;
    return p === undefined || p.principal === '' ? undefined : p.principal;
  }

  /** `source.ip`: the TCP peer's address, parsed into {@link srcIp}. */
  srcVersion(): IpVersion {
    if (this.#src === -1) this.#src = parseSocketIp(this.req.remoteAddress, this.srcIp);
    return this.#src;
  }

  /** `remote.ip`: the client address derived from X-Forwarded-For, parsed into {@link remoteIp}. */
  remoteVersion(): IpVersion {
    if (this.#remote === -1) {
      const text = remoteAddressFromXff(headerText(this.req.headers['x-forwarded-for']), this.#numTrustedProxies);
      const v = text === undefined ? 0 : parseIp(text, this.remoteIp);
      this.#remote = v !== 0 ? v : parseSocketIp(this.req.remoteAddress, this.remoteIp);
    }
    return this.#remote;
  }

  /** `destination.ip`: the local address, parsed into {@link destIp}. */
  destVersion(): IpVersion {
    if (this.#dest === -1) {
      const a = this.req.localAddress;
      this.#dest = a === undefined ? 0 : parseSocketIp(a, this.destIp);
    }
    return this.#dest;
  }

  #readJwt(): void {
    this.#jwt = true;
    const c = this.req.claims;
    if (c !== undefined) {
      // Own properties only; `iss` and `sub` are no Object.prototype names, so a plain read is one.
      const iss = c.iss;
      const sub = c.sub;
      this.#iss = typeof iss === 'string' ? iss : undefined;
      this.#sub = typeof sub === 'string' ? sub : undefined;
      return;
    }
    // Without the payload, the principal `iss/sub` is split at its last '/' (issuers are often URLs).
    const p = this.req.requestPrincipal;
    const slash = p === undefined ? -1 : p.lastIndexOf('/');
    this.#iss = p === undefined ? undefined : slash === -1 ? p : p.slice(0, slash);
    this.#sub = p === undefined || slash === -1 ? undefined : p.slice(slash + 1);
  }

  /** The JWT's `iss` claim (a string), if any. */
  iss(): string | undefined {
    if (!this.#jwt) this.#readJwt();
    return this.#iss;
  }

  /** The JWT's `sub` claim (a string), if any. */
  sub(): string | undefined {
    if (!this.#jwt) this.#readJwt();
    return this.#sub;
  }

  /** A (nested) JWT claim, as Envoy's metadata matcher walks `payload.<a>.<b>`. */
  claim(path: readonly string[]): unknown {
    let v: unknown = this.req.claims;
    for (const k of path) {
      v = own(v, k);
      if (v === undefined) return undefined;
    }
    return v;
  }
}
