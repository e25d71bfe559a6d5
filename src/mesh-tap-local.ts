/**
 * Which local address this process's undici connections to an endpoint use, for `/tap`'s
 * outbound `src=` (Linkerd shows the pod's address there): learned from undici's
 * `undici:client:sendHeaders` — each request's socket — only while a tap client is connected.
 * undici does not tell a request's handler which connection carried it, so an endpoint's entry is
 * the connection that last sent a request to it: the address is the one this workload reaches the
 * endpoint from, the port that connection's.
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import { formatHostPort } from './core/host-port.ts';

const sendHeaders = channel('undici:client:sendHeaders');

/** Most endpoints remembered (then forgotten all at once: a tap shows recent calls). */
const MAX_ENDPOINTS = 4096;

interface SentHeaders {
  readonly request?: { readonly origin?: unknown } | undefined;
  readonly socket?: { readonly localAddress?: string | undefined; readonly localPort?: number | undefined } | undefined;
}

/** Endpoint (`address:port`, as the mesh names it) → the local end of its latest connection. */
export class LocalAddresses {
  readonly #byEndpoint = new Map<string, string>();
  /** Origins as undici has them (`http://10.0.0.1:8080`) → the endpoint's key. */
  readonly #origins = new Map<string, string>();
  readonly #listener = (m: unknown): void => this.#sent(m as SentHeaders);
  #on = false;

  /** Starts listening (a tap client connected). */
  start(): void {
    if (this.#on) return;
    this.#on = true;
    sendHeaders.subscribe(this.#listener);
  }

  /** Stops listening and forgets (the last tap client went away). */
  stop(): void {
    if (!this.#on) return;
    this.#on = false;
    sendHeaders.unsubscribe(this.#listener);
    this.#byEndpoint.clear();
    this.#origins.clear();
  }

  /** The local end of the latest connection to `endpoint`, when one was seen. */
  of(endpoint: string | undefined): string | undefined {
    return endpoint === undefined ? undefined : this.#byEndpoint.get(endpoint);
  }

  #sent(m: SentHeaders): void {
    const origin = m.request?.origin;
    const address = m.socket?.localAddress;
    if (address === undefined || (typeof origin !== 'string' && !(origin instanceof URL))) return;
    const o = String(origin);
    let key = this.#origins.get(o);
    if (key === undefined) {
      let u: URL;
      try {
        u = new URL(o);
      } catch {
        return;
      }
      key = formatHostPort(u.hostname.replace(/^\[|\]$/g, ''), u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : u.port);
      if (this.#origins.size >= MAX_ENDPOINTS) this.#origins.clear();
      this.#origins.set(o, key);
    }
    if (this.#byEndpoint.size >= MAX_ENDPOINTS && !this.#byEndpoint.has(key)) this.#byEndpoint.clear();
    this.#byEndpoint.set(key, formatHostPort(address, m.socket?.localPort ?? 0));
  }
}
