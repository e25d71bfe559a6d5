/**
 * Verifying a request's tokens against a workload's JWT rules with the semantics of the Envoy
 * `jwt_authn` config istiod generates (`convertToEnvoyJwtConfig`):
 *
 * - Each rule is a provider. One rule: `requires_any {provider, allow_missing}`. Several:
 *   `requires_any {P0, P1, …, requires_all {any{P0, allow_missing}, any{P1, allow_missing}, …}}`.
 *   So a request passes when some rule's tokens all verify (the first such rule, in issuer order,
 *   decides the principal), or when no rule finds a token at any of its locations (no principal).
 *   Otherwise it fails with the status Envoy's `AnyVerifierImpl` aggregates (a real error beats
 *   "issuer is not configured", which beats "missing").
 * - A rule checks every token at its locations, last location first, and all must verify
 *   (Envoy's authenticator: "if a request has multiple tokens, all of them must be valid").
 *   Per token: size limit, parse, issuer, time (60 s skew), audiences, then keys and signature.
 * - A CORS preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) passes unchecked
 *   (`bypass_cors_preflight`, which Istio sets).
 * - A failure answers 401 (403 for an audience that is not allowed) with Envoy's body text and
 *   `WWW-Authenticate: Bearer realm="<scheme>://<host><path>", error="invalid_token"` (no `error`
 *   for a missing token).
 *
 * On success the winning rule's output headers are written (after every rule's output headers
 * were removed from the incoming request), its tokens are removed unless `forwardOriginalToken`,
 * and the principal (`iss/sub`, when both are set), the claims, audiences and presenter (`azp`)
 * are returned. When the winning rule verified two different tokens the principal is left unset
 * and no output header is written: Istio documents the principal of such a request as undefined,
 * and unset is the same as anonymous — never more privileged.
 *
 * For a token in the verified-token cache the work per request is: find the token, look up what
 * this rule concluded about it before (issuer, audiences, principal, claims, output headers),
 * check the time, check that the key that verified it is still in the set — in plain function
 * calls; only from the first token that must wait for keys or a signature does the rest run as a
 * generator ({@link drive}), from where it stopped.
 *
 * `presence: REQUIRED` (in Istio's API, not yet acted on by istiod) makes a request without any
 * token fail with `Jwt is missing`, as a provider requirement without `allow_missing` does.
 *
 * The request it reads, and the success and failure it answers with (Envoy's body text and
 * `WWW-Authenticate`), are in `outcome.ts`.
 *
 * @module
 */
import type { Clock } from '../../core/clock.ts';
import type { Headers } from '../../core/handler.ts';
import type { CompiledRule } from './compile.ts';
import { drive, type Waiting, wait } from './drive.ts';
import { describeLocation, RequestTokens, removeToken, type TokenLocation } from './locations.ts';
import { ANONYMOUS, failure, type JwtOutcome, type JwtRequest, type JwtSuccess, Passed } from './outcome.ts';
import { type Failed, grant, type Located, Paused, type RuleResult, type RuleView, ruleView, type TokenResult, tokenFailed, Unsettled, type Verified } from './rule-view.ts';
import { JwtStatus } from './status.ts';
import type { TokenCache } from './token-cache.ts';
import { checkTime, parseJwt } from './token.ts';

/** What an authenticator shares with its runtime. */
export interface AuthenticatorDeps {
  readonly clock: Clock;
  /**
   * The wall clock, in Unix ms, that token times (`exp`, `nbf`) are checked against: `Date.now` with
   * the system clock, so a clock stepped by NTP counts at once (the monotonic clock would keep the
   * time the process started with, plus what elapsed since).
   */
  readonly unixNowMs: () => number;
  readonly cache: TokenCache;
  /** Tokens longer than this are refused before parsing. */
  readonly maxTokenChars: number;
}

/** A rule that found no token. */
const NO_TOKENS: readonly Located[] = Object.freeze([]);

function headerValue(headers: Headers, name: string): string {
  const v = Object.hasOwn(headers, name) ? headers[name] : undefined;
  return typeof v === 'string' ? v : Array.isArray(v) ? (v[0] ?? '') : '';
}

/** The compiled JWT rules of one workload, for one config snapshot. */
export class JwtAuthenticator {
  readonly rules: readonly CompiledRule[];
  readonly #deps: AuthenticatorDeps;
  readonly #outputHeaders: readonly string[];

  /** A header's rest after its prefix that the token cache holds as a whole JWT run is the token as it is. */
  readonly #knownRun: (s: string) => boolean;

