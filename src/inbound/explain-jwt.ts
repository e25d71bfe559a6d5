/**
 * The RequestAuthentication part of `meshlet explain --inbound` / `mesh.explainInbound()`: which
 * JWT rules apply to the workload, which tokens the request carries and where, what each rule
 * makes of them, and the outcome — decided by the real {@link JwtAuthenticator} over the same
 * compiled rules the `jwt` phase runs, so the verdict (401/403 texts, several tokens, the
 * issuer order, `presence: REQUIRED`) is the phase's.
 *
 * Keys are the one thing an explanation does not fetch. A rule with an inline `jwks` has its keys
 * in the config, and the signature is really checked against them. A rule whose keys come from
 * a `jwksUri` (or OpenID discovery) gets {@link AssumedKeys}: a key set that vouches for any
 * signature, so the outcome reads "if the signature verifies against those keys", and the
 * explanation says so. Tokens are decoded without verification and labelled as such.
 *
 * @module
 */
import type { JWK } from 'jose';
import { ofKind, type AnyResource } from '../config/resource.ts';
import { ManualClock } from '../core/clock.ts';
import { JwtAuthenticator } from '../security/jwt/authenticator.ts';
import { type CompiledRule, compileRule, placedRules, selectRequestAuthentications } from '../security/jwt/compile.ts';
import { InlineJwksSource, type JwksSource, type KeysOrStatus } from '../security/jwt/jwks-source.ts';
import { KeySet, VerificationKey } from '../security/jwt/jwks.ts';
import { describeLocation, RequestTokens } from '../security/jwt/locations.ts';
import { statusText } from '../security/jwt/status.ts';
import { TokenCache } from '../security/jwt/token-cache.ts';
import { audiencesAllowed, checkTime, IMPLEMENTED_ALGS, parseJwt } from '../security/jwt/token.ts';
import type { InboundRequest } from './pipeline.ts';

/** A key that says yes to every signature: stands for keys an explanation does not fetch. */
class AssumedKey extends VerificationKey {
  constructor() {
    super({ kty: 'assumed' } as JWK, '', '', [...IMPLEMENTED_ALGS]);
  }

  override verify(): Promise<boolean> {
    return Promise.resolve(true);
  }

  override toString(): string {
    return 'a key assumed to verify the signature';
  }
}

/** The key source of a rule whose keys are fetched (`jwksUri`, discovery): never fetched here, assumed to verify. */
export class AssumedKeys implements JwksSource {
  readonly key: string;
  readonly version = 1;
  readonly lastError = '';
  readonly #set = new KeySet([new AssumedKey()]);
  readonly #where: string;

  constructor(where: string) {
    this.key = `assumed:${where}`;
    this.#where = where;
  }

  keys(): KeysOrStatus {
    return this.#set;
  }

  refreshForKid(): undefined {
    return undefined;
  }

  idle(): Promise<void> {
    return Promise.resolve();
  }

  toString(): string {
    return `${this.#where} (not fetched: the signature is assumed to verify)`;
  }
}

/** One token the request carries, decoded WITHOUT verification. */
export interface DecodedToken {
  /** Where it was found: `header authorization (prefix "Bearer ")`, `query parameter access_token`, … (the rules that look there). */
  readonly locations: readonly string[];
  /** Always true: nothing about a decoded token is trusted until a rule verifies it. */
  readonly unverified: true;
  /** The JOSE header; undefined when the token does not parse. */
  readonly header: Readonly<Record<string, unknown>> | undefined;
  /** The claims; undefined when the token does not parse. */
  readonly payload: Readonly<Record<string, unknown>> | undefined;
  /** Why it does not parse (Envoy's text: `Jwt is not in the form of …`); undefined when it does. */
  readonly error: string | undefined;
}

