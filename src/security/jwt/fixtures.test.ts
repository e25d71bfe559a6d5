/**
 * Test fixtures for the JWT engine (this file has no tests of its own): keys generated at test
 * time, tokens signed by hand (so a test can put anything in a header, `alg: none` and
 * HMAC-with-a-public-key included), validated RequestAuthentication objects, and a real HTTP
 * server on 127.0.0.1 that serves JWKS and OpenID discovery documents, counts requests and can
 * hold or fail them.
 *
 * @module
 */
import { constants, createHmac, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { IssueList } from '../../config/issues.ts';
import { fromObjects } from '../../config/load.ts';
import { ofKind, type Resource } from '../../config/resource.ts';
import type { RequestAuthenticationSpec } from '../../config/types/security.ts';
import { validateDocuments } from '../../config/validate/index.ts';

/** A RequestAuthentication object (as YAML would give it). */
export function ra(name: string, namespace: string, spec: RequestAuthenticationSpec, creationTimestamp?: string): object {
  return { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name, namespace, ...(creationTimestamp ? { creationTimestamp } : {}) }, spec };
}

/** Validates resource objects as the loader does; throws on an error so a test never runs on config Istio would refuse. */
export function validated(objects: readonly object[]): Resource<'RequestAuthentication'>[] {
  const issues = new IssueList();
  const { resources } = validateDocuments(fromObjects(objects), {}, issues);
  const errors = issues.ofLevel('error').map(String);
  if (errors.length > 0) throw new Error(`invalid test config:\n${errors.join('\n')}`);
  return ofKind(resources, 'RequestAuthentication');
}

/** base64url of a string, bytes, or a JSON value. */
export function b64url(v: unknown): string {
  if (typeof v === 'string') return Buffer.from(v, 'utf8').toString('base64url');
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64url');
  return Buffer.from(JSON.stringify(v), 'utf8').toString('base64url');
}

/** A signing key and its public JWK. */
export interface TestKey {
  readonly alg: string;
  readonly kid: string;
  readonly privateKey: KeyObject | Buffer;
  /** The public JWK (with kid; with alg when `withAlg`). */
  readonly jwk: Record<string, string>;
}

/** Generates a key for `alg` (RS*, PS*, ES256/384/512, EdDSA, HS*). */
export function makeKey(alg: string, kid: string, options: { withAlg?: boolean; rsaBits?: number } = {}): TestKey {
  const extra: Record<string, string> = { kid, ...(options.withAlg ? { alg } : {}) };
  if (alg.startsWith('HS')) {
    const secret = Buffer.from(`secret-${kid}-0123456789abcdef0123456789abcdef`);
    return { alg, kid, privateKey: secret, jwk: { kty: 'oct', k: secret.toString('base64url'), ...extra } };
  }
  let pair: { privateKey: KeyObject; publicKey: KeyObject };
  if (alg.startsWith('RS') || alg.startsWith('PS')) pair = generateKeyPairSync('rsa', { modulusLength: options.rsaBits ?? 2048 });
  else if (alg === 'EdDSA') pair = generateKeyPairSync('ed25519');
  else pair = generateKeyPairSync('ec', { namedCurve: { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg] ?? 'P-256' });
  const jwk = pair.publicKey.export({ format: 'jwk' }) as Record<string, string>;
  return { alg, kid, privateKey: pair.privateKey, jwk: { ...jwk, ...extra } };
}

const HASH: Record<string, string> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };

/** Signs `input` as `alg` with `key` (raw, so a test can sign with the wrong kind of key). */
export function signInput(alg: string, key: KeyObject | Buffer, input: string): Buffer {
  const hash = HASH[alg.slice(2)] ?? 'sha256';
  if (alg.startsWith('HS')) return createHmac(hash, key as Buffer).update(input).digest();
  if (alg === 'EdDSA') return sign(null, Buffer.from(input), key as KeyObject);
  if (alg.startsWith('PS')) return sign(hash, Buffer.from(input), { key: key as KeyObject, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 });
  if (alg.startsWith('ES')) return sign(hash, Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' });
  return sign(hash, Buffer.from(input), key as KeyObject);
}

/** A compact token: `header` gets `alg` (and `kid`) unless it sets them; signed with `key`'s private key. */
export function mint(key: TestKey, payload: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const h = { alg: key.alg, kid: key.kid, typ: 'JWT', ...header };
  const input = `${b64url(h)}.${b64url(payload)}`;
  return `${input}.${signInput(String(h.alg), key.privateKey, input).toString('base64url')}`;
}

/** A JWKS document of public keys. */
export function jwksOf(...keys: TestKey[]): string {
  return JSON.stringify({ keys: keys.map((k) => k.jwk) });
}

/** How the test server answers one path. */
export interface Route {
  status?: number;
  body?: string;
  headers?: Record<string, string>;
  /** Hold the answer until {@link JwksServer.release} (a slow or hung server). */
  hold?: boolean;
}

/** A JWKS / discovery server on 127.0.0.1. */
export interface JwksServer {
  readonly url: string;
  readonly server: Server;
  /** Requests per path. */
  readonly hits: Map<string, number>;
  routes: Map<string, Route>;
  /** Answers every held request. */
  release(): void;
  /** Requests being held. */
  readonly held: number;
  close(): Promise<void>;
}

/** Starts a server; `routes` maps a path to its answer (unknown paths get 404). */
export async function startJwksServer(routes: Record<string, Route> = {}): Promise<JwksServer> {
  const held: (() => void)[] = [];
  const hits = new Map<string, number>();
  const state = { routes: new Map(Object.entries(routes)) };
  const answer = (res: ServerResponse, r: Route | undefined) => {
    if (res.destroyed) return;
    if (r === undefined) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(r.status ?? 200, { 'content-type': 'application/json', ...r.headers }).end(r.body ?? '');
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const r = state.routes.get(path);
    if (r?.hold) held.push(() => answer(res, { ...r, hold: false }));
    else answer(res, r);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    hits,
    get routes() {
      return state.routes;
    },
    set routes(m: Map<string, Route>) {
      state.routes = m;
    },
    release() {
      for (const f of held.splice(0)) f();
    },
    get held() {
      return held.length;
    },
    async close() {
      for (const f of held.splice(0)) f();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