  constructor(rules: readonly CompiledRule[], deps: AuthenticatorDeps) {
    this.rules = Object.freeze([...rules]);
    this.#deps = deps;
    const cache = deps.cache;
    this.#knownRun = (s) => cache.knownRun(s);
    this.#outputHeaders = [...new Set(rules.flatMap((r) => r.outputHeaders))];
  }

  /**
   * Checks the request's tokens. Synchronous when every token is in the verified-token cache (or
   * there is none); a promise when a signature must be checked or keys fetched. May change
   * `req.headers` (outputs written, spoofed outputs and non-forwarded tokens removed) and
   * `req.path` (a token query parameter removed).
   */
  authenticate(req: JwtRequest): JwtOutcome | Promise<JwtOutcome> {
    if (this.rules.length === 0) return ANONYMOUS;
    // Indexed loops on this path (not for…of): every request with a cached token takes it.
    const outputs = this.#outputHeaders;
    for (let i = 0; i < outputs.length; i++) {
      const h = outputs[i] as string;
      if (!Object.hasOwn(req.headers, h)) continue;
      delete req.headers[h];
      req.headersChanged = true;
    }
    if (req.method === 'OPTIONS' && headerValue(req.headers, 'origin') !== '' && headerValue(req.headers, 'access-control-request-method') !== '') {
      return { ...ANONYMOUS, detail: 'CORS preflight: not checked' };
    }
    const found = new RequestTokens(req, this.#knownRun);
    // Lists made at their size (a first push() gives an array room for 17): a rule usually finds one token or none.
    const perRule: (readonly Located[])[] = new Array(this.rules.length);
    for (let r = 0; r < this.rules.length; r++) {
      const rule = this.rules[r] as CompiledRule;
      let list: readonly Located[] = NO_TOKENS;
      const locations = rule.locations;
      for (let k = 0; k < locations.length; k++) {
        const location = locations[k] as TokenLocation;
        const tokens = found.at(location);
        if (tokens.length > 1) {
          return failure(req, JwtStatus.MultipleTokens, `${rule.name}: ${describeLocation(location)} carries ${tokens.length} different tokens`);
        }
        if (tokens.length === 1) {
          const l: Located = { token: tokens[0] as string, location };
          list = list.length === 0 ? [l] : [...list, l];
        }
      }
      perRule[r] = list;
    }
    // Synchronous (no generator, no promise) while every token settles from the cache; from the
    // first that must wait for keys or a signature, the rest runs in #resume.
    // The rules' failures, listed from the first (a request that passes at its first rule lists none).
    let results: Failed[] | undefined;
    for (let i = 0; i < this.rules.length; i++) {
      const rule = this.rules[i] as CompiledRule;
      const r = this.#checkRuleNow(rule, perRule[i] as readonly Located[]);
      if (r instanceof Paused) return drive(this.#resume(req, perRule, i, r, results ?? []));
      if (r.ok) return this.#succeed(req, rule, r.verified);
      results ??= [];
      results.push(r);
    }
    return this.#conclude(req, results ?? []);
  }

  /** The rules from `i` on, rule `i` continued where it paused. */
  *#resume(req: JwtRequest, perRule: readonly (readonly Located[])[], i: number, paused: Paused, results: Failed[]): Waiting<JwtOutcome> {
    for (let k = i; k < this.rules.length; k++) {
      const rule = this.rules[k] as CompiledRule;
      const tokens = perRule[k] as readonly Located[];
      const now = k === i ? paused : this.#checkRuleNow(rule, tokens);
      const r = now instanceof Paused ? yield* this.#finishRule(rule, tokens, now) : now;
      if (r.ok) return this.#succeed(req, rule, r.verified);
      results.push(r);
    }
    return this.#conclude(req, results);
  }

  /** No rule passed: the failure Envoy aggregates, or anonymous when no rule found a token. */
  #conclude(req: JwtRequest, results: readonly Failed[]): JwtOutcome {
    const missing = results.map((r) => r.status === JwtStatus.JwtMissed);
    if (missing.every(Boolean)) {
      const required = this.rules.find((r) => r.required);
      if (required === undefined) return ANONYMOUS;
      return failure(req, JwtStatus.JwtMissed, `${required.name}: presence is REQUIRED and the request has no token at ${required.locations.map(describeLocation).join(', ')}`);
    }
    // Envoy's AnyVerifierImpl over [P0 … Pn-1, requires_all]: the requires_all child fails with
    // the first rule that found something (or that requires a token); a real error beats
    // JwtUnknownIssuer, which beats JwtMissed; the last real error wins.
    const children = [...results];
    if (results.length > 1) {
      const all = results.find((c, i) => c.status !== JwtStatus.JwtMissed || (this.rules[i] as CompiledRule).required);
      if (all !== undefined) children.push(all);
    }
    let final: Failed = { ok: false, status: JwtStatus.JwtMissed, why: '' };
    for (const c of children) {
      if ((c.status !== JwtStatus.JwtMissed && c.status !== JwtStatus.JwtUnknownIssuer) || final.status === JwtStatus.JwtMissed) final = c;
    }
    return failure(req, final.status, final.why);
  }