/** What one JWT rule makes of the request's tokens. */
export interface ExplainedJwtRule {
  /** `RequestAuthentication ns/name jwtRules[i]`. */
  readonly name: string;
  /** '' for a rule that accepts any issuer. */
  readonly issuer: string;
  readonly audiences: readonly string[];
  /** Where it looks for tokens, in order. */
  readonly locations: readonly string[];
  /** Where its keys come from: `inline jwks`, `jwksUri https://…`, `OpenID discovery of <issuer>`. */
  readonly keys: string;
  /** Whether the signature is checked by this explanation (inline keys) or assumed (keys that would be fetched). */
  readonly signature: 'checked' | 'assumed';
  readonly required: boolean;
  readonly forwardOriginalToken: boolean;
  /** The tokens at its locations and the checks that come before the keys. */
  readonly tokens: readonly {
    readonly location: string;
    /** Index into {@link JwtExplanation.tokens}. */
    readonly token: number;
    /** Envoy's text for the first check that fails before the signature (`Jwt issuer is not configured`, …); undefined when all pass. */
    readonly problem: string | undefined;
    /** Whether the rule would need its keys for this token (every check before the signature passed). */
    readonly keysNeeded: boolean;
  }[];
}

/** The RequestAuthentication part of an explanation. */
export interface JwtExplanation {
  /** The rules that apply, in the order the phase tries them (by issuer). */
  readonly rules: readonly ExplainedJwtRule[];
  /** The distinct tokens found at any rule's location, decoded without verification. */
  readonly tokens: readonly DecodedToken[];
  /** Whether the request gets through the jwt phase, and with what. */
  readonly ok: boolean;
  /** `iss/sub` the phase would set (undefined: no token, or no principal). */
  readonly requestPrincipal: string | undefined;
  /** The claims authorization would see (space-delimited claims split), when a token verified. */
  readonly claims: Readonly<Record<string, unknown>> | undefined;
  /** The rule whose tokens verified. */
  readonly rule: string | undefined;
  /** Set when the outcome rests on a signature this explanation could not check (keys that would be fetched). */
  readonly assumedSignature: boolean;
  /** The refusal: 401 (403 for an audience that is not allowed), Envoy's body and `WWW-Authenticate`. */
  readonly denial: { readonly status: number; readonly body: string; readonly wwwAuthenticate: string } | undefined;
  /** One line on what happened (the authenticator's detail or reason). */
  readonly detail: string;
  /** Request headers the phase removes (a consumed token, spoofed output headers) or writes (claims to headers). */
  readonly headersRemoved: readonly string[];
  readonly headersWritten: Readonly<Record<string, string>>;
}

function keysOf(rule: { readonly jwks?: string; readonly jwksUri?: string; readonly issuer?: string }): string {
  if (rule.jwks !== undefined) return 'inline jwks';
  if (rule.jwksUri !== undefined) return `jwksUri ${rule.jwksUri}`;
  return `OpenID discovery of ${rule.issuer ?? ''} (${(rule.issuer ?? '').replace(/\/$/, '')}/.well-known/openid-configuration)`;
}

function decode(token: string): Omit<DecodedToken, 'locations'> {
  const p = parseJwt(token);
  if (!p.ok) return { unverified: true, header: undefined, payload: undefined, error: statusText(p.status) };
  return { unverified: true, header: p.jwt.header, payload: p.jwt.payload, error: undefined };
}

/**
 * Explains the jwt phase for `req` (changed as the phase would change it: tokens removed, output
 * headers written), or undefined when no RequestAuthentication applies to the workload.
 * `atMs` is the Unix time tokens are judged at.
 */
