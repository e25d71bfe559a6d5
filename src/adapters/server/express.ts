/**
 * The Express (4 and 5) middleware, `app.use(mesh.express())`: the server adapter for Node's own
 * request objects (node.ts) with what Express adds — a mount path, and the scheme and authority
 * of an absolute-form target its router keeps in front of the path.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { InboundGuard } from '../../inbound/guard.ts';
import { type MeshRequest, serveNode } from './node.ts';

/** Express (4 and 5) middleware: `app.use(mesh.express())`, first. */
export function expressMiddleware(guard: () => InboundGuard, hint?: (req: IncomingMessage) => void): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
  return (req, res, next) => {
    hint?.(req);
    // Mounted under a path (app.use('/api', mesh.express()), a router's use): Express hands the
    // middleware the rest of the path; the mesh judges the whole path, as a sidecar sees it.
    const base = (req as { baseUrl?: string }).baseUrl;
    const mounted = typeof base === 'string' && base !== '' && (req as MeshRequest).meshlet === undefined ? mountedTarget(base, req.url ?? '/', (req as { originalUrl?: string }).originalUrl) : undefined;
    // An absolute-form target (`GET http://host/api/x`): Express's router took its scheme and
    // authority (its "protohost") when it started and strips mount paths after that many
    // characters, so the path the mesh hands on keeps them in front (the router's parseurl reads
    // the same path); served as origin-form, every router mounted under a path would answer 404.
    const url = req.url ?? '/';
    const protohost = mounted === undefined && url.charCodeAt(0) !== 47 /* / */ ? protohostOf(url) : undefined;
    // `next` itself (serveNode calls it with no argument), unless the protohost goes back in front.
    serveNode(guard(), req, res, protohost === undefined ? (next as () => void) : keepingProtohost(req, protohost, next), true, mounted);
  };
}

/**
 * The whole target of a request Express handed a middleware mounted under `base`, from the rest
 * it left in `url`. Express adds a `/` when the mount path took the whole path (`/api` and
 * `/api?x=1` reach the middleware as `/` and `/?x=1`), and keeps an absolute-form target's scheme
 * and authority in front: the target is the one received (`originalUrl`), not `/api/`, which a
 * policy on `/api` would not match.
 */
function mountedTarget(base: string, url: string, originalUrl: string | undefined): string {
  // The scheme and authority Express kept in front (all that is left of `http://host/api`: no
  // slash after the authority, which protohostOf — Express's own reading of a whole target — needs).
  const protohost = url.charCodeAt(0) === 47 /* / */ ? undefined : /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(url)?.[0];
  if (protohost !== undefined) return base + url.slice(protohost.length);
  if ((url === '/' || url.startsWith('/?')) && originalUrl === base + url.slice(1)) return originalUrl;
  return base + url;
}

/** The scheme and authority of an absolute-form target, exactly as Express's router reads them (its getProtohost), or undefined for none. */
function protohostOf(url: string): string | undefined {
  const q = url.indexOf('?');
  const fqdn = url.slice(0, q === -1 ? url.length : q).indexOf('://');
  if (fqdn === -1) return undefined;
  const p = url.substring(0, url.indexOf('/', 3 + fqdn));
  return p === '' ? undefined : p;
}

/** `next`, with the protohost put back in front first (made here: a closure in the middleware, even one never made, would make V8 allocate what it captures on every request). */
function keepingProtohost(req: IncomingMessage, protohost: string, next: (err?: unknown) => void): () => void {
  return () => keepProtohost(req, protohost, next);
}

function keepProtohost(req: IncomingMessage, protohost: string, next: (err?: unknown) => void): void {
  const url = req.url ?? '/';
  if (url.charCodeAt(0) === 47 /* / */) req.url = protohost + url;
  next();
}