  /** A rule's tokens, last first, as far as the cache settles them; {@link Paused} at the first that must wait. */
  #checkRuleNow(rule: CompiledRule, tokens: readonly Located[]): RuleResult | Paused {
    if (tokens.length === 0) return { ok: false, status: JwtStatus.JwtMissed, why: `${rule.name}: no token` };
    if (tokens.length === 1) {
      // One token, the common case: its list made at its size.
      const t = tokens[0] as Located;
      const r = this.#settle(rule, t.token);
      if (r instanceof Unsettled) return new Paused(0, [], r);
      if (!r.ok) return tokenFailed(rule, t, r);
      // A cached token found where it was found before: the same result as then (its token the same text).
      const again = r.view.found;
      if (again !== undefined && again.location === t.location) return again.result;
      // Shared by every later request with this token here: frozen, so no request can change another's.
      const verified = Object.freeze([Object.freeze({ token: t.token, location: t.location, jwt: r.jwt, view: r.view })]);
      const result = Object.freeze({ ok: true, verified } as const);
      r.view.found = { location: t.location, result, verified, passed: undefined };
      return result;
    }
    const verified: Verified[] = [];
    for (let i = tokens.length - 1; i >= 0; i--) {
      const t = tokens[i] as Located;
      const r = this.#settle(rule, t.token);
      if (r instanceof Unsettled) return new Paused(i, verified, r);
      if (!r.ok) return tokenFailed(rule, t, r);
      verified.push({ token: t.token, location: t.location, jwt: r.jwt, view: r.view });
    }
    return { ok: true, verified };
  }

  /** A paused rule's check to its end: the waiting token, then the tokens before it. */
  *#finishRule(rule: CompiledRule, tokens: readonly Located[], paused: Paused): Waiting<RuleResult> {
    const verified = paused.verified;
    for (let i = paused.at; i >= 0; i--) {
      const t = tokens[i] as Located;
      const now = i === paused.at ? paused.token : this.#settle(rule, t.token);
      const r = now instanceof Unsettled ? yield* this.#verify(rule, now) : now;
      if (!r.ok) return tokenFailed(rule, t, r);
      verified.push({ token: t.token, location: t.location, jwt: r.jwt, view: r.view });
    }
    return { ok: true, verified };
  }

  /** A token's checks that need no waiting (size, parse, issuer, time, audiences, the cached verdict under the current keys); {@link Unsettled} when the keys must decide. */
  #settle(rule: CompiledRule, token: string): TokenResult | Unsettled {
    const { cache, unixNowMs, maxTokenChars } = this.#deps;
    if (token.length > maxTokenChars) return { ok: false, status: JwtStatus.TokenTooLarge, why: `${token.length} characters; the limit is ${maxTokenChars}` };
    let entry = cache.get(token);
    if (entry === undefined) {
      const parsed = parseJwt(token);
      if (!parsed.ok) return { ok: false, status: parsed.status, why: '' };
      entry = cache.add(token, parsed.jwt);
    }
    const jwt = entry.jwt;
    let view = entry.views.get(rule) as RuleView | undefined;
    if (view === undefined) {
      view = ruleView(rule, jwt);
      entry.views.set(rule, view);
    }
    if (view.issuer !== undefined) return view.issuer;
    const now = Math.floor(unixNowMs() / 1000);
    const time = checkTime(jwt, now);
    if (time !== JwtStatus.Ok) {
      if (time === JwtStatus.JwtExpired) cache.delete(token);
      return { ok: false, status: time, why: `now ${now}, nbf ${jwt.nbf}, exp ${jwt.exp}, skew 60 s` };
    }
    if (view.audience !== undefined) return view.audience;

    const source = rule.source;
    // Asked first even for a cached token: it starts the refresh of expired keys and drops keys
    // past their stale limit (retiring them, which voids the verdicts below).
    const current = source.keys();
    const verdict = entry.verdicts.get(source);
    if (verdict !== undefined) {
      if ('key' in verdict && !verdict.key.retired) {
        // The same success every time (per token and rule): made once, on the view.
        view.passed ??= { ok: true, jwt, view };
        return view.passed;
      }
      if ('failed' in verdict && verdict.version === source.version) return { ok: false, status: verdict.failed, why: 'verified before against the same keys' };
    }
    return new Unsettled(entry, view, current);
  }

  /** An unsettled token's keys (waited for, refreshed for an unknown kid) and signature. */
  *#verify(rule: CompiledRule, u: Unsettled): Waiting<TokenResult> {
    const { entry, view } = u;
    const jwt = entry.jwt;
    const source = rule.source;
    let keys = yield* wait(u.current);
    if (typeof keys === 'string') return { ok: false, status: keys, why: source.lastError };
    if (jwt.kid !== '' && !keys.hasKid(jwt.kid)) {
      const refreshed = source.refreshForKid();
      if (refreshed !== undefined) {
        const k = yield* wait(refreshed);
        if (typeof k === 'string') return { ok: false, status: k, why: source.lastError };
        keys = k;
      }
    }
    const version = source.version;
    const candidates = keys.candidates(jwt);
    if (candidates.length === 0) return { ok: false, status: JwtStatus.JwksKidAlgMismatch, why: `kid ${JSON.stringify(jwt.kid)}, alg ${jwt.alg}; keys: ${keys}` };
    for (const key of candidates) {
      if (!key.supports(jwt.alg)) continue;
      if (jwt.alg === 'EdDSA' && Buffer.from(jwt.signatureB64, 'base64url').length !== 64) return { ok: false, status: JwtStatus.JwtEd25519SignatureWrongLength, why: '' };
      if (yield* wait(key.verify(jwt))) {
        entry.verdicts.set(source, { key });
        return { ok: true, jwt, view };
      }
    }
    entry.verdicts.set(source, { failed: JwtStatus.JwtVerificationFail, version });
    return { ok: false, status: JwtStatus.JwtVerificationFail, why: `alg ${jwt.alg}${jwt.kid === '' ? '' : `, kid ${jwt.kid}`}; no key that may check ${jwt.alg} verifies the signature` };
  }

  #succeed(req: JwtRequest, rule: CompiledRule, verified: readonly Verified[]): JwtSuccess {
    const first = verified[0] as Verified;
    let single = true;
    for (let i = 1; i < verified.length; i++) if ((verified[i] as Verified).token !== first.token) single = false;
    if (!single) {
      if (!rule.forwardOriginalToken) for (const v of verified) removeToken(req, v.location);
      const n = new Set(verified.map((v) => v.token)).size;
      return { ...ANONYMOUS, rule: rule.name, detail: `${rule.name}: ${n} different tokens verified, principal left unset (${verified.map((v) => describeLocation(v.location)).join(', ')})` };
    }
    first.view.granted ??= grant(rule, first.jwt);
    const g = first.view.granted;
    // Outputs first, then the token goes (Envoy's handleGoodJwt order). Indexed, without
    // destructuring: a for…of over the pairs made an iterator for each pair on every request.
    const outputs = g.headers;
    for (let i = 0; i < outputs.length; i++) {
      const pair = outputs[i] as readonly [string, string];
      req.headers[pair[0]] = pair[1];
      req.headersChanged = true;
    }
    if (!rule.forwardOriginalToken) for (let i = 0; i < verified.length; i++) removeToken(req, (verified[i] as Verified).location);
    // The same token at the same place as before (the rule's shared result): the same success too.
    const found = first.view.found;
    if (found !== undefined && found.verified === verified) {
      found.passed ??= Object.freeze(new Passed(g, rule.name, verified));
      return found.passed as Passed;
    }
    return new Passed(g, rule.name, verified);
  }

  toString(): string {
    if (this.rules.length === 0) return 'JWT: no RequestAuthentication applies';
    return this.rules
      .map((r) =>
        [
          `${r.name}: issuer ${r.issuer === '' ? '(any)' : r.issuer}`,
          r.audiences.length === 0 ? 'any audience' : `audiences ${r.audiences.join(', ')}`,
          `at ${r.locations.map(describeLocation).join(', ')}`,
          `keys from ${r.source}`,
          r.forwardOriginalToken ? 'token forwarded' : 'token removed',
          ...(r.outputHeaders.length > 0 ? [`writes ${r.outputHeaders.join(', ')}`] : []),
          ...(r.required ? ['token REQUIRED'] : []),
        ].join('; '),
      )
      .join('\n');
  }
}