export async function explainJwt(
  resources: readonly AnyResource[],
  workload: { readonly namespace: string; readonly labels: Readonly<Record<string, string>> },
  rootNamespace: string,
  req: InboundRequest,
  o: { readonly atMs: number; readonly maxTokenChars: number },
): Promise<JwtExplanation | undefined> {
  const selected = selectRequestAuthentications(ofKind(resources, 'RequestAuthentication'), workload, rootNamespace);
  const placed = placedRules(selected);
  if (placed.length === 0) return undefined;
  const rules: CompiledRule[] = placed.map((p) => compileRule(p, p.rule.jwks !== undefined ? new InlineJwksSource(p.rule.jwks) : new AssumedKeys(keysOf(p.rule))));

  // What the request carries, before the phase takes anything out.
  const found = new RequestTokens({ path: req.path, headers: req.headers });
  const tokens: { token: string; locations: string[] }[] = [];
  const nowSeconds = Math.floor(o.atMs / 1000);
  const explained: ExplainedJwtRule[] = rules.map((rule, i) => {
    const spec = placed[i]?.rule ?? {};
    const at: ExplainedJwtRule['tokens'][number][] = [];
    for (const loc of rule.locations) {
      const where = describeLocation(loc);
      for (const t of found.at(loc)) {
        let index = tokens.findIndex((x) => x.token === t);
        if (index === -1) index = tokens.push({ token: t, locations: [] }) - 1;
        const entry = tokens[index] as { locations: string[] };
        if (!entry.locations.includes(where)) entry.locations.push(where);
        at.push({ location: where, token: index, ...preChecks(rule, t, nowSeconds, o.maxTokenChars) });
      }
    }
    return {
      name: rule.name,
      issuer: rule.issuer,
      audiences: rule.audiences,
      locations: rule.locations.map(describeLocation),
      keys: keysOf(spec),
      signature: spec.jwks !== undefined ? 'checked' : 'assumed',
      required: rule.required,
      forwardOriginalToken: rule.forwardOriginalToken,
      tokens: at,
    };
  });

  const before = { ...req.headers };
  const authenticator = new JwtAuthenticator(rules, { clock: new ManualClock(), unixNowMs: () => o.atMs, cache: new TokenCache(0), maxTokenChars: o.maxTokenChars });
  const out = await authenticator.authenticate(req);
  const headersRemoved = Object.keys(before).filter((h) => !Object.hasOwn(req.headers, h));
  const headersWritten: Record<string, string> = Object.create(null);
  for (const h of Object.keys(req.headers)) {
    const v = req.headers[h];
    if (typeof v === 'string' && before[h] !== v) headersWritten[h] = v;
  }
  const decoded = tokens.map((t) => ({ locations: t.locations, ...decode(t.token) }));
  const common = { rules: explained, tokens: decoded, headersRemoved, headersWritten };
  if (!out.ok) {
    return {
      ...common,
      ok: false,
      requestPrincipal: undefined,
      claims: undefined,
      rule: undefined,
      assumedSignature: false,
      denial: { status: out.httpStatus, body: out.body, wwwAuthenticate: out.wwwAuthenticate },
      detail: out.reason,
    };
  }
  const winner = rules.find((r) => r.name === out.rule);
  req.requestPrincipal = out.principal;
  req.claims = out.claims;
  req.audiences = out.audiences;
  req.presenter = out.presenter;
  return {
    ...common,
    ok: true,
    requestPrincipal: out.principal,
    claims: out.claims,
    rule: out.rule,
    assumedSignature: winner !== undefined && winner.source instanceof AssumedKeys,
    denial: undefined,
    detail: out.detail,
  };
}

/** The checks a rule makes before it needs keys: size, format, issuer, time, audiences (the phase's order). */
function preChecks(rule: CompiledRule, token: string, nowSeconds: number, maxTokenChars: number): { problem: string | undefined; keysNeeded: boolean } {
  if (token.length > maxTokenChars) return { problem: statusText('TokenTooLarge'), keysNeeded: false };
  const p = parseJwt(token);
  if (!p.ok) return { problem: statusText(p.status), keysNeeded: false };
  if (rule.issuer !== '' && p.jwt.iss !== rule.issuer) return { problem: `${statusText('JwtUnknownIssuer')} (iss ${JSON.stringify(p.jwt.iss)})`, keysNeeded: false };
  const time = checkTime(p.jwt, nowSeconds);
  if (time !== 'Ok') return { problem: statusText(time), keysNeeded: false };
  if (!audiencesAllowed(rule.audienceSet, p.jwt.audiences)) return { problem: `${statusText('JwtAudienceNotAllowed')} (aud ${JSON.stringify(p.jwt.audiences)})`, keysNeeded: false };
  return { problem: undefined, keysNeeded: true };
}
