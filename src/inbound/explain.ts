/**
 * `mesh.explainInbound(request)` and `meshlet explain --inbound`: how this workload's server side
 * would judge one request, without serving it — the normalized path, what RequestAuthentication
 * makes of its tokens, which AuthorizationPolicy and rule decide it (or the default deny, or no
 * policy), dry-run outcomes and the audit hit, whether a CUSTOM provider would be asked, and which
 * local rate limit bucket it would draw from.
 *
 * Every verdict comes from the engines the admission phases run, compiled from the same resources
 * for the same workload: {@link normalizePath}, the {@link JwtAuthenticator} (explain-jwt.ts),
 * {@link compileAuthz}'s engine and the rate-limit phase's compiled filters. What an explanation
 * cannot know, it names as an assumption instead of guessing: a signature against keys that
 * would be fetched, an external authorizer's answer, a token bucket's level.
 *
 * @module
 */
import { isProbe } from './guard.ts';
import { isIP } from 'node:net';
import type { AnyResource, Resource } from '../config/resource.ts';
import { isGrpcContentType } from '../core/classify.ts';
import type { PeerIdentity } from '../core/context.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import { normalizeHeaderObject } from '../core/headers.ts';
import { compileAuthz, type CustomOutcome } from '../security/authz/engine.ts';
import { composePeerAuthentication, mtlsModeForPort } from '../security/peer-authentication.ts';
import type { ExtAuthzCheck, ExtAuthzResponse } from '../security/authz/types.ts';
import { explainJwt, type JwtExplanation } from './explain-jwt.ts';
import { describeInbound } from './explain-text.ts';
import { normalizePath, PATH_NORMALIZATIONS } from '../core/path-normalization.ts';
import { type InboundRequest, newInboundRequest } from './pipeline.ts';
import { type RateLimitExplanation, rateLimitExplainer } from './explain-rate-limit.ts';
import { explainInboundPool } from './explain-connection-pool.ts';
import type { AuthzExplanation, InboundExplainOptions, InboundExplainRequest, InboundExplainSource, InboundExplanation } from './explain-types.ts';
import { inboundServicePorts } from './rate-limit-compile.ts';

export type { DecodedToken, ExplainedJwtRule, JwtExplanation } from './explain-jwt.ts';
export type { RateLimitExplanation } from './explain-rate-limit.ts';
export type { InboundPoolExplanation } from './explain-connection-pool.ts';
export type { AuthzExplanation, InboundExplainOptions, InboundExplainRequest, InboundExplainSource, InboundExplanation } from './explain-types.ts';

