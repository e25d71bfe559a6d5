/**
 * Fetching a JWKS or an OpenID discovery document: a GET through a dedicated undici `Agent` —
 * never the mesh's dispatcher, never the global one — with a deadline on the injected clock, a
 * bounded body and redirects followed (as istiod's Go client does).
 *
 * Like istiod's `jwksResolver`, the agent refuses to connect to link-local addresses
 * (169.254.0.0/16, fe80::/10 and their multicast ranges, where cloud instance metadata lives)
 * and to the known metadata addresses outside them (Alibaba's 100.100.100.200, AWS's
 * fd00:ec2::/32), whether the URL names them or DNS resolves to them.
 *
 * @module
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { Agent, buildConnector, type Dispatcher, interceptors } from 'undici';
import type { Clock } from '../../core/clock.ts';

/** The largest JWKS or discovery document read; a longer body fails the fetch. */
export const MAX_DOCUMENT_BYTES = 1024 * 1024;

/** Redirects followed (Go's `http.Client` default, which istiod uses). */
const MAX_REDIRECTS = 10;

const BLOCKED = new BlockList();
BLOCKED.addSubnet('169.254.0.0', 16, 'ipv4');
BLOCKED.addSubnet('224.0.0.0', 24, 'ipv4');
BLOCKED.addSubnet('fe80::', 10, 'ipv6');
BLOCKED.addSubnet('ff02::', 16, 'ipv6');
BLOCKED.addAddress('100.100.100.200', 'ipv4');
BLOCKED.addSubnet('fd00:ec2::', 32, 'ipv6');

/** Why an address may not be fetched from, or undefined when it may. */
export function blockedAddressReason(address: string): string | undefined {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const family = isIP(bare);
  if (family === 0) return undefined;
  return BLOCKED.check(bare, family === 4 ? 'ipv4' : 'ipv6')
    ? `connection to ${bare} refused: link-local and cloud metadata addresses are never fetched from (as istiod)`
    : undefined;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** `dns.lookup`, with blocked addresses filtered out (an error when none is left). */
function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const allowed = addresses.filter((a) => blockedAddressReason(a.address) === undefined);
    if (allowed.length === 0) {
      const e: NodeJS.ErrnoException = new Error(blockedAddressReason(addresses[0]?.address ?? '') ?? `${hostname} resolves to no address`);
      e.code = 'EADDRNOTAVAIL';
      return callback(e, []);
    }
    if (options.all) return callback(null, allowed);
    const first = allowed[0] as LookupAddress;
    callback(null, first.address, first.family);
  });
}

/** A dedicated agent for key fetches: guarded connects and followed redirects. */
export function createJwksAgent(): Dispatcher {
  const connect = buildConnector({ lookup: guardedLookup } as buildConnector.BuildOptions);
  const agent = new Agent({
    connect: (opts, cb) => {
      const why = blockedAddressReason(opts.hostname);
      if (why !== undefined) {
        cb(new Error(why), null);
        return;
      }
      connect(opts, cb);
    },
  });
  return agent.compose(interceptors.redirect({ maxRedirections: MAX_REDIRECTS }));
}

/** Fetches `url` and returns its body text; throws with a message that says what went wrong. */
export async function fetchDocument(dispatcher: Dispatcher, url: string, timeoutMs: number, clock: Clock): Promise<string> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`"${url}" is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`"${url}" is not an http:// or https:// URL`);
  const ac = new AbortController();
  const timer = clock.setTimer(() => ac.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
  try {
    const res = await dispatcher.request({
      origin: parsed.origin,
      path: `${parsed.pathname}${parsed.search}`,
      method: 'GET',
      headers: { accept: 'application/json' },
      signal: ac.signal,
    });
    const declared = Number(res.headers['content-length']);
    if (declared > MAX_DOCUMENT_BYTES) {
      res.body.destroy();
      throw new Error(`the body is ${declared} bytes; at most ${MAX_DOCUMENT_BYTES} are read`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_DOCUMENT_BYTES) {
        res.body.destroy();
        throw new Error(`the body is longer than ${MAX_DOCUMENT_BYTES} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (res.statusCode < 200 || res.statusCode >= 300) {
      throw new Error(`status ${res.statusCode}${text === '' ? '' : `: ${JSON.stringify(text.slice(0, 100))}`}`);
    }
    return text;
  } catch (err) {
    if (ac.signal.aborted) throw ac.signal.reason;
    throw err;
  } finally {
    timer.clear();
  }
}

/**
 * Finds the JWKS URI of an issuer by OpenID discovery, as istiod does: the `jwks_uri` of
 * `<issuer without trailing slash>/.well-known/openid-configuration`.
 */
export async function discoverJwksUri(dispatcher: Dispatcher, issuer: string, timeoutMs: number, clock: Clock): Promise<string> {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  let text: string;
  try {
    text = await fetchDocument(dispatcher, url, timeoutMs, clock);
  } catch (err) {
    throw new Error(`OpenID discovery at ${url} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`OpenID discovery at ${url}: the document is not JSON`);
  }
  const uri = typeof doc === 'object' && doc !== null ? (doc as Record<string, unknown>).jwks_uri : undefined;
  if (typeof uri !== 'string' || uri === '') throw new Error(`OpenID discovery at ${url}: no "jwks_uri" string in the document`);
  return uri;
}