const TOKEN = /^[!#$%&'*+.^`|~\w-]+$/;

function fail(message: string): never {
  throw new InvalidArgumentError(`explainInbound: ${message}`);
}

/** The peer from `source`, or undefined for plaintext. */
function peerOf(source: InboundExplainSource | undefined, trustDomain: string, address: string): PeerIdentity | undefined {
  if (source?.principal === undefined && source?.namespace === undefined) {
    if (source?.serviceAccount !== undefined) fail('source.serviceAccount needs source.namespace');
    return undefined;
  }
  let principal = source.principal;
  if (principal !== undefined) {
    if (typeof principal !== 'string' || principal.trim() === '' || /\s/.test(principal)) fail(`source.principal: expected e.g. cluster.local/ns/foo/sa/sleep, got ${JSON.stringify(principal)}`);
    principal = principal.startsWith('spiffe://') ? principal : `spiffe://${principal}`;
  }
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(principal ?? '');
  if (source.namespace !== undefined) {
    const made = `spiffe://${trustDomain}/ns/${source.namespace}/sa/${source.serviceAccount ?? 'default'}`;
    if (principal === undefined) return peerOf({ principal: made }, trustDomain, address);
    if (m === null || m[2] !== source.namespace || (source.serviceAccount !== undefined && m[3] !== source.serviceAccount)) {
      fail(`source.principal ${principal} does not name namespace ${source.namespace}${source.serviceAccount === undefined ? '' : ` and service account ${source.serviceAccount}`}`);
    }
  }
  return { principal: principal as string, trustDomain: m?.[1] ?? '', namespace: m?.[2] ?? '', serviceAccount: m?.[3] ?? '', address };
}

/** Splits the target into authority, scheme, URL port and path with query. */
function targetOf(url: string): { scheme: string; authority: string | undefined; port: number | undefined; target: string } {
  if (typeof url !== 'string' || url === '') fail('url: give a path (/admin) or a URL (http://httpbin:8000/admin)');
  if (url.startsWith('/')) {
    if (/\s/.test(url)) fail(`url: a request target has no spaces: ${JSON.stringify(url)}`);
    return { scheme: 'http', authority: undefined, port: undefined, target: url };
  }
  const m = /^(https?):\/\/([^/?#\s]+)(\S*)$/i.exec(url);
  if (m === null) fail(`url: expected a path (/admin), an http(s) URL or a grpc:// URL, got ${JSON.stringify(url)}`);
  const scheme = (m[1] as string).toLowerCase();
  let parsed: URL;
  try {
    parsed = new URL(`${scheme}://${m[2]}`);
  } catch {
    fail(`url: bad authority in ${JSON.stringify(url)}`);
  }
  const rest = m[3] as string;
  // The path as the caller wrote it: WHATWG URL parsing would resolve dot segments before normalization could be shown.
  const target = rest === '' ? '/' : rest.startsWith('?') || rest.startsWith('#') ? `/${rest}` : rest;
  return { scheme, authority: m[2] as string, port: parsed.port === '' ? undefined : Number(parsed.port), target };
}

/** The names CUSTOM policies give their providers. */
function customProviders(resources: readonly AnyResource[]): string[] {
  const names = new Set<string>();
  for (const r of resources) {
    if (r.kind !== 'AuthorizationPolicy') continue;
    const spec = (r as Resource<'AuthorizationPolicy'>).spec;
    if (spec.action === 'CUSTOM' && spec.provider?.name !== undefined) names.add(spec.provider.name);
  }
  return [...names].sort();
}

/**
 * Explains how the server side of `options.workload` would judge `request` under `resources`
 * (validated). Nothing is sent: no key is fetched, no external authorizer asked, no bucket drawn.
 * @throws InvalidArgumentError naming the field of `request` that is malformed.
 */
export async function explainInbound(resources: readonly AnyResource[], request: InboundExplainRequest, options: InboundExplainOptions): Promise<InboundExplanation> {
  if (request === null || typeof request !== 'object') fail('give a request: { url, method?, headers?, source?, token?, … }');
  const { workload } = options;
  const rootNamespace = options.rootNamespace ?? 'istio-system';
  const trustDomain = options.trustDomain ?? 'cluster.local';
  const normalization = options.pathNormalization ?? 'BASE';
  if (!PATH_NORMALIZATIONS.includes(normalization)) fail(`pathNormalization: expected one of ${PATH_NORMALIZATIONS.join(', ')}, got ${JSON.stringify(normalization)}`);
  // A grpc:// URL (as `meshlet explain` takes one): the call as the server receives it, POST with content-type application/grpc.
  const grpcUrl = typeof request.url === 'string' && /^grpc:\/\//i.test(request.url);
  if (grpcUrl && request.method !== undefined && request.method !== 'POST') fail(`method: a gRPC call (grpc:// URL) is always POST, got ${JSON.stringify(request.method)}`);
  const method = request.method ?? (grpcUrl ? 'POST' : 'GET');
  if (typeof method !== 'string' || !TOKEN.test(method)) fail(`method: not an HTTP method: ${JSON.stringify(method)}`);
  const { scheme, authority: urlAuthority, port: urlPort, target } = targetOf(grpcUrl ? request.url.replace(/^grpc:/i, 'http:') : request.url);
  let headers: Record<string, string | string[] | undefined>;
  try {
    headers = normalizeHeaderObject(request.headers ?? {});
  } catch (err) {
    fail(`headers: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (grpcUrl && headers['content-type'] === undefined) headers['content-type'] = 'application/grpc';
  for (const k of Object.keys(headers)) {
    if (!TOKEN.test(k)) fail(`headers: not a header name: ${JSON.stringify(k)}`);
    const v = headers[k];
    // biome-ignore lint/suspicious/noControlCharactersInRegex: a server never receives these in a value
    if ((Array.isArray(v) ? v : [v]).some((x) => /[\u0000\r\n]/.test(x ?? ''))) fail(`headers: the value of ${k} has a CR, LF or NUL, which no server receives`);
  }
  if (request.token !== undefined) {
    if (typeof request.token !== 'string' || request.token === '' || /\s/.test(request.token)) fail('token: expected a compact JWT (header.payload.signature)');
    if (headers.authorization !== undefined) fail('token: the request already has an Authorization header; give the token one way');
    headers.authorization = `Bearer ${request.token}`;
  }
  const direct = request.requestPrincipal !== undefined || request.claims !== undefined;
  if (direct && request.token !== undefined) fail('give either a token or the request principal and claims, not both');
  if (request.claims !== undefined && (request.claims === null || typeof request.claims !== 'object' || Array.isArray(request.claims))) fail('claims: expected an object of claims');
  const ip = request.source?.ip ?? '127.0.0.1';
  if (isIP(ip) === 0) fail(`source.ip: not an IP address: ${JSON.stringify(ip)}`);
  const peer = peerOf(request.source, trustDomain, ip);
  const atMs = request.atMs ?? Date.now();
  if (!Number.isFinite(atMs)) fail(`atMs: expected Unix milliseconds, got ${String(atMs)}`);

  const servicePorts = inboundServicePorts(resources, { service: workload.service, namespace: workload.namespace, labels: workload.labels, ...(workload.ports === undefined ? {} : { ports: workload.ports }) });
  let localPort: number;
  let portFrom: string;
  if (request.port !== undefined) {
    if (!Number.isInteger(request.port) || request.port < 1 || request.port > 65535) fail(`port: expected 1-65535, got ${String(request.port)}`);
    localPort = request.port;
    portFrom = 'given';
  } else if (urlPort !== undefined) {
    const local = [...servicePorts].find(([, svc]) => svc.includes(urlPort))?.[0];
    localPort = local ?? urlPort;
    portFrom = local === undefined ? `the URL's port; no Service of the workload maps port ${urlPort}` : `service port ${urlPort} targets it`;
  } else if (servicePorts.size === 1) {
    localPort = [...servicePorts.keys()][0] as number;
    portFrom = "the only port the workload's services reach";
  } else {
    localPort = scheme === 'https' ? 443 : 80;
    portFrom = `the ${scheme} default; give a port to choose another`;
  }
  const headerHost = typeof headers.host === 'string' ? headers.host : undefined;
  const servicePort = servicePorts.get(localPort)?.[0] ?? localPort;
  const authority = headerHost ?? urlAuthority ?? `${workload.service}.${workload.namespace}.svc.cluster.local:${servicePort}`;
  const shownHeaders = { ...headers } as Record<string, string | readonly string[]>;

  const normalized = normalizePath(target, normalization);
  const pa = composePeerAuthentication(resources, { namespace: workload.namespace, labels: workload.labels }, rootNamespace);
  const mtlsMode = mtlsModeForPort(pa, localPort);
  // The connection is judged before any HTTP is read: STRICT closes a plaintext one, DISABLE a TLS one.
  const paRefusal = mtlsMode === 'STRICT' && peer === undefined ? 'plaintext under STRICT' : mtlsMode === 'DISABLE' && peer !== undefined ? 'mTLS under DISABLE (plaintext only)' : undefined;
  const base = {
    workload: { service: workload.service, namespace: workload.namespace, labels: { ...workload.labels } },
    request: { method, scheme, authority, localPort, portFrom, remoteAddress: ip, peer: peer?.principal, headers: shownHeaders },
    path: { received: target, normalized, changed: normalized !== target, normalization },
    peerAuthentication: { mode: mtlsMode, portLevel: pa.perPort.has(localPort), policies: { ...pa.policies }, accepted: paRefusal === undefined },
  };
  const done = (e: Omit<InboundExplanation, 'toString' | keyof typeof base>): InboundExplanation => {
    const full = { ...base, ...e };
    return Object.freeze({ ...full, toString: () => describeInbound(full) });
  };
  const none = { jwt: undefined, requestPrincipal: undefined, claims: undefined, authz: undefined, rateLimits: undefined, connectionPool: undefined };
  // A request that asks for an upgrade (a WebSocket) is never a probe: it would reach the app's upgrade listeners.
  if (headers.upgrade === undefined && isProbe(options.probePaths === undefined ? undefined : new Set(options.probePaths), method, target, peer === undefined && scheme === 'http', isGrpcContentType(headers['content-type']))) {
    const full = { ...base, peerAuthentication: { ...base.peerAuthentication, accepted: true }, ...none, status: 200, refusedBy: undefined, reason: `a health probe (probePaths): served outside PeerAuthentication, RequestAuthentication, AuthorizationPolicy and rate limits, as istio-agent serves kubelet's probes`, assumes: [] };
    return Object.freeze({ ...full, toString: () => describeInbound(full) });
  }
  if (paRefusal !== undefined) {
    return done({ ...none, status: 0, refusedBy: 'peer-authentication', reason: `PeerAuthentication ${mtlsMode} on port ${localPort}: ${paRefusal}; the connection is closed before any HTTP is read`, assumes: [] });
  }
  if (normalized === undefined) {
    return done({ ...none, status: 400, refusedBy: 'path', reason: `path ${JSON.stringify(target)} cannot be normalized (${normalization}): Envoy answers 400`, assumes: [] });
  }

  const req: InboundRequest = newInboundRequest({
    protocol: isGrpcContentType(headers['content-type']) ? 'grpc' : 'http1',
    method,
    scheme,
    authority,
    path: normalized,
    headers,
    remoteAddress: ip,
    remotePort: 0,
    localPort,
    peer,
  });
  const assumes: string[] = [];
  const who = { namespace: workload.namespace, labels: workload.labels };
  // Local rate limits, each where its EnvoyFilter puts it: it looks at the request as it is there,
  // and takes its token even when a later step refuses the request.
  const limitsAt = rateLimitExplainer(resources, { ...workload, servicePorts }, rootNamespace, localPort, scheme === 'https');
  const metLimits: RateLimitExplanation[] = [];
  const met = (): readonly RateLimitExplanation[] | undefined => (metLimits.length === 0 ? undefined : metLimits);

  // AuthorizationPolicy's engine, with stand-ins for the external authorizers it would ask.
  const configured = options.extensionProviders;
  let mode: 'allow' | 'deny' = 'deny';
  const providers: Record<string, ExtAuthzCheck> = Object.create(null);
  for (const name of configured ?? customProviders(resources)) {
    providers[name] = (): Promise<ExtAuthzResponse> => Promise.resolve(mode === 'allow' ? { allowed: true } : { allowed: false, status: 403, headers: {}, body: '' });
  }
  const engine = compileAuthz(resources, who, { rootNamespace, trustDomain, trustDomainAliases: options.trustDomainAliases, numTrustedProxies: options.numTrustedProxies, providers });
  // 1. CUSTOM, before JWT authentication (Istio's filter order): asked with an authorizer that
  // denies, the engine names the CUSTOM rule that sends the request to it.
  let custom: AuthzExplanation['custom'];
  let allowedBy: CustomOutcome | undefined;
  metLimits.push(...limitsAt('ext_authz', req, assumes));
  if (engine.hasCustom) {
    const denied = await engine.custom(req);
    if (denied !== undefined && 'decision' in denied && denied.action === 'CUSTOM' && denied.policy !== undefined && denied.rule !== undefined) {
      if (denied.provider === undefined) {
        // No authorizer to ask (not configured, or more than one for this workload): the CUSTOM rule denies, before the token is looked at.
        const authz: AuthzExplanation = { policies: engine.policies, findings: engine.findings, result: denied, custom: undefined };
        return done({ ...none, authz, rateLimits: met(), status: denied.denial?.status ?? 403, refusedBy: 'authorization', reason: denied.reason, assumes });
      }
      custom = { provider: denied.provider, policy: denied.policy, rule: denied.rule, assumedConfigured: configured === undefined };
      assumes.push(
        `the external authorizer "${custom.provider}" allows the request (CUSTOM policy ${custom.policy} rule ${custom.rule} sends it there, before the token is checked; explain cannot call it; if it denies, the caller gets its status, headers and body)`,
      );
      if (custom.assumedConfigured) assumes.push(`"${custom.provider}" is one of the mesh's extensionProviders (taken as configured)`);
    }
    mode = 'allow';
    const c = await engine.custom(req);
    allowedBy = c === undefined || 'decision' in c ? undefined : c;
  }

  // 2. RequestAuthentication (or the identity given directly).
  metLimits.push(...limitsAt('jwt_authn', req, assumes));
  let jwt: JwtExplanation | 'given' | undefined;
  if (direct) {
    const claims = request.claims === undefined ? undefined : ({ ...request.claims } as Record<string, unknown>);
    const iss = claims?.iss;
    const sub = claims?.sub;
    req.requestPrincipal = request.requestPrincipal ?? (typeof iss === 'string' && typeof sub === 'string' && iss !== '' && sub !== '' ? `${iss}/${sub}` : undefined);
    req.claims = claims;
    jwt = 'given';
    assumes.push('the request carries a token that verifies with this principal and these claims (given directly; RequestAuthentication not evaluated)');
  } else {
    const j = await explainJwt(resources, who, rootNamespace, req, { atMs, maxTokenChars: options.maxTokenChars ?? 16384 });
    jwt = j;
    if (j !== undefined && !j.ok && j.denial !== undefined) {
      return done({ ...none, jwt: j, rateLimits: met(), status: j.denial.status, refusedBy: 'jwt', reason: j.detail, assumes });
    }
    if (j?.assumedSignature === true) {
      const rule = j.rules.find((r) => r.name === j.rule);
      assumes.push(`the token's signature verifies against the keys from ${rule?.keys ?? 'its rule'} (not fetched by explain)`);
    }
  }
  const identity = { jwt, requestPrincipal: req.requestPrincipal, claims: req.claims };

  // 3. AUDIT, DENY and ALLOW, on the request as JWT authentication left it (CUSTOM allowed, as assumed above).
  metLimits.push(...limitsAt('rbac', req, assumes));
  const result = engine.hasCustom ? engine.local(req, allowedBy) : await engine.evaluate(req);
  const authz: AuthzExplanation = { policies: engine.policies, findings: engine.findings, result, custom };
  if (result.decision === 'deny') {
    return done({ ...identity, authz, rateLimits: met(), connectionPool: undefined, status: result.denial?.status ?? 403, refusedBy: 'authorization', reason: result.reason, assumes });
  }
  if (result.headersToUpstream !== undefined) for (const [k, v] of Object.entries(result.headersToUpstream)) headers[k] = v;

  // 4. Local rate limit after authorization: which filters look, which buckets the request would draw from.
  const rateLimits = [...metLimits, ...limitsAt(undefined, req, assumes)];
  // 5. The inbound cluster's circuit breaker (its counters are the running mesh's: not known here).
  const connectionPool = explainInboundPool(resources, workload, rootNamespace, localPort, req.protocol === 'grpc', assumes);
  return done({ ...identity, authz, rateLimits, connectionPool, status: 200, refusedBy: undefined, reason: result.reason, assumes });
}
